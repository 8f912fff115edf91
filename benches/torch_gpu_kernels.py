"""PyTorch (eager, cuDNN) side of crates/cuda/examples/gpu_bench.rs, on the same GPU.

Prints "group/id min_ms median_ms" with the ids of gpu_bench, timed with CUDA events. SPADE
normalization is PyTorch's eager composition: batch/instance norm, then `* (1 + gamma) + beta`
(its backward through autograd). Convolutions run through cuDNN in FP32 with TF32 off (ids as
gpu_bench's) and with TF32 on (suffix `_tf32`). `--quick` takes fewer samples.
"""
import sys

import torch
import torch.nn.functional as F

QUICK = "--quick" in sys.argv
SAMPLES = 10 if QUICK else 40


def time_cuda(fn):
    """(min, median) ms of fn over SAMPLES calls after 3 warm-up calls, with CUDA events."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(SAMPLES):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return times[0], times[len(times) // 2]


def report(name, t):
    print(f"{name} {t[0]:.4f} {t[1]:.4f}", flush=True)


def data(shape, seed):
    g = torch.Generator(device="cuda").manual_seed(seed)
    return torch.rand(shape, device="cuda", generator=g) * 2 - 1


def spade_norm():
    for c, s in [(1024, 16), (1024, 32), (512, 64), (256, 128), (128, 256)]:
        for n in (1, 8):
            for instance in (False, True):
                if instance and n == 1:
                    continue
                shape = (n, c, s, s)
                x, gamma, beta, dy = (data(shape, i) for i in range(1, 5))
                kind = "instance" if instance else "batch"
                ident = f"{kind}_n{n}_c{c}_{s}x{s}"

                def norm(v):
                    if instance:
                        return F.instance_norm(v, eps=1e-5)
                    return F.batch_norm(v, None, None, training=True, eps=1e-5)

                with torch.no_grad():
                    normalized = norm(x)
                    report(f"spade_modulate/{ident}", time_cuda(lambda: normalized * (1 + gamma) + beta))
                    report(f"spade_norm_fwd/{ident}", time_cuda(lambda: norm(x) * (1 + gamma) + beta))
                xg, gg = x.clone().requires_grad_(), gamma.clone().requires_grad_()
                bg = beta.clone().requires_grad_()

                def fwd_bwd():
                    y = norm(xg) * (1 + gg) + bg
                    torch.autograd.grad(y, (xg, gg, bg), dy)

                # Backward alone = forward+backward minus forward (eager autograd cannot run it alone).
                both = time_cuda(fwd_bwd)
                with torch.no_grad():
                    fwd = time_cuda(lambda: norm(xg) * (1 + gg) + bg)
                report(f"spade_norm_bwd/{ident}", (both[0] - fwd[0], both[1] - fwd[1]))


CONV_CASES = [
    ("singan_3to32_250x188", (1, 3, 250, 188), (32, 3, 3, 3), 0, False),
    ("singan_32to32_250x188", (1, 32, 250, 188), (32, 32, 3, 3), 0, True),
    ("spade_151to128_n1_64x64", (1, 151, 64, 64), (128, 151, 3, 3), 1, False),
    ("spade_151to128_n8_64x64", (8, 151, 64, 64), (128, 151, 3, 3), 1, True),
    ("spade_128to512_n8_64x64", (8, 128, 64, 64), (512, 128, 3, 3), 1, True),
    ("spade_128to1024_n8_32x32", (8, 128, 32, 32), (1024, 128, 3, 3), 1, False),
    ("spade_128to256_n1_128x128", (1, 128, 128, 128), (256, 128, 3, 3), 1, False),
    ("spade_128to64_n1_256x256", (1, 128, 256, 256), (64, 128, 3, 3), 1, False),
]


def convs():
    torch.backends.cudnn.benchmark = True
    for tf32 in (False, True):
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        suffix = "_tf32" if tf32 else ""
        for ident, xs, ws, pad, backward in CONV_CASES:
            x, w = data(xs, 5), data(ws, 6)
            y = F.conv2d(x, w, padding=pad)
            gy = data(tuple(y.shape), 7)
            with torch.no_grad():
                report(f"conv2d_fwd/{ident}{suffix}", time_cuda(lambda: F.conv2d(x, w, padding=pad)))
            if backward:
                mask_in, mask_w = (True, False, False), (False, True, False)
                conv_bwd = torch.ops.aten.convolution_backward

                def dgrad():
                    conv_bwd(gy, x, w, None, (1, 1), (pad, pad), (1, 1), False, (0, 0), 1, mask_in)

                def wgrad():
                    conv_bwd(gy, x, w, None, (1, 1), (pad, pad), (1, 1), False, (0, 0), 1, mask_w)

                report(f"conv2d_dgrad/{ident}{suffix}", time_cuda(dgrad))
                report(f"conv2d_wgrad/{ident}{suffix}", time_cuda(wgrad))


def copy_bandwidth():
    src = torch.zeros(1 << 28, device="cuda")
    dst = torch.empty_like(src)
    report("hbm/copy_1GiB", time_cuda(lambda: dst.copy_(src)))


if __name__ == "__main__":
    print(f"# device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}", file=sys.stderr)
    copy_bandwidth()
    spade_norm()
    convs()
