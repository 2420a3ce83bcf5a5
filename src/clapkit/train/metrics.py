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
    """Four panels over steps: training loss, learning rate, logit scale, validation R@1/R@10."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_path)
    train = [r for r in records if r.get("kind") == "train"]
    val = [r for r in records if r.get("kind") == "val"]
    fig, axes = plt.subplots(2, 2, figsize=(12, 7.5))
    for ax, key, title in ((axes[0, 0], "loss", "training loss"), (axes[0, 1], "lr", "learning rate"),
                           (axes[1, 0], "logit_scale", "logit scale")):
        points = [(r["step"], r[key]) for r in train if isinstance(r.get(key), (int, float))]
        if points:
            ax.plot(*zip(*points))
        ax.set_title(title)
        ax.set_xlabel("step")
    ax = axes[1, 1]
    for name in dict.fromkeys(r.get("set", "val") for r in val):
        rows = [r for r in val if r.get("set", "val") == name]
        short = name.split("#")[1] if "#" in name else Path(name).stem  # a split's name, or the file's
        for key, style in (("t2a_r10", "-"), ("a2t_r10", "--"), ("t2a_r1", ":")):
            line, = ax.plot([r["step"] for r in rows], [r[key] for r in rows], style, marker=".", label=f"{short} {key}")
        ax.axhline(rows[-1]["chance_r10"], color=line.get_color(), linewidth=0.8, alpha=0.5)
    ax.set_title("validation retrieval (thin lines: R@10 by chance)")
    ax.set_xlabel("step")
    if val:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
