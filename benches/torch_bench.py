"""Times with PyTorch the work of benches/benches/ops.rs, on this machine, with 2 threads.

Prints one line per benchmark: "<group>/<id> <mean ms>", the ids matching criterion's, for
`cargo xtask bench` to pair with tessera's times. Run with a python that has torch
(e.g. `pip install torch` in a venv outside the repo; set TESSERA_TORCH_PYTHON to it).
"""
import sys
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(2)
torch.manual_seed(0)
QUICK = "--quick" in sys.argv


def timeit(fn, min_time=0.5 if QUICK else 3.0, warmup=3):
    for _ in range(warmup):
        fn()
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time and n >= 5:
            return elapsed / n * 1e3


def main():
    print(f"# torch {torch.__version__}, threads {torch.get_num_threads()}", file=sys.stderr)
    for c, s in [(32, 35), (64, 79), (128, 196)]:
        x = torch.randn(1, c, s, s)
        w = torch.randn(c, c, 3, 3) * 0.05
        g = torch.randn(1, c, s - 2, s - 2)
        with torch.no_grad():
            print(f"conv2d_fwd/c{c}_{s}x{s} {timeit(lambda: F.conv2d(x, w)):.4f}")
        xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()

        def fwd_bwd():
            y = F.conv2d(xr, wr)
            return torch.autograd.grad(y, (xr, wr), g)

        print(f"conv2d_fwd_bwd/c{c}_{s}x{s} {timeit(fwd_bwd):.4f}")
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    print(f"matmul/1024 {timeit(lambda: a @ b):.4f}")


if __name__ == "__main__":
    main()
