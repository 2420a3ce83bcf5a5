"""The benchmark's files: ``results.json`` (one entry per figure), ``results.md`` (ours, the CI and the
paper's side by side), ``results.csv``, and PNGs: a confusion matrix per single-label task, recall@k
curves for retrieval, and all tasks against the paper."""
from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .runner import TaskOutcome

FIELDS = ("name", "task", "metric", "value", "ci_low", "ci_high", "n", "status", "paper", "paper_2022", "note")


def write_report(outcomes: list[TaskOutcome], out: Path, header: dict) -> list[Path]:
    """Write every file into ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    results = [r.to_dict() for outcome in outcomes for r in outcome.results]
    written = [_atomic(out / "results.json", json.dumps({**header, "results": results}, indent=2) + "\n"),
               _atomic(out / "results.md", markdown(results, header)), _write_csv(out / "results.csv", results)]
    written += plots(outcomes, out)
    return written


def _fmt(value) -> str:
    return "–" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:.3f}"


def markdown(results: list[dict], header: dict) -> str:
    lines = [f"# clapkit eval: {header.get('model', '')}", "",
             " · ".join(f"{k}: {v}" for k, v in header.items() if k != "model"), "",
             "| task | metric | clapkit | 95 % CI | n | paper (2023) | paper (2022) | status |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        ci = f"{_fmt(r['ci_low'])}–{_fmt(r['ci_high'])}" if r["ci_low"] is not None else "–"
        lines.append(f"| {r['name']} | {r['metric']} | {_fmt(r['value'])} | {ci} | {r['n']} | {_fmt(r['paper'])} | "
                     f"{_fmt(r['paper_2022'])} | {r['status']} |")
    notes = sorted({(r["name"], r["note"]) for r in results if r["note"]})
    if notes:
        lines += ["", "Notes:", *[f"- {name}: {note}" for name, note in notes]]
    return "\n".join(lines) + "\n"


def _write_csv(path: Path, results: list[dict]) -> Path:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows({k: r[k] for k in FIELDS} for r in results)
    os.replace(tmp, path)
    return path


def _atomic(path: Path, text: str) -> Path:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
    return path


def plots(outcomes: list[TaskOutcome], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for outcome in outcomes:
        if outcome.task.kind == "single" and outcome.predictions is not None:
            written.append(_confusion(plt, outcome, out / f"confusion_{outcome.task.name}.png"))
        if outcome.ranks:
            written.append(_recall_curve(plt, outcome, out / f"recall_{outcome.task.name}.png"))
    done = [r for o in outcomes for r in o.results if r.value is not None and r.metric == o.task.primary]
    if done:
        written.append(_bars(plt, done, out / "tasks_vs_paper.png"))
    return written


def _confusion(plt, outcome: TaskOutcome, path: Path) -> Path:
    classes = outcome.classes
    matrix = np.zeros((len(classes), len(classes)))
    np.add.at(matrix, (outcome.targets, outcome.predictions.argmax(1)), 1)
    matrix /= np.maximum(matrix.sum(1, keepdims=True), 1)
    size = min(4 + 0.25 * len(classes), 24)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    if len(classes) <= 60:
        ax.set_xticks(range(len(classes)), classes, rotation=90, fontsize=7)
        ax.set_yticks(range(len(classes)), classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    accuracy = outcome.results[0].value
    ax.set_title(f"{outcome.task.title}: accuracy {accuracy:.3f} (rows: share of each true class)")
    fig.colorbar(image, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _recall_curve(plt, outcome: TaskOutcome, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    for direction, rank in outcome.ranks.items():
        ks = np.arange(1, min(50, int(rank.max()) + 2) + 1)
        ax.plot(ks, [(rank < k).mean() for k in ks], marker=".", label=direction)
        chance = ks / (rank.max() + 1) if direction == "t2a" else None
        if chance is not None:
            ax.plot(ks, np.minimum(chance, 1), linestyle=":", color="grey", label="chance (t2a)")
    ax.set_xlabel("k")
    ax.set_ylabel("recall@k")
    ax.set_ylim(0, 1)
    ax.set_title(outcome.task.title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _bars(plt, results, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(results)), 4.5))
    x = np.arange(len(results))
    ours = [r.value for r in results]
    errors = np.array([[r.value - r.ci_low, r.ci_high - r.value] if r.ci_low is not None else [0, 0] for r in results]).T
    ax.bar(x - 0.2, ours, 0.4, yerr=errors, capsize=2, label="clapkit (95 % CI)")
    ax.bar(x + 0.2, [r.paper if r.paper is not None else 0 for r in results], 0.4, label="paper (CLAP 2023)")
    ax.set_xticks(x, [f"{r.name}\n{r.metric}" for r in results], rotation=60, ha="right", fontsize=7)
    ax.set_ylim(0, 1)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
