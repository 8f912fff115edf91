"""PyTorch side of benches/benches/spade.rs (see torch_timing.py)."""
import torch
import torch.nn.functional as F

from torch_timing import report, timeit


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
    spade()
