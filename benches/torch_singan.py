"""PyTorch timing of one SinGAN training epoch, the work of benches/benches/singan.rs: 3 critic steps
(-mean D(real) + mean D(fake) + 0.1 * per-pixel gradient penalty, Adam step) and 3 generator steps
(-mean D(G(z)) + 10 * MSE reconstruction, Adam step; the fake regenerated at each step, as tessera
does), with the reference's per-scale networks built from torch.nn, at (width 32, 25x34),
(64, 69x91), (128, 145x193). 2 threads (torch_timing).

With --cuda: the same epochs on the GPU, the GPU synchronized at the end of each timed epoch: in
FP32 (TF32 off, tessera's default), ids singan_epoch_gpu/..., then with TF32 convolutions (cuDNN's
allow_tf32, tessera's set_cuda_conv_tf32), ids singan_epoch_gpu_tf32/...."""
import sys

import torch
import torch.nn as nn

from torch_timing import QUICK, report, timeit

PAD = 5


def block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2))


class Generator(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.net = nn.Sequential(block(3, width), *[block(width, width) for _ in range(3)],
                                 nn.Conv2d(width, 3, 3), nn.Tanh())

    def forward(self, x, y):
        o = self.net(x)
        d = (y.shape[2] - o.shape[2]) // 2
        return o + y[:, :, d:y.shape[2] - d, d:y.shape[3] - d]


def critic(width):
    return nn.Sequential(block(3, width), *[block(width, width) for _ in range(3)], nn.Conv2d(width, 1, 3))


def penalty(D, real, fake, alpha):
    x = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    g = torch.autograd.grad(D(x).sum(), x, create_graph=True)[0]
    return ((g.norm(2, dim=1) - 1) ** 2).mean() * 0.1


CUDA = "--cuda" in sys.argv


def main():
    for tf32 in [False, True] if CUDA else [False]:
        if CUDA:
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
        epochs(f"singan_epoch{'_gpu' if CUDA else ''}{'_tf32' if tf32 else ''}")


def epochs(group):
    device = torch.device("cuda" if CUDA else "cpu")
    for width, h, w in [(32, 25, 34), (64, 69, 91), (128, 145, 193)]:
        G, D = Generator(width).to(device), critic(width).to(device)
        opt_g = torch.optim.Adam(G.parameters(), lr=5e-4, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(D.parameters(), lr=5e-4, betas=(0.5, 0.999))
        padded = lambda: nn.functional.pad(torch.rand(1, 3, h, w) * 2 - 1, [PAD] * 4).to(device)
        real = (torch.rand(1, 3, h, w) * 2 - 1).to(device)
        noise, z_prev = padded(), padded()
        prevs = [padded() for _ in range(3)]
        z_opt = torch.zeros_like(z_prev)
        amp = 0.1

        def epoch():
            for prev, a in zip(prevs, [0.3, 0.6, 0.9]):
                opt_d.zero_grad()
                fake = G(amp * noise + prev, prev).detach()
                err = -D(real).mean() + D(fake).mean() + penalty(D, real, fake, a)
                err.backward()
                opt_d.step()
            prev = prevs[-1]
            for _ in range(3):
                opt_g.zero_grad()
                err = -D(G(amp * noise + prev, prev)).mean()
                err = err + 10 * nn.functional.mse_loss(G(amp * z_opt + z_prev, z_prev), real)
                err.backward()
                opt_g.step()
            if CUDA:
                torch.cuda.synchronize()

        big = h * w > 20000 and not CUDA
        times = timeit(epoch, min_time=(0.5 if QUICK else 3.0) * (4 if big else 1), warmup=1 if big else 3)
        report(f"{group}/w{width}_{h}x{w}", times)


if __name__ == "__main__":
    main()
