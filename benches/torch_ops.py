"""PyTorch side of benches/benches/ops.rs (see torch_timing.py)."""
import sys

import torch
import torch.nn.functional as F

from torch_timing import report, timeit


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


if __name__ == "__main__":
    main()
