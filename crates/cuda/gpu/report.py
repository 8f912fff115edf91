"""Writes the markdown report of a GPU bundle run from the files run.sh left in OUT."""
import os
import re
import sys

out = sys.argv[1]


def read(name):
    path = os.path.join(out, name)
    return open(path, encoding="utf-8", errors="replace").read() if os.path.exists(path) else ""


def times(text):
    """{id: [min, median, GB/s?, TFLOP/s?]} from "id min median [...]" lines."""
    rows = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and "/" in parts[0]:
            try:
                rows[parts[0]] = [float(p) for p in parts[1:]]
            except ValueError:
                pass
    return rows


print("# tessera GPU report\n")
print(f"Device: {read('device.txt').strip()}  ")
print(f"{read('bench_tessera.err').strip()}  \n")

print("## Tests\n")
print("| binary | result |\n|---|---|")
failures = []
for block in re.split(r"^=== (?!exit)", read("tests.log"), flags=re.M)[1:]:
    name = block.splitlines()[0].strip()
    results = re.findall(r"^test result: (.*)$", block, flags=re.M)
    code = re.findall(r"^=== exit (\d+)", block, flags=re.M)
    skips = block.count("SKIP:")
    status = "; ".join(results) or "no result"
    if code and code[-1] != "0":
        status = f"**FAILED (exit {code[-1]})** " + status
        failures.append((name, block))
    if skips:
        status += f" ({skips} SKIP lines)"
    print(f"| {name} | {status} |")
for name, block in failures:
    print(f"\n<details><summary>{name} output (tail)</summary>\n\n```\n{block[-6000:]}\n```\n</details>")

ours, torch = times(read("bench_tessera.txt")), times(read("bench_torch.txt"))
copy = ours.get("hbm/copy_1GiB")
peak_bw = copy[2] if copy else None
print("\n## Benchmarks (min over samples, CUDA events)\n")
if peak_bw:
    tc = torch.get("hbm/copy_1GiB")
    print(f"Device-to-device copy (1 GiB, read + write): {peak_bw:.0f} GB/s"
          + (f" (PyTorch `copy_`: {2 * 4 * 2**28 / (tc[0] * 1e-3) / 1e9:.0f} GB/s)" if tc else "") + "\n")
print("Ids ending in `_tf32`: convolutions with TF32 on both sides (tessera `ConvMath::Tf32`, "
      "cuDNN with `allow_tf32`); the others FP32, TF32 off. Ids ending in `_winograd`: tessera's "
      "FP32 weight gradient by Winograd F(4×4, 3×3) (`ConvAlgo::Winograd`) against cuDNN's FP32 "
      "weight gradient of the same case.\n")
print("| case | tessera ms | PyTorch ms | PyTorch / tessera | tessera GB/s | % of copy BW | tessera TFLOP/s | PyTorch TF32 ms |")
print("|---|---|---|---|---|---|---|---|")
for ident, row in ours.items():
    if ident.startswith("hbm/"):
        continue
    base = ident.removesuffix("_winograd")
    t = torch.get(base)
    t32 = torch.get(base + "_tf32")
    gbps = row[2] if len(row) > 2 and row[2] > 0 else None
    tflops = row[3] if len(row) > 3 and row[3] > 0 else None
    cells = [
        ident,
        f"{row[0]:.4f}",
        f"{t[0]:.4f}" if t else "–",
        f"{t[0] / row[0]:.2f}×" if t else "–",
        f"{gbps:.0f}" if gbps else "",
        f"{100 * gbps / peak_bw:.0f} %" if gbps and peak_bw else "",
        f"{tflops:.1f}" if tflops else "",
        f"{t32[0]:.4f}" if t32 else "",
    ]
    print("| " + " | ".join(cells) + " |")

# The Winograd weight gradient against the implicit GEMM on the same GPU: which one each shape
# should take (ConvAlgo::Winograd is off by default until this table says it pays).
winograd = [(i.removesuffix("_winograd"), row) for i, row in ours.items() if i.endswith("_winograd")]
if winograd:
    print("\n## Weight gradient: Winograd F(4×4, 3×3) against the implicit GEMM (FP32, min ms)\n")
    print("| case | implicit GEMM | Winograd | speed-up | cuDNN FP32 | Winograd / cuDNN throughput |")
    print("|---|---|---|---|---|---|")
    for base, row in winograd:
        gemm, t = ours.get(base), torch.get(base)
        print(f"| {base} | {f'{gemm[0]:.4f}' if gemm else '–'} | {row[0]:.4f} | "
              f"{f'{gemm[0] / row[0]:.2f}×' if gemm else '–'} | {f'{t[0]:.4f}' if t else '–'} | "
              f"{f'{t[0] / row[0]:.2f}' if t else '–'} |")


def criterion_times(text):
    """{id: "median unit"} from criterion's "id time: [low unit median unit high unit]" lines."""
    return {m.group(1): m.group(3) + " " + m.group(4)
            for m in re.finditer(r"^(\S+)\s+time:\s+\[(\S+ \S+) (\S+) (\S+) (\S+ \S+)\]",
                                 text, flags=re.M)}


def ms(value):
    """Milliseconds of a criterion "number unit" string."""
    number, unit = value.split()
    return float(number) * {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


# The criterion bench (`spade_norm`): tessera's CPU composite, GPU composite and fused kernel.
crit = criterion_times(read("bench_criterion.txt"))
crit_torch = times(read("bench_criterion_torch.txt"))
if crit:
    print("\n## Criterion `spade_norm` (median estimate; PyTorch: min / median ms)\n")
    print("| id | tessera | PyTorch eager |\n|---|---|---|")
    for ident, t in crit.items():
        tt = crit_torch.get(ident)
        print(f"| {ident} | {t} | {f'{tt[0]:.4f} / {tt[1]:.4f} ms' if tt else ''} |")

# One SinGAN epoch per scale on the GPU (`singan` bench, group singan_epoch_gpu).
epochs, epochs_torch = criterion_times(read("bench_singan.txt")), times(read("bench_singan_torch.txt"))
if epochs:
    print("\n## SinGAN training epoch on the GPU (tessera: criterion median; PyTorch: min / median ms; FP32, `_tf32` groups with TF32 convolutions on both sides, `_winograd` groups with tessera's Winograd weight gradients against PyTorch's FP32)\n")
    print("| id | tessera | PyTorch | tessera / PyTorch (median) |\n|---|---|---|---|")
    for ident, t in epochs.items():
        # Winograd weight gradients are tessera's choice of algorithm: against PyTorch's FP32 epoch.
        tt = epochs_torch.get(ident.replace("singan_epoch_gpu_winograd/", "singan_epoch_gpu/"))
        ratio = f"{ms(t) / tt[1]:.2f}" if tt else ""
        print(f"| {ident} | {t} | {f'{tt[0]:.2f} / {tt[1]:.2f} ms' if tt else ''} | {ratio} |")
elif read("bench_singan.txt"):
    print("\n## SinGAN training epoch on the GPU: no timings\n\n```\n" + read("bench_singan.txt")[-3000:] + "\n```")
