"""Training logs: a JSONL file of metrics, TensorBoard scalars and a learning-curve plot.

``metrics.jsonl`` holds one JSON object per line: ``{"kind": "train"|"dev", "step",
"epoch", ...metrics}``.  The trainer stores the number of records in each checkpoint
so that a resumed run first cuts the file back to that point and the log of a
resumed run equals the log of an uninterrupted one.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


class MetricsLog:
    def __init__(
        self,
        out_dir: str | Path,
        tensorboard: bool = True,
        keep_records: int | None = None,
        enabled: bool = True,
    ):
        """``enabled=False`` (DDP ranks other than 0) keeps records in memory only."""
        self.path = Path(out_dir) / "metrics.jsonl"
        self.enabled = enabled
        self.records: list[dict] = []
        if keep_records is not None and self.path.exists():
            lines = self.path.read_text(encoding="utf-8").splitlines()
            self.records = [json.loads(line) for line in lines[:keep_records]]
        self.writer = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("".join(json.dumps(r) + "\n" for r in self.records), encoding="utf-8")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                last_step = max((r["step"] for r in self.records), default=0)
                # purge_step drops events a killed run wrote after the resumed point
                self.writer = SummaryWriter(str(Path(out_dir) / "tensorboard"), purge_step=last_step + 1)
            except ImportError:  # pragma: no cover - tensorboard is a dependency
                self.writer = None

    def __len__(self) -> int:
        return len(self.records)

    def write(self, kind: str, step: int, epoch: int, **metrics: Any) -> None:
        rec = {"kind": kind, "step": step, "epoch": epoch, **metrics}
        self.records.append(rec)
        if not self.enabled:
            return
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
            f.flush()
        if self.writer is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    self.writer.add_scalar(f"{kind}/{k}", v, step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def plot_learning_curve(records: list[dict], out_png: str | Path, dev_metric: str | None = None) -> Path:
    """Train loss over optimizer steps and dev figures over evaluations, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in records if r["kind"] == "train" and "loss" in r]
    dev = [r for r in records if r["kind"] == "dev"]
    fig, ax1 = plt.subplots(figsize=(7, 4))
    if train:
        ax1.plot([r["step"] for r in train], [r["loss"] for r in train], label="train loss", color="C0")
    if dev and any("loss" in r for r in dev):
        pts = [(r["step"], r["loss"]) for r in dev if "loss" in r]
        ax1.plot(*zip(*pts), "o-", label="dev loss", color="C1")
    ax1.set_xlabel("optimizer step")
    ax1.set_ylabel("loss")
    handles, labels = ax1.get_legend_handles_labels()
    if dev_metric and dev_metric != "loss" and any(dev_metric in r for r in dev):
        ax2 = ax1.twinx()
        pts = [(r["step"], r[dev_metric]) for r in dev if dev_metric in r]
        ax2.plot(*zip(*pts), "s-", label=f"dev {dev_metric}", color="C2")
        ax2.set_ylabel(f"dev {dev_metric}")
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    if handles:
        ax1.legend(handles, labels, loc="best")
    ax1.set_title("learning curve")
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png
