"""What a run records: ``metrics.jsonl`` (one JSON object per line), TensorBoard events and
``curves.png`` (loss, learning rate, logit scale, validation retrieval over steps)."""
from __future__ import annotations

import json
import math
from pathlib import Path

from ..errors import UsageError


class RunLog:
    """Rank 0's record of a run; appends, so a resumed run continues the same files."""

    def __init__(self, run_dir: Path, enabled: bool) -> None:
        self.run_dir, self.enabled = run_dir, enabled
        self.writer = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise UsageError("training records TensorBoard events: pip install 'clapkit[train]' "
                                 "(tensorboard, matplotlib)") from None
            self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        step = record.get("step", 0)
        for key, value in record.items():
            if key != "step" and isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(f"{record.get('kind', 'train')}/{key}", value, step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.enabled:
            plot_curves(self.run_dir / "metrics.jsonl", self.run_dir / "curves.png")


def read_metrics(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_curves(metrics_path: Path, out: Path) -> None:
    """Four panels over steps: training loss, learning rate, logit scale (audio pretraining: the
    validation loss), and validation R@1/R@10 (audio pretraining: each task's answer accuracy)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_path)
    train = [r for r in records if r.get("kind") == "train"]
    val = [r for r in records if r.get("kind") == "val"]
    pretraining = any("tasks" in r for r in val)
    fig, axes = plt.subplots(2, 2, figsize=(12, 7.5))
    third = ((axes[1, 0], "val_loss", "validation loss (answer tokens)", val) if pretraining
             else (axes[1, 0], "logit_scale", "logit scale", train))
    for ax, key, title, rows in ((axes[0, 0], "loss", "training loss", train), (axes[0, 1], "lr", "learning rate", train),
                                 third):
        for name in dict.fromkeys(r.get("set", "") for r in rows):
            points = [(r["step"], r[key]) for r in rows if r.get("set", "") == name and isinstance(r.get(key), (int, float))]
            if points:
                ax.plot(*zip(*points), marker="." if rows is val else None, label=_short(name) or None)
        ax.set_title(title)
        ax.set_xlabel("step")
    (_plot_task_accuracy if pretraining else _plot_retrieval)(axes[1, 1], val)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def _short(name: str) -> str:
    return name.split("#")[1] if "#" in name else Path(name).stem  # a split's name, or the file's


def _plot_retrieval(ax, val: list[dict]) -> None:
    for name in dict.fromkeys(r.get("set", "val") for r in val):
        rows = [r for r in val if r.get("set", "val") == name]
        for key, style in (("t2a_r10", "-"), ("a2t_r10", "--"), ("t2a_r1", ":")):
            line, = ax.plot([r["step"] for r in rows], [r[key] for r in rows], style, marker=".",
                            label=f"{_short(name)} {key}")
        ax.axhline(rows[-1]["chance_r10"], color=line.get_color(), linewidth=0.8, alpha=0.5)
    ax.set_title("validation retrieval (thin lines: R@10 by chance)")
    ax.set_xlabel("step")
    if val:
        ax.legend(fontsize=7)


def _plot_task_accuracy(ax, val: list[dict]) -> None:
    """The first validation set's exact-answer accuracy per task (thin lines: the most common answer's)."""
    rows = [r for r in val if r.get("set") == val[0].get("set")]
    for task in rows[-1]["tasks"]:
        points = [(r["step"], r["tasks"][task]["accuracy"]) for r in rows if task in r["tasks"]]
        line, = ax.plot(*zip(*points), marker=".", label=task)
        ax.axhline(rows[-1]["tasks"][task]["majority"], color=line.get_color(), linewidth=0.8, alpha=0.5)
    ax.set_title(f"{_short(rows[-1].get('set', 'val'))}: exact answers by task (thin lines: most common answer)")
    ax.set_xlabel("step")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, ncol=2)
