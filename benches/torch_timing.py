"""Shared timing helpers for the PyTorch side of `cargo xtask bench`.

Each benches/torch_<name>.py times with PyTorch the work of benches/benches/<name>.rs, on this machine, with
2 threads, and prints one line per benchmark: "<group>/<id> <min ms> <median ms>", the ids matching criterion's,
for `cargo xtask bench` to pair with tessera's times. Run with a python that has torch (e.g. `pip install torch`
in a venv outside the repo; set TESSERA_TORCH_PYTHON to it).
"""
import statistics
import sys
import time

import torch

torch.set_num_threads(2)
torch.manual_seed(0)
QUICK = "--quick" in sys.argv


def timeit(fn, min_time=0.5 if QUICK else 3.0, warmup=3):
    """(min, median) wall time in ms of one call; see xtask's bench for why both."""
    for _ in range(warmup):
        fn()
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < min_time or len(times) < 5:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) * 1e3, statistics.median(times) * 1e3


def report(name, times):
    print(f"{name} {times[0]:.4f} {times[1]:.4f}", flush=True)
