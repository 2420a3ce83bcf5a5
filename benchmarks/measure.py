"""Timing helpers shared by the benchmark scripts (run them as ``python benchmarks/NAME.py``)."""
from __future__ import annotations

import time
from pathlib import Path

import torch


def best_of(fn, repeats: int = 3, warmup: bool = False) -> float:
    """The fastest of ``repeats`` timed calls of ``fn``, in seconds (after one untimed call if ``warmup``)."""
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measured_sgemm_gflops(n: int = 2048) -> float:
    """fp32 matrix-multiply throughput measured now: the peak to compare model FLOP/s against."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    return 2 * n**3 / best_of(lambda: a @ b, 5) / 1e9


def cpu_isa() -> str:
    """The widest x86 vector ISA this CPU reports (what the speed figures depend on)."""
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "other"
