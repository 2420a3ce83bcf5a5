"""fp32, bf16 and int8 inference side by side in one run: speed, agreement with fp32, and the
memory of an audio-only job.

    python benchmarks/bench_precision.py [--model PATH] [--manifest eval_gm.jsonl] [--clips 64]

Speed: the audio forward of msclap-2023's architecture (msclap's synthetic parity weights when
../shared/parity is present), batch 8 of 7 s clips, fastest of 3 after a warm-up, against the fp32
SGEMM peak measured in the same run. Agreement: with ``--model`` and ``--manifest`` (e.g. the
trained clapkit-small and the offline GM set), the cosine of each clip's embedding to fp32 and the
share of zero-shot top-1 decisions (over the manifest's first labels) that stay the same.
Memory: peak RSS of loading msclap-2023 and embedding 8 clips, whole model vs ``audio_only``, each
in a fresh process.
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from bench_inference import SHARED, build_model
from measure import best_of, cpu_isa, labelled_clips, measured_sgemm_gflops, zero_shot
from torch.utils.flop_counter import FlopCounterMode

import clapkit
from clapkit.pipeline import _quantized, cpu_has_native_bf16

# VmHWM, not ru_maxrss: the latter keeps the parent's peak across fork + exec.
RSS_SCRIPT = """
import re, sys, numpy as np, clapkit
m = clapkit.load(sys.argv[1], audio_only=sys.argv[2] == "1")
m.embed_audio([np.random.default_rng(i).standard_normal(44100 * 7).astype(np.float32) * 0.1 for i in range(8)], sample_rate=44100)
print(int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024)
"""


def variants(model: torch.nn.Module) -> dict[str, tuple[torch.nn.Module, torch.dtype | None]]:
    """Each precision as the pipeline runs it: (model, autocast dtype or None)."""
    import copy

    return {"fp32": (model, None), "bf16": (model, torch.bfloat16), "int8": (_quantized(copy.deepcopy(model)), None)}


def speed(models: dict, peak: float) -> dict[str, float]:
    batch = torch.randn(8, 44100 * 7) * 0.1
    fp32 = models["fp32"][0]
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        fp32.audio.encoder(fp32.audio.frontend(batch))
    flops = counter.get_total_flops()
    out = {}
    for name, (model, autocast) in models.items():
        with torch.inference_mode(), torch.autocast("cpu", dtype=autocast or torch.bfloat16, enabled=bool(autocast)):
            seconds = best_of(lambda: model.encode_audio(batch), 3, warmup=True)
        out[name] = seconds / 8 * 1000
        print(f"{name}: {out[name]:7.1f} ms/clip  ({flops / seconds / 1e9:6.1f} GFLOP/s = "
              f"{flops / seconds / 1e9 / peak:5.1%} of the fp32 SGEMM peak)  {out['fp32'] / out[name]:.2f}x fp32")
    return out


def agreement(model_path: str, manifest: Path, clips: int) -> None:
    paths, labels = labelled_clips(manifest, clips)
    results = {dtype: zero_shot(clapkit.load(model_path, dtype=dtype), paths, labels)
               for dtype in ("float32", "bfloat16", "int8")}
    reference, decisions = results["float32"]
    for dtype in ("bfloat16", "int8"):
        audio, chosen = results[dtype]
        cosine = torch.nn.functional.cosine_similarity(audio, reference)
        print(f"{dtype}: cosine to fp32 min {cosine.min():.5f} mean {cosine.mean():.5f}; top-1 decisions unchanged "
              f"{(chosen == decisions).float().mean():.1%} of {len(paths)} clips ({len(labels)} labels)")


def memory(checkpoint: Path) -> None:
    for audio_only in ("0", "1"):
        done = subprocess.run([sys.executable, "-c", RSS_SCRIPT, str(checkpoint), audio_only],
                              capture_output=True, text=True, check=True)
        print(f"peak RSS, load msclap-2023 + embed 8 clips, {'audio_only' if audio_only == '1' else 'whole model'}: "
              f"{float(done.stdout.strip().splitlines()[-1]):.0f} MB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a checkpoint for the agreement check (e.g. a clapkit-small run)")
    parser.add_argument("--manifest", type=Path, help="clips with labels (e.g. <offline>/eval_gm.jsonl)")
    parser.add_argument("--clips", type=int, default=64)
    args = parser.parse_args()
    torch.manual_seed(0)
    isa = cpu_isa()
    peak = measured_sgemm_gflops()
    print(f"CPU ISA {isa}, native bf16: {cpu_has_native_bf16()}, torch threads {torch.get_num_threads()}, "
          f"fp32 SGEMM measured now: {peak:.1f} GFLOP/s")
    model, _, how = build_model()
    print(f"msclap-2023 architecture ({how}), audio forward, batch 8 x 7 s:")
    speed(variants(model.eval()), peak)
    if args.model and args.manifest:
        agreement(args.model, args.manifest, args.clips)
    maker = SHARED / "parity" / "make_weights.py"
    if maker.is_file():  # memory needs the released .pth layout (a zip torch file, memory-mapped)
        spec = importlib.util.spec_from_file_location("make_weights", maker)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        raw = {k: torch.from_numpy(np.array(v, copy=True, order="C")) for k, v in module.make_weights("2023").items()}
        with tempfile.TemporaryDirectory() as tmp:
            torch.save({"model": raw}, Path(tmp) / "msclap-2023.pth")
            memory(Path(tmp) / "msclap-2023.pth")
    return 0


if __name__ == "__main__":
    sys.exit(main())
