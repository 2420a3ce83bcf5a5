"""The audio-encoder ablation's table and plot from a ``scripts/ablation.sh WORK`` folder.

    python benchmarks/ablation_report.py WORK [--out benchmarks/results/ablation]

For each arm (scratch, label, multitask) and each measure of ``clapkit eval --tasks offline --probe``:
the mean over seeds with a 95 % interval: Student's t over the seeds when there are two or more, else
the single run's bootstrap interval; the validation split's text->audio R@10 comes from each
contrastive run's last validation. Also each pretraining run's last validation accuracy per task. Prints the markdown and writes ``results.md``, ``results.json`` and
``ablation.png`` into ``--out``.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import statistics
from pathlib import Path

ARMS = {"scratch": "scratch (random init)", "label": "single-task pretraining (labels)",
        "multitask": "multi-task pretraining"}
MEASURES = [  # (task, metric, column)
    ("offline_drums", "accuracy", "drums"), ("offline_gm_family", "accuracy", "GM family"),
    ("offline_gm_instrument", "accuracy", "GM instrument"), ("offline_digits", "accuracy", "digits"),
    ("offline_t2a", "R@10", "test t2a R@10"), ("offline_a2t", "R@10", "test a2t R@10"), ("val", "t2a R@10", "val t2a R@10"),
    ("offline_drums", "probe accuracy", "drums probe"), ("offline_gm_family", "probe accuracy", "GM family probe"),
    ("offline_digits", "probe accuracy", "digits probe"),
]
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def runs(work: Path) -> dict[str, dict[int, dict]]:
    """arm -> seed -> {(task, metric): result} for every finished evaluation."""
    found: dict[str, dict[int, dict]] = {}
    for path in sorted(work.glob("eval-*-seed*/results.json")):
        match = re.fullmatch(r"eval-(\w+)-seed(\d+)", path.parent.name)
        if not match or match[1] not in ARMS:
            continue
        results = json.loads(path.read_text())["results"]
        arm, seed = match[1], int(match[2])
        found.setdefault(arm, {})[seed] = {**{(r["task"], r["metric"]): r for r in results if r.get("status") == "ok"},
                                           **validation(work, arm, seed)}
    return found


def validation(work: Path, arm: str, seed: int) -> dict:
    """The contrastive run's last validation retrieval (the corpus's val split), as an eval result
    without an interval."""
    metrics = work / f"{arm}-seed{seed}" / "metrics.jsonl"
    vals = [json.loads(line) for line in metrics.read_text().splitlines() if '"kind": "val"' in line] \
        if metrics.is_file() else []
    return {("val", "t2a R@10"): {"value": vals[-1]["t2a_r10"], "ci_low": None, "ci_high": None}} if vals else {}


def summary(per_seed: dict[int, dict], key: tuple[str, str]) -> dict | None:
    rows = [results[key] for results in per_seed.values() if key in results]
    if not rows:
        return None
    values = [r["value"] for r in rows]
    mean = statistics.fmean(values)
    if len(values) == 1:
        if rows[0]["ci_low"] is None:
            return {"mean": mean, "low": mean, "high": mean, "seeds": 1, "kind": "none (one run)"}
        return {"mean": mean, "low": rows[0]["ci_low"], "high": rows[0]["ci_high"], "seeds": 1, "kind": "bootstrap"}
    half = T95.get(len(values) - 1, 1.96) * statistics.stdev(values) / math.sqrt(len(values))
    return {"mean": mean, "low": mean - half, "high": mean + half, "seeds": len(values), "kind": "t over seeds"}


def pretraining(work: Path) -> dict[str, dict]:
    """Each pretraining run's last validation record, per task."""
    found = {}
    for arm in ("label", "multitask"):
        metrics = work / f"pretrain-{arm}" / "metrics.jsonl"
        if metrics.is_file():
            vals = [json.loads(line) for line in metrics.read_text().splitlines() if '"kind": "val"' in line]
            if vals:
                found[arm] = vals[-1]
    return found


def markdown(table: dict, pretrained: dict) -> str:
    columns = [column for _, _, column in MEASURES]
    lines = ["| audio tower start | seeds | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]
    for arm, cells in table.items():
        seeds = max((c["seeds"] for c in cells.values() if c), default=0)
        text = [("–" if not c else f"{c['mean']:.3f}" if c["low"] == c["high"] else
                 f"{c['mean']:.3f} ({c['low']:.3f}–{c['high']:.3f})") for c in cells.values()]
        lines.append(f"| {ARMS[arm]} | {seeds} | " + " | ".join(text) + " |")
    kinds = {c["kind"] for cells in table.values() for c in cells.values() if c}
    lines.append("")
    lines.append(f"Intervals: 95 %, {' and '.join(sorted(kinds))}.")
    for arm, record in pretrained.items():
        lines += ["", f"Pretraining `{arm}` at step {record['step']}: validation answer loss {record['val_loss']:.3f}, "
                      f"exact answers {record['accuracy']:.3f} over {record['questions']:,} questions", "",
                  "| task | questions | exact answers | most common answer |", "|---|---|---|---|"]
        lines += [f"| {task} | {t['questions']:,} | {t['accuracy']:.3f} | {t['majority']:.3f} |"
                  for task, t in record["tasks"].items()]
    return "\n".join(lines) + "\n"


def plot(table: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = [column for _, _, column in MEASURES]
    fig, ax = plt.subplots(figsize=(13, 4.5))
    width = 0.8 / max(1, len(table))
    for i, (arm, cells) in enumerate(table.items()):
        xs = [j + i * width for j in range(len(columns))]
        means = [c["mean"] if c else 0.0 for c in cells.values()]
        errors = [[c["mean"] - c["low"] if c else 0 for c in cells.values()],
                  [c["high"] - c["mean"] if c else 0 for c in cells.values()]]
        ax.bar(xs, means, width, yerr=errors, capsize=2, label=ARMS[arm])
    ax.set_xticks([j + width * (len(table) - 1) / 2 for j in range(len(columns))], columns, rotation=20, ha="right")
    ax.set_ylabel("accuracy / recall")
    ax.set_title(f"clapkit-small's audio tower, {len(table)} starts, same contrastive recipe (95 % intervals)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ablation"))
    args = parser.parse_args()
    found = runs(args.work)
    if not found:
        raise SystemExit(f"ablation_report: no finished evaluation under {args.work} (eval-ARM-seedK/results.json)")
    table = {arm: {column: summary(found[arm], (task, metric)) for task, metric, column in MEASURES}
             for arm in ARMS if arm in found}
    pretrained = pretraining(args.work)
    text = markdown(table, pretrained)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(text)
    (args.out / "results.json").write_text(json.dumps({"table": table, "pretraining": pretrained}, indent=2) + "\n")
    plot(table, args.out / "ablation.png")
    print(f"wrote {args.out / 'results.md'}, results.json and ablation.png")


if __name__ == "__main__":
    main()
