"""Zero-shot retrieval of every checkpoint of a training run on held-out sets: a table and a PNG.

    python benchmarks/retrieval_over_checkpoints.py RUN_DIR --val corpus/manifest.jsonl#eval_gm [--val ...]
        [--tokenizer DIR] [--png out.png]

Each checkpoint's weights go through the public pipeline (as the run's own validation does), so a
set added after training is measured on the same footing as the run's --val sets.
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from safetensors.torch import load_file

from clapkit.models.config import parse_config
from clapkit.models.factory import create_model
from clapkit.pipeline import ClapPipeline
from clapkit.train.data import ValData
from clapkit.train.engine import init_text_tower, retrieval
from clapkit.weights.loading import load_state_dict_strict


def checkpoints(run: Path) -> list[tuple[int, Path]]:
    found = [(int(m.group(1)), p) for p in (run / "checkpoints").iterdir() if (m := re.fullmatch(r"step-(\d+)", p.name))]
    return sorted(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--val", action="append", required=True)
    parser.add_argument("--tokenizer")
    parser.add_argument("--png", type=Path)
    args = parser.parse_args()
    recorded = json.loads((args.run / "config.json").read_text())
    recorded.pop("training", None)
    config = parse_config(recorded, str(args.run / "config.json"))
    rate = config.audio.frontend.sample_rate
    sets = {name: ValData([name], sample_rate=rate, clip_samples=config.clip_samples) for name in args.val}
    model = create_model(config).eval()
    init_text_tower(model, config, None)  # step 0: the run's starting point (e.g. all-MiniLM-L6-v2)
    pipeline = ClapPipeline(model, config, args.tokenizer)
    rows = []
    for step, folder in [(0, None), *checkpoints(args.run)]:
        if folder is not None:
            load_state_dict_strict(model, load_file(str(folder / "model.safetensors")), str(folder))
        for name, val in sets.items():
            result = retrieval(pipeline, val, rate)
            rows.append({"step": step, "set": name, **result})
            print(f"step {step:5d}  {name:40s} clips {result['clips']:4d}  t2a R@1 {result['t2a_r1']:.3f} "
                  f"R@10 {result['t2a_r10']:.3f}  a2t R@1 {result['a2t_r1']:.3f} R@10 {result['a2t_r10']:.3f}  "
                  f"(chance R@10 {result['chance_r10']:.3f})", flush=True)
    if args.png:
        plot(rows, args.png)


def plot(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for name in dict.fromkeys(r["set"] for r in rows):
        mine = [r for r in rows if r["set"] == name]
        line, = ax.plot([r["step"] for r in mine], [r["t2a_r10"] for r in mine], marker="o", label=f"{name} text→audio R@10")
        ax.plot([r["step"] for r in mine], [r["a2t_r10"] for r in mine], "--", marker=".", color=line.get_color(),
                label=f"{name} audio→text R@10")
        ax.axhline(mine[-1]["chance_r10"], color=line.get_color(), linewidth=0.8, alpha=0.6)
    ax.set_xlabel("training step (0: initial weights)")
    ax.set_ylabel("recall@10 (thin lines: chance)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
