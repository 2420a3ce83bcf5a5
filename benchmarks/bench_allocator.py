"""glibc's allocator settings and CPU training speed: clapkit-small training steps (forward,
symmetric contrastive loss, backward, Adam) in a fresh process per setting, timed, with the system
CPU time and minor page faults each step costs, and a hash of the weights after the steps, which
shows whether a setting changes the arithmetic.

    python benchmarks/bench_allocator.py [--batch 128] [--steps 25] [--model clapkit-small]

By default glibc hands every freed block of more than a few MB back to the kernel, and every
step's activations are allocated again, page by page (zero-filled by the kernel: system time).
Raising the mmap and trim thresholds keeps that memory in the process.
``scripts/retrain_clapkit_small.sh`` sets the two variables.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

KEEP = {"MALLOC_MMAP_THRESHOLD_": str(1 << 34), "MALLOC_TRIM_THRESHOLD_": str(1 << 34)}
SETTINGS = {"glibc default": {}, "keep freed memory": KEEP}

CHILD = r"""
import hashlib, json, resource, sys, time
import torch
from clapkit.models.config import get_config
from clapkit.models.factory import create_model
from clapkit.pipeline import ClapPipeline
from clapkit.train.loss import caption_ids
from clapkit.train.step import ContrastiveStep

model_name, batch, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.manual_seed(0)
config = get_config(model_name)
model = create_model(config)
model.train()
model.text.requires_grad_(False)
model.text.eval()
captions = [f"caption number {i}" for i in range(batch)]
tokens, ids = ClapPipeline(model, config).tokenizer(captions), caption_ids(captions)
samples = round(config.audio.frontend.clip_seconds * config.audio.frontend.sample_rate)
audio = torch.randn(batch, samples, generator=torch.Generator().manual_seed(1)) * 0.1
cpu = torch.device("cpu")
contrastive = ContrastiveStep(model, model, "clip", "fp32", cpu, torch.amp.GradScaler("cpu", enabled=False))
optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)

def step():  # the trainer's own gradient code, then Adam
    optimizer.zero_grad(set_to_none=True)
    contrastive.backward(audio, tokens, ids, None)
    optimizer.step()

step()  # warm-up: the first step's allocations are new pages in any setting
times, before = [], resource.getrusage(resource.RUSAGE_SELF)
for _ in range(steps):
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
after = resource.getrusage(resource.RUSAGE_SELF)
digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest()
print(json.dumps({"seconds": sorted(times)[len(times) // 2], "user": (after.ru_utime - before.ru_utime) / steps,
                  "sys": (after.ru_stime - before.ru_stime) / steps,
                  "faults": (after.ru_minflt - before.ru_minflt) / steps, "weights": digest[:16]}))
"""


def run(env_extra: dict[str, str], model: str, batch: int, steps: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | env_extra
    done = subprocess.run([sys.executable, "-c", CHILD, model, str(batch), str(steps)], env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="clapkit-small")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=25)
    args = parser.parse_args()
    print(f"{args.model}, batch {args.batch}, median of {args.steps} training steps after one warm-up, "
          f"{os.cpu_count()} CPUs")
    results = {}
    for name, env in SETTINGS.items():
        r = results[name] = run(env, args.model, args.batch, args.steps)
        print(f"  {name:18s} {r['seconds']:.2f} s/step   CPU per step: user {r['user']:.1f} s, "
              f"system {r['sys']:.1f} s   {r['faults']:,.0f} page faults/step   weights {r['weights']}")
    default, keep = results["glibc default"], results["keep freed memory"]
    print(f"speed-up: {default['seconds'] / keep['seconds']:.2f}x; page faults {default['faults'] / max(keep['faults'], 1):.0f}x "
          f"fewer; weights after the steps {'identical' if default['weights'] == keep['weights'] else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
