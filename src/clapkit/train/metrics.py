"""What a run records: ``metrics.jsonl`` (one JSON object per line), TensorBoard events and
``curves.png`` (loss, learning rate, logit scale, validation retrieval over steps)."""
from __future__ import annotations

import json
import math
from pathlib import Path


class RunLog:
    """Rank 0's record of a run; appends, so a resumed run continues the same files."""

    def __init__(self, run_dir: Path, enabled: bool) -> None:
        self.run_dir, self.enabled = run_dir, enabled
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

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
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    panels = [(axes[0, 0], train, ["loss"], "training loss"), (axes[0, 1], train, ["lr"], "learning rate"),
              (axes[1, 0], train, ["logit_scale"], "logit scale"),
              (axes[1, 1], val, ["t2a_r1", "t2a_r10", "a2t_r1", "a2t_r10"], "validation retrieval")]
    for ax, rows, keys, title in panels:
        for key in keys:
            points = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
            if points:
                ax.plot(*zip(*points), marker="." if len(points) < 50 else None, label=key)
        chance = [r["chance_r10"] for r in rows if "chance_r10" in r]
        if chance:
            ax.axhline(chance[-1], color="grey", linestyle=":", label="R@10 by chance")
        ax.set_title(title)
        ax.set_xlabel("step")
        if len(keys) > 1 and rows:
            ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
