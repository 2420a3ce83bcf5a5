"""Inference throughput of the msclap-2023 architecture on CPU, measured in one run.

    python benchmarks/bench_inference.py [--threads 2] [--clips 16] [--batch-size 8]

Prints: the CPU's fp32 peak (theoretical from the clock and AVX2/AVX-512 FMA width, and a measured
SGEMM), the HTSAT forward's FLOPs and achieved GFLOP/s, files→embeddings throughput for 7 s clips
from 44.1 kHz and 48 kHz stereo files (WAV and FLAC) against the model-only time on the same
clips, and text throughput for 5-word prompts. Weights are msclap's synthetic parity weights when
../shared/parity is present (speed does not depend on the values), else a random init.
"""
from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from measure import best_of, measured_sgemm_gflops
from torch.utils.flop_counter import FlopCounterMode

from clapkit.models.factory import create_model, get_config
from clapkit.models.htsat import rows_per_pass
from clapkit.pipeline import ClapPipeline
from clapkit.weights.formats.msclap import convert_msclap_state_dict
from clapkit.weights.loading import load_state_dict_strict

SHARED = Path(__file__).resolve().parents[2] / "shared"


def theoretical_peak_gflops(threads: int) -> tuple[float, str]:
    info = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    mhz = re.search(r"CPU max MHz:\s*([\d.]+)", info) or re.search(r"BogoMIPS:\s*([\d.]+)", info)
    ghz = float(mhz.group(1)) / (1000 if "max MHz" in mhz.group(0) else 2000)
    flags = re.search(r"Flags:(.*)", info).group(1).split()
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    per_cycle = lanes * 2 * 2  # two FMA pipes, an FMA = 2 FLOPs
    return threads * ghz * per_cycle, f"{threads} cores x {ghz:.2f} GHz x {per_cycle} FLOP/cycle"


def build_model() -> tuple[torch.nn.Module, dict, str]:
    config = get_config("msclap-2023")
    model = create_model(config).eval()
    maker = SHARED / "parity" / "make_weights.py"
    if not maker.is_file():
        return model, config, "random init"
    spec = importlib.util.spec_from_file_location("make_weights", maker)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    raw = {k: torch.from_numpy(np.array(v, copy=True, order="C")) for k, v in module.make_weights("2023").items()}
    load_state_dict_strict(model, convert_msclap_state_dict(raw, "msclap-2023"), "synthetic msclap-2023")
    return model, config, "msclap synthetic parity weights"


def write_clips(folder: Path, count: int, rate: int, fmt: str) -> list[str]:
    rng = np.random.default_rng(rate)
    paths = []
    for i in range(count):
        t = np.arange(7 * rate) / rate
        left = 0.3 * np.sin(2 * np.pi * (200 + 50 * i) * t) + 0.05 * rng.standard_normal(t.size)
        stereo = np.stack([left, np.roll(left, 100)], axis=1).astype(np.float32)
        path = folder / f"clip{i}_{rate}.{fmt}"
        sf.write(path, stereo, rate, subtype="PCM_16")
        paths.append(str(path))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    peak, how = theoretical_peak_gflops(args.threads)
    sgemm = measured_sgemm_gflops()
    print(f"threads: {args.threads}")
    print(f"fp32 peak (theoretical): {peak:.1f} GFLOP/s ({how})")
    print(f"fp32 SGEMM 2048^3 (measured): {sgemm:.1f} GFLOP/s ({sgemm / peak:.0%} of theoretical)")

    model, config, weights = build_model()
    print(f"model: msclap-2023 architecture, {weights}")
    clap = ClapPipeline(model, config, str(SHARED / "tokenizers" / "gpt2"))
    batch = torch.randn(args.batch_size, clap.clip_samples) * 0.1

    # The pipeline's default CPU batching (rows_per_pass) applies to the model-only timings too.
    with torch.inference_mode(), rows_per_pass(clap.rows_per_pass):
        features = model.audio.frontend(batch)
        encoder = model.audio.encoder
        with FlopCounterMode(display=False) as counter:
            encoder(features)
        flops = counter.get_total_flops() / args.batch_size
        encoder(features)  # warm-up
        seconds = best_of(lambda: encoder(features)) / args.batch_size
    print(f"HTSAT forward: {flops / 1e9:.2f} GFLOP/clip, {seconds * 1e3:.1f} ms/clip, {flops / seconds / 1e9:.1f} GFLOP/s "
          f"= {flops / seconds / 1e9 / peak:.0%} of theoretical peak, {flops / seconds / 1e9 / sgemm:.0%} of measured SGEMM")

    with torch.inference_mode(), rows_per_pass(clap.rows_per_pass):
        waves = torch.randn(args.clips, clap.clip_samples) * 0.1
        model_only = best_of(lambda: [model.encode_audio(waves[i:i + args.batch_size])
                                      for i in range(0, args.clips, args.batch_size)], 2) / args.clips
    print(f"model only (waveform -> embedding): {model_only * 1e3:.1f} ms/clip")
    with tempfile.TemporaryDirectory() as tmp:
        for rate in (44100, 48000):
            for fmt in ("wav", "flac"):
                files = write_clips(Path(tmp), args.clips, rate, fmt)
                total = best_of(lambda: clap.embed_audio(files, batch_size=args.batch_size), 2) / args.clips
                print(f"files -> embeddings, 7 s {rate} Hz stereo {fmt}: {total * 1e3:.1f} ms/clip, "
                      f"{1 / total:.2f} clips/s, {total / model_only:.2f}x model-only time")

    prompts = [f"a {w} sound in the distance" for w in ("dog", "car", "bird", "rain", "bell", "drum", "door", "train")] * 32
    clap.embed_text(prompts[:8])  # warm-up and tokenizer load
    seconds = best_of(lambda: clap.embed_text(prompts, batch_size=256), 3)
    print(f"text: {len(prompts) / seconds:.0f} prompts/s (5-word prompts, batch 256)")


if __name__ == "__main__":
    main()
