#!/usr/bin/env python3
"""Convert a model trained with the official SinGAN code (github.com/tamarott/SinGAN) into a
tessera-singan model folder, which `singan sample`, `singan reconstruct` and the other commands
read.

    python convert_official.py TrainedModels/<name>/scale_factor=0.750000,alpha=10 OUT_DIR \
        [--min-size 25] [--max-size 250] [--orig-size H W]

The official training writes, in `TrainedModels/<name>/scale_factor=<sf0>,alpha=<alpha>/`:
  * `reals.pth`: the list of the pyramid's images, coarsest first, [1, 3, H_n, W_n] in [-1, 1];
  * `Zs.pth`: the list of the padded reconstruction noises (z* at scale 0, zeros after), one per
    trained scale;
  * `NoiseAmp.pth`: the list of noise amplitudes (1 at scale 0, 0-d tensors after);
  * `Gs.pth`: the list of the frozen generators as pickled modules;
  * `<n>/netG.pth`, `<n>/netD.pth`: the state dicts of scale n's generator and critic.

The generators are read from the `<n>/netG.pth` state dicts rather than from `Gs.pth`: the
weights are the same (the official code saves both from the same module at the end of each
scale), and unpickling whole modules would need the official code and run code from the file,
where a state dict loads with `weights_only=True`.

The scale factor is not saved by the official code; it is recomputed from the finest real's size
as the official `adjust_scales2image` does: sf = (min_size / min(H_N, W_N)) ** (1 / N). Pass
the `--min_size` the model was trained with (default 25); the pyramid's sizes are checked
against it. `scale1` (how much the original image was shrunk) is only needed to re-train;
without `--orig-size` it is stored as 1.

Output (see "Model folder format" in crates/singan/src/lib.rs): `pyramid.safetensors` and one
`scale_NN.safetensors` per trained scale, float32, with the reference parameter names under
`netG.` / `netD.` (`netG.head.conv.weight`, `netG.body.block1.norm.running_var`,
`netG.tail.0.weight`, `netD.tail.weight`, ...; `num_batches_tracked` as a float32 scalar).

Needs torch and safetensors (not numpy beyond what torch brings).
"""

import argparse
import json
import math
import os
import re
import sys

import torch
from safetensors.torch import save_file

FORMAT = "tessera-singan"
FORMAT_VERSION = "1"
PAD = 5
MAX_WIDTH = 128  # the official code caps nfc at 128


class ConversionError(Exception):
    pass


def find_model_dir(path):
    """`path` itself when it holds reals.pth, else its single `scale_factor=...` subfolder."""
    if os.path.exists(os.path.join(path, "reals.pth")):
        return path
    candidates = sorted(
        d for d in os.listdir(path)
        if d.startswith("scale_factor=") and os.path.exists(os.path.join(path, d, "reals.pth"))
    ) if os.path.isdir(path) else []
    if len(candidates) == 1:
        return os.path.join(path, candidates[0])
    if not candidates:
        raise ConversionError(f"{path}: no reals.pth here nor in a scale_factor=... subfolder")
    raise ConversionError(f"{path}: several trained models ({', '.join(candidates)}); name one")


def parse_folder_name(model_dir):
    """(sf0, alpha, noise_padding) from `scale_factor=0.750000,alpha=10[_noise_padding]`."""
    name = os.path.basename(os.path.normpath(model_dir))
    match = re.match(r"scale_factor=([0-9.]+)(?:,alpha=([0-9.]+))?(_noise_padding)?", name)
    if not match:
        print(f"note: {name} is not a scale_factor=...,alpha=... folder; assuming sf0 0.75, alpha 10",
              file=sys.stderr)
        return 0.75, 10.0, False
    return float(match.group(1)), float(match.group(2) or 10), bool(match.group(3))


def load(path):
    if not os.path.exists(path):
        raise ConversionError(f"{path}: missing")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file: name it
        raise ConversionError(f"{path}: cannot read: {e}") from e


def as_float(x):
    return float(x.item()) if torch.is_tensor(x) else float(x)


def state_tensors(state, prefix, path):
    out = {}
    for name, t in state.items():
        if not torch.is_tensor(t):
            raise ConversionError(f"{path}: entry {name} is not a tensor")
        out[prefix + name] = t.detach().to(torch.float32).contiguous()
    return out


