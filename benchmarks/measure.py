"""Helpers shared by the benchmark scripts (run them as ``python benchmarks/NAME.py``): timing, the
CPU's peak and ISA, and zero-shot decisions for agreement checks."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import NamedTuple

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


class ZeroShot(NamedTuple):
    accuracy: float
    low: float  # 95 % bootstrap interval
    high: float
    by_class: dict[str, float]  # accuracy on each class's clips


def zero_shot_accuracy(model, audio, truth: list[str], classes: list[str], template: str,
                       sample_rate: int | None) -> ZeroShot:
    """Top-1 accuracy of ``model`` naming each clip's class with ``template`` prompts."""
    from clapkit.eval.metrics import bootstrap_interval

    text = model.embed_text([template.format(name) for name in classes])
    predicted = (model.embed_audio(audio, sample_rate=sample_rate) @ text.T).argmax(1).numpy()
    labels = np.array([classes.index(name) for name in truth])
    correct = predicted == labels
    low, high = bootstrap_interval(lambda idx: float(correct[idx].mean()), len(correct))
    by_class = {name: float(correct[labels == c].mean()) for c, name in enumerate(classes) if (labels == c).any()}
    return ZeroShot(float(correct.mean()), low, high, by_class)


def manifest_accuracy(model, manifest: Path, classes: list[str], template: str) -> tuple[int, ZeroShot]:
    """(clips, zero-shot result) on an evaluation manifest, each clip's first label its class."""
    from clapkit.data.manifest import read_manifest, resolve

    clips = read_manifest(manifest)
    paths = [str(resolve(manifest, clip)) for clip in clips]
    return len(clips), zero_shot_accuracy(model, paths, [clip.labels[0] for clip in clips], classes, template, None)


def print_accuracies(heading: str, sets: list[tuple[str, int, ZeroShot]], versus: str,
                     per_class: bool = True) -> None:
    """One row per ``(name, clips, result)`` with each accuracy's ratio to the last row's, then (with
    ``per_class``) each set's accuracy per class."""
    width = max(len(heading), *(len(name) for name, _, _ in sets))
    reference = max(sets[-1][2].accuracy, 1e-9)
    print(f"{heading:{width}} {'clips':>6} {'accuracy':>9}  {'95% interval':13} {'/ ' + versus:>7}")
    for name, n, result in sets:
        print(f"{name:{width}} {n:>6} {result.accuracy:>9.3f}  {result.low:.3f}-{result.high:.3f}   "
              f"{result.accuracy / reference:>6.2f}x")
    if not per_class:
        return
    classes = list(sets[-1][2].by_class)
    print(f"\naccuracy per class\n{'':{width}} " + " ".join(f"{name[:7]:>7}" for name in classes))
    for name, _, result in sets:
        print(f"{name:{width}} " + " ".join(f"{result.by_class.get(c, float('nan')):>7.2f}" for c in classes))
