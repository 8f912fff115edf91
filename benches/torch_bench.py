"""Times with PyTorch the work of benches/benches/ops.rs, on this machine, with 2 threads.

Prints one line per benchmark: "<group>/<id> <min ms> <median ms>", the ids matching criterion's, for
`cargo xtask bench` to pair with tessera's times. Run with a python that has torch
(e.g. `pip install torch` in a venv outside the repo; set TESSERA_TORCH_PYTHON to it).
"""
import statistics
import sys
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(2)
torch.manual_seed(0)
QUICK = "--quick" in sys.argv


def timeit(fn, min_time=0.5 if QUICK else 3.0, warmup=3):
    """(min, median) wall time in ms of one call; see xtask's bench for why both."""
    for _ in range(warmup):
        fn()
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < min_time or len(times) < 5:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) * 1e3, statistics.median(times) * 1e3


def report(name, times):
    print(f"{name} {times[0]:.4f} {times[1]:.4f}", flush=True)


def main():
    print(f"# torch {torch.__version__}, threads {torch.get_num_threads()}", file=sys.stderr)
    for c, s in [(32, 35), (64, 79), (128, 196)]:
        x = torch.randn(1, c, s, s)
        w = torch.randn(c, c, 3, 3) * 0.05
        g = torch.randn(1, c, s - 2, s - 2)
        with torch.no_grad():
            report(f"conv2d_fwd/c{c}_{s}x{s}", timeit(lambda: F.conv2d(x, w)))
        xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()

        def fwd_bwd():
            y = F.conv2d(xr, wr)
            return torch.autograd.grad(y, (xr, wr), g)

        report(f"conv2d_fwd_bwd/c{c}_{s}x{s}", timeit(fwd_bwd))
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    report("matmul/1024", timeit(lambda: a @ b))
    spade()


class Spade(torch.nn.Module):
    """The SPADE layer as described in Park et al. 2019: parameter-free batch norm, label map
    resized by nearest to x, a shared 3x3 conv + ReLU (128 wide), then 3x3 convs to gamma and beta;
    output norm(x) * (1 + gamma) + beta."""

    def __init__(self, channels, labels, hidden=128):
        super().__init__()
        self.norm = torch.nn.BatchNorm2d(channels, affine=False)
        self.shared = torch.nn.Sequential(torch.nn.Conv2d(labels, hidden, 3, padding=1), torch.nn.ReLU())
        self.gamma = torch.nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta = torch.nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x, seg):
        seg = F.interpolate(seg, size=x.shape[2:], mode="nearest")
        h = self.shared(seg)
        return self.norm(x) * (1 + self.gamma(h)) + self.beta(h)


def spade(labels=151, seg_size=256):
    ids = (torch.arange(seg_size * seg_size) // 997 + torch.arange(seg_size * seg_size) % 13) % labels
    seg = F.one_hot(ids.reshape(1, seg_size, seg_size), labels).permute(0, 3, 1, 2).float()
    for c, s in [(1024, 16), (256, 64), (64, 256)]:
        layer = Spade(c, labels).train()
        x = torch.randn(1, c, s, s, requires_grad=True)
        g = torch.randn(1, c, s, s)
        with torch.no_grad():
            report(f"spade_fwd/c{c}_{s}x{s}", timeit(lambda: layer(x, seg)))
        wrt = [x] + list(layer.parameters())
        report(f"spade_fwd_bwd/c{c}_{s}x{s}", timeit(lambda: torch.autograd.grad(layer(x, seg), wrt, g)))


if __name__ == "__main__":
    main()
