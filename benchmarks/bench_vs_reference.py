"""clapkit against msclap 1.3.4's own pipeline, same weights, same files, in one run.

    python benchmarks/bench_vs_reference.py [--files 32] [--rounds 5] [--batch 16] [--env DIR]

The reference runs in a side environment this script creates (once, in ``--env``): msclap 1.3.4
(no dependencies), transformers 4.57.6, torchlibrosa 0.1.0, librosa, and torchaudio 2.11.0 without
its compiled library (its resampler is pure Python; its compiled part would need another torch).
``torchaudio.load`` is replaced there by soundfile (torchaudio 2.11 needs torchcodec to decode; the
samples are the same). Both sides load msclap's synthetic parity weights (``../shared/parity``), and
the reference's audio embeddings are first checked against the parity goldens, as the fixtures
were made. Files: stereo 7 s WAVs at 44.1 and 48 kHz. Rounds alternate between the pipelines, each
in a fresh process; medians are compared. Also printed: model-only time, peak memory (VmHWM) and
GFLOP/s against the fp32 SGEMM peak measured in the same run.

``--isa avx2`` runs every worker, the peak measurement included, with oneDNN, MKL and PyTorch's own
kernels limited to AVX2 (``ONEDNN_MAX_CPU_ISA``, ``MKL_ENABLE_INSTRUCTIONS``, ``ATEN_CPU_CAPABILITY``):
the AVX2 code paths on an AVX-512 machine. It is not an AVX2 CPU (caches, clocks and memory stay
this machine's), so it shows the ratios of the kernels an AVX2 CPU would run, not its times.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared"
REFERENCE = ["msclap==1.3.4", "torchlibrosa==0.1.0", "torchaudio==2.11.0"]  # installed without dependencies
REFERENCE_DEPS = ["transformers==4.57.6", "librosa"]
PROMPTS = [f"this is the sound of a {w} in the distance" for w in
           ("dog", "car", "bird", "rain", "bell", "drum", "door", "train")] * 32  # 256 prompts
ISA_LIMITS = {"native": {},
              "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}}


def vm_hwm_mb() -> float:
    import re

    return int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024


def make_weights() -> dict:
    import importlib.util

    import numpy as np
    import torch

    spec = importlib.util.spec_from_file_location("make_weights", SHARED / "parity" / "make_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {k: torch.from_numpy(np.array(v, copy=True, order="C")) for k, v in module.make_weights("2023").items()}


# ---- workers (each round runs one in a fresh process) ----------------------------------------------
def msclap_worker(work: Path, files: list[str], batch: int) -> dict:
    import random

    import numpy as np
    import soundfile as sf
    import torch
    import torchaudio

    def load(path):  # torchaudio.load's result: (channels, frames) float32, and the rate
        data, rate = sf.read(path, dtype="float32", always_2d=True)
        return torch.from_numpy(data.T.copy()), rate

    torchaudio.load = load
    os.chdir(work)  # holds ./gpt2 (config, random weights, tokenizer): msclap loads "gpt2" from there
    from msclap import CLAP

    random.seed(0)
    wrapper = CLAP(model_fp=str(work / "msclap-2023.pth"), version="2023", use_cuda=False)
    inputs, golden = np.load(SHARED / "parity" / "inputs_2023.npz"), np.load(SHARED / "parity" / "golden_2023.npz")
    with torch.no_grad():
        parity = wrapper.clap.audio_encoder(torch.from_numpy(inputs["tiled"]))[0].numpy()
    error = float(np.abs(parity - golden["audio_embedding"]).max())
    start = time.perf_counter()
    out = torch.cat(list(wrapper.get_audio_embeddings_per_batch(files, batch)))
    files_s = time.perf_counter() - start
    audio = wrapper.preprocess_audio(files[:batch], resample=True)
    start = time.perf_counter()
    wrapper._get_audio_embeddings(audio)
    model_s = time.perf_counter() - start
    audio_peak_mb = vm_hwm_mb()  # the audio job's; the text below loads nothing new but allocates
    wrapper.get_text_embeddings(PROMPTS[:8])  # warm-up
    start = time.perf_counter()
    wrapper.get_text_embeddings(PROMPTS)
    text_s = time.perf_counter() - start
    return {"files_ms": files_s / len(files) * 1000, "model_ms": model_s / len(audio) * 1000, "parity_error": error,
            "peak_mb": audio_peak_mb, "shape": list(out.shape), "text_ms": text_s / len(PROMPTS) * 1000}


def clapkit_text_worker(work: Path) -> dict:
    import clapkit

    pipeline = clapkit.load(work / "msclap-2023.pth", tokenizer=str(work / "gpt2"))
    pipeline.embed_text(PROMPTS[:8])  # warm-up and tokenizer load
    start = time.perf_counter()
    pipeline.embed_text(PROMPTS, batch_size=len(PROMPTS))
    return {"text_ms": (time.perf_counter() - start) / len(PROMPTS) * 1000}


def clapkit_worker(work: Path, files: list[str], batch: int, dtype: str) -> dict:
    import clapkit

    pipeline = clapkit.load(work / "msclap-2023.pth", dtype=dtype, audio_only=True)  # stereo mixed: one 7 s window
    pipeline.embed_audio(files[:2], batch_size=batch)  # warm-up, as the reference's first batch is not
    start = time.perf_counter()
    out = pipeline.embed_audio(files, batch_size=batch)
    files_s = time.perf_counter() - start
    windows = [w for i, f in enumerate(files[:batch]) for w in pipeline._item_windows(i, f, None)]
    start = time.perf_counter()
    pipeline._encode_windows(windows)
    model_s = time.perf_counter() - start
    result = {"files_ms": files_s / len(files) * 1000, "model_ms": model_s / len(windows) * 1000,
              "peak_mb": vm_hwm_mb(), "shape": list(out.shape)}
    if dtype == "bf16":  # it runs float32 where the CPU has no native bf16
        result["ran_in"] = str(pipeline.compute_dtype).removeprefix("torch.")
    return result


# ---- set-up -------------------------------------------------------------------------------------
def reference_env(env: Path) -> Path:
    python = env / "bin" / "python"
    if not (env / "ready").exists():
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(env)], check=True)
        pip = [str(env / "bin" / "pip"), "install", "-q"]
        subprocess.run([*pip, "--no-deps", *REFERENCE], check=True)
        subprocess.run([*pip, *REFERENCE_DEPS], check=True)
        for library in (env / "lib").glob("python*/site-packages/torchaudio/lib/*.so"):
            library.unlink()  # built for another torch; without it torchaudio runs its pure-Python code
        (env / "ready").write_text("ok\n")
    return python


def prepare(work: Path, count: int) -> list[str]:
    import numpy as np
    import soundfile as sf
    import torch
    from transformers import GPT2Config, GPT2Model

    torch.save({"model": make_weights()}, work / "msclap-2023.pth")
    gpt2 = work / "gpt2"
    GPT2Model(GPT2Config()).save_pretrained(gpt2)  # msclap's state dict replaces these weights
    for name in ("vocab.json", "merges.txt"):
        (gpt2 / name).write_bytes((SHARED / "tokenizers" / "gpt2" / name).read_bytes())
    files = []
    for i in range(count):
        rate = 44100 if i % 2 else 48000
        t = np.arange(rate * 7) / rate
        wave = np.stack([np.sin(2 * np.pi * (200 + 30 * i) * t), np.sin(2 * np.pi * (310 + 20 * i) * t)], 1)
        path = work / f"clip{i:03d}.wav"
        sf.write(path, (0.3 * wave).astype(np.float32), rate)
        files.append(str(path))
    return files


def peak_worker() -> dict:
    import torch
    from measure import measured_sgemm_gflops

    from clapkit.pipeline import cpu_has_native_bf16

    return {"sgemm_gflops": measured_sgemm_gflops(), "native_bf16": cpu_has_native_bf16(),
            "kernels": torch.backends.cpu.get_cpu_capability()}


def run_worker(python: str, args: list[str], isa: str) -> dict:
    done = subprocess.run([python, __file__, "--worker", *args], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **ISA_LIMITS[isa]})
    if done.returncode:
        raise SystemExit(f"worker {args[0]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--env", type=Path, default=Path.home() / ".cache" / "clapkit" / "bench-msclap-env")
    parser.add_argument("--isa", choices=ISA_LIMITS, default="native",
                        help="avx2: limit every worker's kernels to AVX2 (see above)")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == ["peak"]:
        print(json.dumps(peak_worker()))
        return 0
    if args.worker:
        kind, work, batch, *rest = args.worker
        files = json.loads(Path(work, "files.json").read_text())
        result = (msclap_worker(Path(work), files, int(batch)) if kind == "msclap"
                  else clapkit_text_worker(Path(work)) if kind == "clapkit-text"
                  else clapkit_worker(Path(work), files, int(batch), rest[0]))
        print(json.dumps(result))
        return 0
    import torch
    from measure import cpu_isa

    python = str(reference_env(args.env))
    limits = run_worker(sys.executable, ["peak"], args.isa)
    peak = limits["sgemm_gflops"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        files = prepare(work, args.files)
        (work / "files.json").write_text(json.dumps(files))
        runs = {name: [] for name in ("msclap", "clapkit fp32", "clapkit bf16", "clapkit int8")}
        text = []
        for _ in range(args.rounds):
            runs["msclap"].append(run_worker(python, ["msclap", tmp, str(args.batch)], args.isa))
            for dtype in ("fp32", "bf16", "int8"):
                runs[f"clapkit {dtype}"].append(
                    run_worker(sys.executable, ["clapkit", tmp, str(args.batch), dtype], args.isa))
            text.append(run_worker(sys.executable, ["clapkit-text", tmp, str(args.batch)], args.isa))
    from torch.utils.flop_counter import FlopCounterMode

    import clapkit

    with tempfile.TemporaryDirectory() as tmp:
        torch.save({"model": make_weights()}, Path(tmp) / "w.pth")
        model = clapkit.load(Path(tmp) / "w.pth", audio_only=True).model
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model.encode_audio(torch.zeros(1, 44100 * 7))
    flops = counter.get_total_flops()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU")
    isa = cpu_isa()
    limited = f", kernels limited to {limits['kernels']} ({' '.join(f'{k}={v}' for k, v in ISA_LIMITS[args.isa].items())})"
    print(f"CPU: {cpu} ({isa}{limited if args.isa != 'native' else ''}; native bf16: {limits['native_bf16']}), "
          f"{torch.get_num_threads()} threads; fp32 SGEMM measured now: {peak:.1f} GFLOP/s")
    print(f"{args.files} stereo 7 s WAVs (44.1 and 48 kHz), batch {args.batch}, {args.rounds} interleaved rounds, "
          f"medians; reference parity error vs the goldens: {runs['msclap'][0]['parity_error']:.2e}")
    reference = statistics.median(r["files_ms"] for r in runs["msclap"])
    for name, results in runs.items():
        files_ms = statistics.median(r["files_ms"] for r in results)
        model_ms = statistics.median(r["model_ms"] for r in results)
        memory = statistics.median(r["peak_mb"] for r in results)
        print(f"{name:14s} files->embeddings {files_ms:7.1f} ms/clip ({reference / files_ms:4.2f}x msclap)   "
              f"model-only {model_ms:7.1f} ms/clip ({flops / (model_ms / 1000) / 1e9:6.1f} GFLOP/s = "
              f"{flops / (model_ms / 1000) / 1e9 / peak:5.1%} of the SGEMM peak)   peak memory {memory:6.0f} MB"
              + (f"   (ran in {results[0]['ran_in']})" if "ran_in" in results[0] else ""))
    msclap_text = statistics.median(r["text_ms"] for r in runs["msclap"])
    clapkit_text = statistics.median(r["text_ms"] for r in text)
    print(f"text, {len(PROMPTS)} prompts in one batch, fp32: msclap {msclap_text:.2f} ms/prompt, clapkit "
          f"{clapkit_text:.2f} ms/prompt ({msclap_text / clapkit_text:.1f}x msclap)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
