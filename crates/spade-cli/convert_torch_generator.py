#!/usr/bin/env python3
"""Convert a PyTorch SPADE generator checkpoint to safetensors that tessera loads.

    python convert_torch_generator.py latest_net_G.pth G.safetensors
    spade synth --weights G.safetensors --config ade20k ...

The input is a `torch.save`d state_dict of the reference generator (keys such as
`head_0.norm_0.mlp_shared.0.weight`, `head_0.conv_0.weight_orig` / `weight_u` / `weight_v`,
`head_0.norm_0.param_free_norm.running_mean`, `fc.weight`, `conv_img.weight`), in either the
zip format or the legacy (PyTorch < 1.6) pickle format; a dict holding it under "state_dict"
and DataParallel's "module." prefixes are accepted too. The key names stay as they are, so
tessera's generator (`tessera_spade::load_generator`) takes them 1:1. Every tensor is written as
float32 (`num_batches_tracked` becomes a float32 scalar). Spectral-normed convs keep
`weight_orig`, `weight_u` and `weight_v`: in eval mode tessera divides `weight_orig` by
u . (W v) with the stored vectors, exactly as PyTorch does.

Needs torch, safetensors and numpy (e.g. `pip install torch safetensors numpy` in a venv). The
script also prints the architecture it reads from the shapes (semantic_nc, ngf, upsampling
layers, VAE or not) so the matching `spade` flags can be chosen.
"""

import argparse
import os
import sys
import tempfile

import torch
from safetensors.torch import save_file


def load_state_dict(path):
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj:
        raise SystemExit(f"{path}: not a state_dict (a mapping from names to tensors)")
    out = {}
    for key, value in obj.items():
        if not torch.is_tensor(value):
            raise SystemExit(f"{path}: entry {key!r} is not a tensor")
        name = key[len("module."):] if key.startswith("module.") else key
        out[name] = value.detach().to(torch.float32).contiguous()
    return out


def describe(state):
    """The architecture implied by the shapes, as `spade` flags."""
    fc = state.get("fc.weight")
    if fc is None:
        return "no fc.weight: this does not look like a SPADE generator"
    parts = []
    if fc.dim() == 4:
        parts.append(f"semantic_nc {fc.shape[1]} (label channels + dontcare + instance edge)")
        parts.append(f"--ngf {fc.shape[0] // 16}")
    else:
        parts.append(f"--use-vae (z_dim {fc.shape[1]})")
    if "up_4.conv_0.weight_orig" in state or "up_4.conv_0.weight" in state:
        parts.append("--num-upsampling-layers most")
    spectral = any(k.endswith("weight_orig") for k in state)
    norm = "batch" if any(k.endswith("running_mean") for k in state) else "instance"
    parts.append(f"norm_G {'spectral' if spectral else ''}spade{norm}")
    return ", ".join(parts)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", help="PyTorch checkpoint (.pth) of the generator")
    parser.add_argument("output", help="safetensors file to write")
    args = parser.parse_args(argv)
    state = load_state_dict(args.input)
    out_dir = os.path.dirname(os.path.abspath(args.output))
    # Written next to the destination and renamed over it, so a failure leaves no half file.
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".convert-", suffix=".safetensors")
    os.close(fd)
    try:
        save_file(state, tmp, metadata={"format": "pt", "source": os.path.basename(args.input)})
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, args.output)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    print(f"{args.output}: {len(state)} tensors; {describe(state)}", file=sys.stderr)


if __name__ == "__main__":
    main()
