"""PyTorch side of benches/benches/spade_model.rs (see torch_timing.py).

The networks are the PyTorch implementation of the reference description in
tests/fixtures/make_spade_model.py (the golden fixtures' reference): the ADE20K generator
(semantic_nc 151, ngf 64, hidden 128, batch norm, spectral norm) in eval mode under no_grad, and
one training iteration of the small configuration (13 classes, ngf = ndf = 32, 128², hidden 64,
batch 2, no VGG): a generator step (hinge + feature matching, gradients for G's parameters, Adam)
then a discriminator step on a regenerated fake (gradients for D's parameters, Adam), TTUR.
"""
import os
import sys

import torch
import torch.nn.functional as F

from torch_timing import report, timeit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures"))
import make_spade_model as m  # noqa: E402


def label_map(classes, size):
    i = torch.arange(size * size)
    ids = ((i % size) // 16 + (i // size) // 32) % classes
    return F.one_hot(ids.reshape(1, size, size), classes).permute(0, 3, 1, 2).float()


def generator_ade20k():
    g = m.Generator(151, 64, 256, 128).eval()
    seg = label_map(151, 256)
    with torch.no_grad():
        report("spade_model/generator_ade20k_256_eval", timeit(lambda: g(seg), warmup=1))


def train_iter_small():
    g = m.Generator(13, 32, 128, 64).train()
    d = m.MultiscaleD(13 + 3, 32, 4, 2).train()
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-4, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(d.parameters(), lr=4e-4, betas=(0.0, 0.9))
    seg = torch.cat([label_map(13, 128)] * 2)
    real = (torch.randn(2, 3, 128, 128) * 0.5).clamp(-1, 1)

    def discriminate(fake):
        both = torch.cat([torch.cat([seg, fake], 1), torch.cat([seg, real], 1)], 0)
        outs = d(both)
        return [[o[:2] for o in s] for s in outs], [[o[2:] for o in s] for s in outs]

    def iteration():
        fake = g(seg)
        pf, pr = discriminate(fake)
        gan = sum(-o[-1].mean() for o in pf) / len(pf)
        feat = sum(F.l1_loss(f, r.detach()) * 10.0 / len(pf) for fs, rs in zip(pf, pr) for f, r in zip(fs[:-1], rs[:-1]))
        grads = torch.autograd.grad(gan + feat, list(g.parameters()))
        for p, gr in zip(g.parameters(), grads):
            p.grad = gr
        opt_g.step()
        with torch.no_grad():
            fake = g(seg)
        pf, pr = discriminate(fake)
        loss_d = sum(F.relu(1 + o[-1]).mean() for o in pf) / len(pf) + sum(F.relu(1 - o[-1]).mean() for o in pr) / len(pr)
        grads = torch.autograd.grad(loss_d, list(d.parameters()))
        for p, gr in zip(d.parameters(), grads):
            p.grad = gr
        opt_d.step()

    report("spade_model/train_iter_small_128_b2", timeit(iteration, warmup=1))


if __name__ == "__main__":
    generator_ade20k()
    train_iter_small()
