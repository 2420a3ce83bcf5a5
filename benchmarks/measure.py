"""Helpers shared by the benchmark scripts (run them as ``python benchmarks/NAME.py``): timing, the
CPU's peak and ISA, and zero-shot decisions for agreement checks."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
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


def labelled_clips(manifest: Path, clips: int) -> tuple[list[str], list[str]]:
    """The first ``clips`` files of a manifest and the sorted set of their first labels."""
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()][:clips]
    return [str((manifest.parent / r["path"]).resolve()) for r in rows], sorted({r["labels"][0] for r in rows})


def zero_shot(pipeline, paths: list[str], labels: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(un-normalised audio embeddings, top-1 label index per clip)`` with "this is the sound of {label}"."""
    audio = pipeline.embed_audio(paths, normalize=False)
    text = pipeline.embed_text([f"this is the sound of {label}" for label in labels])
    return audio, (torch.nn.functional.normalize(audio, dim=-1) @ text.T).argmax(1)


def zero_shot_accuracy(model, audio, truth: list[str], classes: list[str], template: str,
                       sample_rate: int | None) -> tuple[float, float, float]:
    """Top-1 accuracy of ``model`` naming each clip's class with ``template`` prompts, and its 95 %
    bootstrap interval: (accuracy, low, high)."""
    from clapkit.eval.metrics import bootstrap_interval

    text = model.embed_text([template.format(name) for name in classes])
    predicted = (model.embed_audio(audio, sample_rate=sample_rate) @ text.T).argmax(1).numpy()
    correct = predicted == np.array([classes.index(name) for name in truth])
    low, high = bootstrap_interval(lambda idx: float(correct[idx].mean()), len(correct))
    return float(correct.mean()), low, high


def print_accuracies(heading: str, sets: list[tuple[str, int, tuple[float, float, float]]], versus: str) -> None:
    """One row per ``(name, clips, (accuracy, low, high))``, with each accuracy's ratio to the last row's."""
    width = max(len(heading), *(len(name) for name, _, _ in sets))
    reference = max(sets[-1][2][0], 1e-9)
    print(f"{heading:{width}} {'clips':>6} {'accuracy':>9}  {'95% interval':13} {'/ ' + versus:>7}")
    for name, n, (value, low, high) in sets:
        print(f"{name:{width}} {n:>6} {value:>9.3f}  {low:.3f}-{high:.3f}   {value / reference:>6.2f}x")
