"""PyTorch side of benches/benches/spade_norm.rs (see torch_timing.py): SPADE normalization with
batch statistics, forward, as PyTorch's eager composite `batch_norm(x) * (1 + gamma) + beta`, on
CPU (2 threads) and, when CUDA is available, on the GPU (synchronized per call)."""
import torch
import torch.nn.functional as F

from torch_timing import report, timeit

SHAPES = [(1, 256, 64), (1, 128, 128)]


def spade_norm():
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for n, c, s in SHAPES:
        ident = f"n{n}_c{c}_{s}x{s}"
        for dev in devices:
            x, gamma, beta = (torch.randn(n, c, s, s, device=dev) for _ in range(3))

            def run():
                y = F.batch_norm(x, None, None, training=True, eps=1e-5) * (1 + gamma) + beta
                if dev == "cuda":
                    torch.cuda.synchronize()
                return y

            with torch.no_grad():
                name = "cpu_composite" if dev == "cpu" else "gpu_composite"
                report(f"spade_norm/{name}_{ident}", timeit(run))


if __name__ == "__main__":
    spade_norm()
