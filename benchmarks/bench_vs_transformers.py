"""Files -> embeddings for the same LAION-CLAP weights: clapkit against the transformers pipeline
(``ClapFeatureExtractor`` + ``ClapModel``), side by side in one run.

The weights are a random-initialised ``ClapModel(ClapConfig())`` (HTSAT-tiny + RoBERTa-base, the
architecture of ``laion/clap-htsat-unfused``; the real weights cannot be downloaded here), saved as a
Hugging Face folder that clapkit loads directly. The files are stereo 44.1 kHz WAVs; both sides decode
with soundfile and resample with soxr (transformers leaves both to the user), so the difference is
the feature extraction and the model. Rounds alternate between the two; the medians are compared.
Also printed: the largest difference between the two sides' embeddings (parity), and text speed.

    python benchmarks/bench_vs_transformers.py [--files 16] [--seconds 10] [--rounds 3] [--batch 8]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

SHARED = Path(__file__).resolve().parents[2] / "shared"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                flags = Path("/proc/cpuinfo").read_text()
                isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
                return f"{line.split(':', 1)[1].strip()} ({isa})"
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def build_folder(folder: Path) -> Path:
    from transformers import AutoTokenizer, ClapConfig, ClapFeatureExtractor, ClapModel

    torch.manual_seed(0)
    ClapModel(ClapConfig()).eval().save_pretrained(folder)
    ClapFeatureExtractor(truncation="rand_trunc", frequency_min=50).save_pretrained(folder)
    AutoTokenizer.from_pretrained(SHARED / "tokenizers" / "gpt2", tokenizer_type="roberta").save_pretrained(folder)
    return folder


def write_files(folder: Path, count: int, seconds: float) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        t = np.arange(int(44100 * seconds)) / 44100
        tone = np.sin(2 * np.pi * (200 + 50 * i) * t)
        wave = 0.3 * np.stack([tone, np.roll(tone, 100)], 1) + 0.02 * rng.standard_normal((t.size, 2))
        path = folder / f"clip{i:03d}.wav"
        sf.write(path, wave.astype(np.float32), 44100)
        paths.append(str(path))
    return paths


def transformers_files(model, extractor, files: list[str], batch: int) -> torch.Tensor:
    out = []
    for start in range(0, len(files), batch):
        waves = []
        for path in files[start:start + batch]:
            data, rate = sf.read(path, dtype="float32", always_2d=True)
            waves.append(soxr.resample(data.mean(1), rate, extractor.sampling_rate))
        features = extractor(waves, sampling_rate=extractor.sampling_rate, return_tensors="pt")
        with torch.inference_mode():
            out.append(model.get_audio_features(**features).pooler_output)
    return torch.cat(out)


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=256)
    args = parser.parse_args()
    if not (SHARED / "tokenizers" / "gpt2").is_dir():
        print(f"needs the GPT-2 BPE files in {SHARED}/tokenizers/gpt2", file=sys.stderr)
        return 2

    from transformers import AutoTokenizer, ClapFeatureExtractor, ClapModel

    import clapkit

    with tempfile.TemporaryDirectory() as tmp:
        folder = build_folder(Path(tmp) / "clap-htsat-unfused")
        files = write_files(Path(tmp), args.files, args.seconds)
        ours = clapkit.load(folder)
        model, extractor = ClapModel.from_pretrained(folder).eval(), ClapFeatureExtractor.from_pretrained(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        prompts = [f"this is the sound of thing number {i}" for i in range(args.prompts)]

        # Warm-up, untimed: first-call costs (tokenizer loading, allocator, kernel selection) on both sides.
        ours.embed_audio(files[:2], batch_size=args.batch), ours.embed_text(prompts[:4])
        transformers_files(model, extractor, files[:2], args.batch)
        runs = {"clapkit": [], "transformers": []}
        for _ in range(args.rounds):
            seconds, a_ours = timed(lambda: ours.embed_audio(files, batch_size=args.batch))
            runs["clapkit"].append(seconds)
            seconds, a_theirs = timed(lambda: transformers_files(model, extractor, files, args.batch))
            runs["transformers"].append(seconds)

        t_ours_s, t_ours = timed(lambda: ours.embed_text(prompts))

        def theirs_text():
            with torch.inference_mode():
                tokens = tokenizer(prompts, padding=True, return_tensors="pt")
                return model.get_text_features(**tokens).pooler_output

        t_theirs_s, t_theirs = timed(theirs_text)

    ours_ms = statistics.median(runs["clapkit"]) / args.files * 1000
    theirs_ms = statistics.median(runs["transformers"]) / args.files * 1000
    print(f"CPU: {cpu_name()}, torch threads {torch.get_num_threads()}, torch {torch.__version__}")
    print(f"{args.files} stereo 44.1 kHz files of {args.seconds:g} s, batch {args.batch}, {args.rounds} interleaved rounds (medians)")
    print(f"files -> embeddings  clapkit      {ours_ms:8.1f} ms/clip   rounds {[round(s, 2) for s in runs['clapkit']]} s")
    print(f"files -> embeddings  transformers {theirs_ms:8.1f} ms/clip   rounds {[round(s, 2) for s in runs['transformers']]} s")
    print(f"speed-up: clapkit is {theirs_ms / ours_ms:.2f}x transformers")
    print(f"text, {args.prompts} prompts: clapkit {t_ours_s / args.prompts * 1000:.2f} ms/prompt, "
          f"transformers {t_theirs_s / args.prompts * 1000:.2f} ms/prompt ({t_theirs_s / t_ours_s:.2f}x)")
    print(f"parity: max |clapkit - transformers| audio {(a_ours - a_theirs).abs().max():.2e}, "
          f"text {(t_ours - t_theirs).abs().max():.2e} (unit-norm embeddings)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
