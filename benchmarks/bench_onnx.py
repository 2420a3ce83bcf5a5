"""The ONNX export against the torch model in one run: speed, parity and decisions.

    python benchmarks/bench_onnx.py [--model clapkit-small] [--manifest <offline>/eval_gm.jsonl] [--clips 359]

Exports ``--model`` (default: the shipped clapkit-small) with ``clapkit export --onnx --int8`` into a
temporary folder. Speed: the audio encoder on a batch of 16 windows, torch float32, torch int8
(dynamic quantisation), onnxruntime float32 and int8, interleaved over 3 rounds, fastest of each
round, median of the rounds, with the CPU's ISA and the threads used. Agreement on the manifest's
clips against torch float32: the largest absolute difference of the embeddings (float32), the
cosine (int8), and the share of zero-shot top-1 decisions over the manifest's first labels that
stay the same.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch
from measure import best_of, cpu_isa, labelled_clips, zero_shot

import clapkit
from clapkit.weights.convert import export_checkpoint

VARIANTS = {"torch fp32": ("torch", "float32"), "torch int8": ("torch", "int8"),
            "onnxruntime fp32": ("onnx", "float32"), "onnxruntime int8": ("onnx", "int8")}


def timings(pipelines: dict, clip_samples: int, rounds: int = 3) -> dict[str, float]:
    batch = torch.randn(16, clip_samples) * 0.1
    per_round: dict[str, list[float]] = {name: [] for name in pipelines}
    for _ in range(rounds):
        for name, pipeline in pipelines.items():
            with torch.inference_mode():
                per_round[name].append(best_of(lambda p=pipeline: p.model.encode_audio(batch), 2, warmup=True))
    return {name: statistics.median(values) / 16 * 1000 for name, values in per_round.items()}


def agreement(pipelines: dict, manifest: Path, clips: int) -> None:
    paths, labels = labelled_clips(manifest, clips)
    results = {name: zero_shot(pipeline, paths, labels) for name, pipeline in pipelines.items()}
    reference, decisions = results["torch fp32"]
    for name, (audio, chosen) in results.items():
        if name == "torch fp32":
            continue
        cosine = torch.nn.functional.cosine_similarity(audio, reference)
        unit = (torch.nn.functional.normalize(audio, dim=-1) - torch.nn.functional.normalize(reference, dim=-1))
        print(f"{name:17}: max |diff| {(audio - reference).abs().max():.2e} (L2-normalised: "
              f"{unit.abs().max():.2e}; largest |value| {reference.abs().max():.1f}), cosine min {cosine.min():.5f}, "
              f"top-1 decisions unchanged {(chosen == decisions).float().mean():.1%} of {len(paths)} clips "
              f"({len(labels)} labels)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="clapkit-small")
    parser.add_argument("--manifest", type=Path, help="clips with labels (e.g. <offline>/eval_gm.jsonl)")
    parser.add_argument("--clips", type=int, default=359)
    args = parser.parse_args()
    isa = cpu_isa()
    print(f"CPU ISA {isa}, torch threads {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder, _ = export_checkpoint(args.model, Path(tmp) / "onnx", int8=True)
        pipelines = {name: clapkit.load(args.model if kind == "torch" else folder, dtype=dtype)
                     for name, (kind, dtype) in VARIANTS.items()}
        clip_samples = pipelines["torch fp32"].clip_samples
        speeds = timings(pipelines, clip_samples)
        print(f"{args.model} audio encoder, batch 16 windows, median of 3 interleaved rounds:")
        for name, ms in speeds.items():
            print(f"{name:17}: {ms:6.1f} ms/window  {speeds['torch fp32'] / ms:4.2f}x torch fp32")
        if args.manifest:
            agreement(pipelines, args.manifest, args.clips)
    return 0


if __name__ == "__main__":
    sys.exit(main())
