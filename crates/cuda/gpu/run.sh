#!/usr/bin/env bash
# Runs the GPU bundle built by `cargo xtask gpu-bundle` on a machine with an NVIDIA GPU and no
# Rust toolchain: every CUDA test binary, the kernel benchmarks, PyTorch timing the same work,
# and one markdown report, written to $OUT (default: ./out beside this script).
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
OUT="${OUT:-$HERE/out}"
mkdir -p "$OUT"
QUICK="${QUICK:-}"

# libcuda comes with the driver; libnvrtc.so.13 with a CUDA 13 toolkit or the PyPI wheel
# nvidia-cuda-nvrtc. cudarc dlopens both by name, so their folders go on LD_LIBRARY_PATH.
find_lib() {
    local name="$1"
    ldconfig -p 2>/dev/null | awk -v n="$name" '$1 == n {print $NF; exit}' | xargs -r dirname
    for d in /usr/local/cuda/lib64 /usr/local/cuda-13*/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
             /usr/lib/x86_64-linux-gnu /usr/local/nvidia/lib64 /usr/lib64; do
        [ -e "$d/$name" ] && echo "$d"
    done
    python3 - "$name" 2>/dev/null <<'PY'
import glob, os, site, sys
for base in site.getsitepackages() + [site.getusersitepackages()]:
    for hit in glob.glob(os.path.join(base, "nvidia", "**", sys.argv[1]), recursive=True):
        print(os.path.dirname(hit))
PY
}
for lib in libcuda.so.1 libnvrtc.so.13; do
    dir="$(find_lib "$lib" | head -n1)"
    if [ -n "$dir" ]; then
        export LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        echo "found $lib in $dir"
    else
        echo "WARNING: $lib not found" >&2
    fi
done

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader \
    > "$OUT/device.txt" 2>&1 || echo "nvidia-smi failed" > "$OUT/device.txt"
cat "$OUT/device.txt"

# The report is rewritten after every stage, so a run cut short by a time limit still leaves one
# for the stages that finished. Stages run in order of importance: correctness first.
report() { python3 "$HERE/report.py" "$OUT" > "$OUT/report.md"; }
# QUICK=--quick: fewer samples in the scripts, and 1 s instead of 3 s of criterion warm-up (the
# benches set their own measurement times, which criterion's command line does not override).
CRITERION_TIME=()
[ -n "$QUICK" ] && CRITERION_TIME=(--warm-up-time 1)

# Tests: the CUDA test binaries compare every GPU op with the CPU backend.
: > "$OUT/tests.log"
for t in "$HERE"/tests/*; do
    echo "=== $(basename "$t")" | tee -a "$OUT/tests.log"
    timeout 600 "$t" --test-threads=1 2>&1 | tee -a "$OUT/tests.log"
    echo "=== exit ${PIPESTATUS[0]}" | tee -a "$OUT/tests.log"
done
report

# Benchmarks: tessera's kernels, then PyTorch on the same GPU.
timeout 300 "$HERE/bin/gpu_bench" $QUICK > "$OUT/bench_tessera.txt" 2> "$OUT/bench_tessera.err"
echo "gpu_bench exit $?"; cat "$OUT/bench_tessera.err"
timeout 300 python3 "$HERE/torch_gpu_kernels.py" $QUICK > "$OUT/bench_torch.txt" 2> "$OUT/bench_torch.err"
echo "torch exit $?"; tail -n 5 "$OUT/bench_torch.err"
report

# One SinGAN training epoch per scale with everything on the GPU (the singan criterion bench's
# GPU groups only: FP32, then TF32 convolutions), then PyTorch's epochs on the same GPU.
(cd "$HERE" && timeout 300 ./bin/singan --bench singan_epoch_gpu "${CRITERION_TIME[@]}" > "$OUT/bench_singan.txt" 2>&1)
echo "singan exit $?"
(cd "$HERE" && timeout 180 python3 torch_singan.py --cuda $QUICK > "$OUT/bench_singan_torch.txt" 2>&1)
echo "torch_singan exit $?"
report

# The criterion bench users extend with their own normalization kernel (CPU and GPU cases).
(cd "$HERE" && timeout 240 ./bin/spade_norm --bench "${CRITERION_TIME[@]}" > "$OUT/bench_criterion.txt" 2>&1)
echo "spade_norm exit $?"
(cd "$HERE" && timeout 120 python3 torch_spade_norm.py > "$OUT/bench_criterion_torch.txt" 2>&1)
echo "torch_spade_norm exit $?"

report
cat "$OUT/report.md"