def width_for_scale(n, base, cap):
    return min(base * 2 ** (n // 4), cap)


def convert(src, out_dir, min_size, max_size, orig_size):
    model_dir = find_model_dir(src)
    sf0, alpha, noise_padding = parse_folder_name(model_dir)
    reals = load(os.path.join(model_dir, "reals.pth"))
    zs = load(os.path.join(model_dir, "Zs.pth"))
    noise_amp = load(os.path.join(model_dir, "NoiseAmp.pth"))
    if not reals or len(zs) > len(reals) or len(noise_amp) != len(zs):
        raise ConversionError(
            f"{model_dir}: {len(reals)} reals, {len(zs)} Zs and {len(noise_amp)} NoiseAmp do not fit")
    shapes = [[int(r.shape[2]), int(r.shape[3])] for r in reals]
    n_last = len(reals) - 1
    h_n, w_n = shapes[-1]
    if n_last == 0:
        raise ConversionError(f"{model_dir}: a single scale; the official code always makes more")
    sf = (min_size / min(h_n, w_n)) ** (1.0 / n_last)
    expected = [[math.ceil(h_n * sf ** (n_last - i)), math.ceil(w_n * sf ** (n_last - i))]
                for i in range(len(reals))]
    if expected != shapes:
        raise ConversionError(
            f"{model_dir}: the reals' sizes {shapes} are not the pyramid of min_size {min_size} "
            f"(that gives {expected}); pass the --min-size the model was trained with")
    scale1 = 1.0
    if orig_size:
        scale1 = min(max_size / max(orig_size), 1.0)

    scale_states = []
    for n in range(len(zs)):
        g_path = os.path.join(model_dir, str(n), "netG.pth")
        tensors = state_tensors(load(g_path), "netG.", g_path)
        d_path = os.path.join(model_dir, str(n), "netD.pth")
        if os.path.exists(d_path):
            tensors.update(state_tensors(load(d_path), "netD.", d_path))
        if "netG.head.conv.weight" not in tensors:
            raise ConversionError(f"{g_path}: not a SinGAN generator (no head.conv.weight)")
        scale_states.append((tensors, int(tensors["netG.head.conv.weight"].shape[0])))
    widths = [w for _, w in scale_states]
    if any(w != width_for_scale(n, widths[0], MAX_WIDTH) for n, w in enumerate(widths)):
        raise ConversionError(
            f"{model_dir}: widths {widths} do not follow the official schedule "
            f"(doubling every 4 scales up to {MAX_WIDTH})")

    config = {
        "pyramid": {"scale_factor_init": sf0, "min_size": min_size, "max_size": max_size},
        "iterations": 2000, "d_steps": 3, "g_steps": 3, "lr_g": 5e-4, "lr_d": 5e-4,
        "betas": [0.5, 0.999], "lr_milestone": 1600, "lr_gamma": 0.1, "lambda_grad": 0.1,
        "alpha": alpha, "noise_amp_init": 0.1, "width": widths[0], "max_width": MAX_WIDTH,
        # The official code redraws z* at every epoch of scale 0.
        "fixed_z_star": False, "noise_padding": noise_padding, "seed": 0,
    }
    common = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "num_scales": str(len(reals)),
        "scale_factor": repr(sf), "scale1": repr(scale1), "shapes": json.dumps(shapes),
        "config": json.dumps(config),
    }

    os.makedirs(out_dir, exist_ok=True)
    for name in os.listdir(out_dir):
        if name == "pyramid.safetensors" or re.fullmatch(r"scale_\d+\.safetensors", name):
            raise ConversionError(f"{out_dir}: already holds a model ({name}); choose another folder")
    real_tensors = {f"real.{i}": r.detach().to(torch.float32).contiguous() for i, r in enumerate(reals)}
    write(os.path.join(out_dir, "pyramid.safetensors"), real_tensors, common)
    for n, (tensors, width) in enumerate(scale_states):
        tensors["real"] = real_tensors[f"real.{n}"]
        if n == 0:
            z = zs[0].detach().to(torch.float32).contiguous()
            if list(z.shape) != [1, 3, shapes[0][0] + 2 * PAD, shapes[0][1] + 2 * PAD]:
                raise ConversionError(f"{model_dir}/Zs.pth: z* is {list(z.shape)}, not the padded scale-0 size")
            tensors["z_opt"] = z
        meta = dict(common, scale=str(n), width=str(width), noise_amp=repr(as_float(noise_amp[n])))
        write(os.path.join(out_dir, f"scale_{n:02d}.safetensors"), tensors, meta)
    return len(zs), len(reals), sf


def write(path, tensors, metadata):
    """Atomically: a temporary file in the same folder, then a rename."""
    tmp = path + ".tmp"
    save_file(tensors, tmp, metadata=metadata)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="TrainedModels/<name>/scale_factor=...,alpha=... (or TrainedModels/<name>)")
    parser.add_argument("out", help="the tessera-singan model folder to write")
    parser.add_argument("--min-size", type=int, default=25, help="the official --min_size (default 25)")
    parser.add_argument("--max-size", type=int, default=250, help="the official --max_size (default 250)")
    parser.add_argument("--orig-size", type=int, nargs=2, metavar=("H", "W"),
                        help="the training image's size before the max-size shrink")
    args = parser.parse_args(argv)
    try:
        trained, total, sf = convert(args.model, args.out, args.min_size, args.max_size, args.orig_size)
    except ConversionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"converted {trained} of {total} scales (scale factor {sf:.6f}) into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
