"""Training throughput: step time and samples/s of clapkit-small and the paper's HTSAT + GPT-2
(msclap-2023) at several batch sizes, GradCache overhead, peak RSS, and the achieved FLOP/s of
HTSAT forward+backward against the fp32 SGEMM peak measured in the same run.

    python benchmarks/bench_train.py [--threads 2] [--batches 4,8,16] [--models clapkit-small,msclap-2023]

Synthetic inputs (random waveforms at the model's rate and clip length, 16-token texts) and random
weights: this measures the engine's step (clapkit.train.step.ContrastiveStep + Adam), not the data.
"""
from __future__ import annotations

import argparse
import platform
import resource

import torch
from measure import best_of, measured_sgemm_gflops
from torch.utils.flop_counter import FlopCounterMode

from clapkit.models.config import get_config
from clapkit.models.factory import create_model
from clapkit.train.loss import caption_ids
from clapkit.train.step import ContrastiveStep


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def isa() -> str:
    flags = open("/proc/cpuinfo").read() if platform.system() == "Linux" else ""
    found = [name for name in ("avx512_bf16", "amx_bf16", "avx512f", "avx2") if name in flags]
    return ", ".join(found) or "no AVX2"


def batch(config, size: int) -> tuple[torch.Tensor, dict, torch.Tensor]:
    generator = torch.Generator().manual_seed(size)
    audio = torch.randn(size, config.clip_samples, generator=generator) * 0.1
    vocab = config.text.args.get("vocab_size", 30522)
    ids = torch.randint(1000, vocab - 1, (size, 16), generator=generator)
    tokens = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if config.text.arch == "bert":
        tokens["token_type_ids"] = torch.zeros_like(ids)
    return audio, tokens, caption_ids([f"caption {i}" for i in range(size)])


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_model(name: str, sizes: list[int], sgemm: float) -> None:
    config = get_config(name)
    model = create_model(config).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    step = ContrastiveStep(model, model, "clip", "fp32", torch.device("cpu"), torch.amp.GradScaler("cpu", enabled=False))
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"\n{name}: {params:.1f}M parameters, clip {config.audio.frontend.clip_seconds:g} s at "
          f"{config.audio.frontend.sample_rate} Hz")

    def train_step(audio, tokens, ids, micro=None):
        step.backward(audio, tokens, ids, micro)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for size in sizes:
        audio, tokens, ids = batch(config, size)
        seconds = best_of(lambda: train_step(audio, tokens, ids), 2, warmup=True)
        print(f"  batch {size:3d}: {seconds:6.2f} s/step, {size / seconds:6.2f} samples/s, "
              f"peak RSS so far {peak_rss_mb():.0f} MB")

    largest, smallest = max(sizes), min(sizes)
    audio, tokens, ids = batch(config, largest)
    whole = best_of(lambda: train_step(audio, tokens, ids), 2, warmup=True)
    cached = best_of(lambda: train_step(audio, tokens, ids, smallest), 2, warmup=True)
    print(f"  GradCache: batch {largest} in chunks of {smallest}: {cached:.2f} s/step vs {whole:.2f} s whole "
          f"= {cached / whole:.2f}x (the extra no-grad forward), peak RSS so far {peak_rss_mb():.0f} MB")

    encoder_input = model.audio.frontend(audio[:smallest])
    encoder = model.audio.encoder

    def forward_backward():
        embedding, _ = encoder(encoder_input)
        embedding.square().mean().backward()

    with FlopCounterMode(display=False) as counter:
        forward_backward()
    flops = counter.get_total_flops()
    seconds = best_of(forward_backward, 2, warmup=True)
    model.zero_grad(set_to_none=True)
    achieved = flops / seconds / 1e9
    print(f"  {config.audio.arch} forward+backward, batch {smallest}: {flops / smallest / 1e9:.2f} GFLOP/clip, "
          f"{seconds / smallest * 1e3:.0f} ms/clip, {achieved:.1f} GFLOP/s = {achieved / sgemm:.0%} of measured SGEMM")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", default="4,8,16")
    parser.add_argument("--models", default="clapkit-small,msclap-2023")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    sgemm = measured_sgemm_gflops()
    print(f"CPU: {cpu_name()} ({isa()}), {args.threads} threads, torch {torch.__version__}")
    print(f"fp32 SGEMM 2048^3 (measured now): {sgemm:.1f} GFLOP/s")
    sizes = [int(s) for s in args.batches.split(",")]
    for name in args.models.split(","):
        bench_model(name, sizes, sgemm)


if __name__ == "__main__":
    main()
