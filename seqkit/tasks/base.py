"""The task interface shared by every recipe, and the train / evaluate / predict flows.

The flows (:func:`train`, :func:`evaluate`, :func:`predict`) are what ``seqkit train``,
``seqkit evaluate`` and ``seqkit predict`` run; each task fills in the hooks of
:class:`Task`.  One config file drives all three (the checkpoint also stores the
task state, so ``evaluate``/``predict`` never rebuild vocabularies from data).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from ..config import ExperimentConfig, to_dict
from ..errors import ConfigError, SeqkitError
from ..train.checkpoint import inference_state, load_checkpoint
from ..train.trainer import Trainer, configure_process, resolve_device


class Task:
    """Hooks a task implements.  ``self.cfg`` is the whole :class:`ExperimentConfig`."""

    name: ClassVar[str]
    DataConfig: ClassVar[type]
    ModelConfig: ClassVar[type]
    DecodeConfig: ClassVar[type | None] = None  # the ``decode:`` section, if the task searches

    def __init__(self, cfg: ExperimentConfig):
        self.cfg = cfg

    # -- data and vocabularies
    def build_state(self) -> None:
        """Build vocabularies/tokenizers from the training data."""
        raise NotImplementedError

    def state_dict(self) -> dict:
        """Plain data (str/int/float/list/dict/bytes) saved in every checkpoint."""
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        raise NotImplementedError

    def training_data(self) -> tuple[Sequence, list[int], Any]:
        """(examples, lengths for bucketing, collate function)."""
        raise NotImplementedError

    def train_batch_sampler(self) -> Any:
        """None (the trainer's shuffled length buckets), or the task's own batch sampler.

        Called after :meth:`training_data`.  See ``batch_sampler`` of
        :class:`~seqkit.train.trainer.Trainer` for the protocol (e.g. the ordered
        truncated-BPTT windows of :mod:`seqkit.tasks.lm`).
        """
        return None

    # -- model
    def build_model(self) -> nn.Module:
        raise NotImplementedError

    # -- evaluation and prediction
    def evaluate(self, model: nn.Module, split: str | None = None, out_prefix: Path | None = None) -> dict:
        """Metrics on ``split`` (a data path; default the config's dev set).

        With ``out_prefix``, also write predictions next to it.
        """
        raise NotImplementedError

    def predict(self, model: nn.Module, lines: list[str]) -> list[str]:
        """One output line per raw input line."""
        raise NotImplementedError

    # -- helpers for tasks
    def check_file(self, key: str, path: str | Path) -> Path:
        """A data file named by config ``key`` must exist (ConfigError naming both)."""
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{self.cfg.source}: key '{key}': file not found: {p}")
        return p


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _checkpoint_extra(task: Task) -> dict:
    return {"config": to_dict(task.cfg), "task": task.state_dict()}


def train(cfg: ExperimentConfig, fresh: bool = False) -> dict:
    """Train (or resume) the experiment, then evaluate the best checkpoint on dev.

    Writes into ``train.output_dir``: ``last.pt``, ``best.pt``, ``metrics.jsonl``,
    ``tensorboard/``, ``learning_curve.png``, ``config.yaml`` and the dev predictions
    and metrics of the best checkpoint (``dev.*``, ``dev_metrics.json``).
    """
    from ..tasks import get_task

    out = Path(cfg.train.output_dir)
    last = out / "last.pt"
    if fresh and out.exists():
        for name in ("last.pt", "best.pt", "metrics.jsonl"):
            (out / name).unlink(missing_ok=True)
        for old in out.glob("ckpt_step*.pt"):  # kept weights of the previous run
            old.unlink()
    task: Task = get_task(cfg.task)(cfg)
    if last.exists():  # resuming: reuse the saved vocabularies, never rebuild them
        task.load_state_dict(load_checkpoint(last)["task"])
    else:
        task.build_state()
    torch.manual_seed(cfg.train.seed)  # model initialisation is seeded
    examples, lengths, collate = task.training_data()
    model = task.build_model()
    _log(f"{cfg.task}: {len(examples)} training examples, "
         f"{sum(p.numel() for p in model.parameters()):,} parameters")
    trainer = Trainer(
        model,
        cfg.train,
        examples,
        lengths,
        collate,
        evaluate=lambda m: task.evaluate(m),
        checkpoint_extra=_checkpoint_extra(task),
        batch_sampler=task.train_batch_sampler(),
    )
    if trainer.dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
        import yaml

        cfg_dict = to_dict(cfg)
        cfg_dict.pop("source", None)
        (out / "config.yaml").write_text(yaml.safe_dump(cfg_dict, sort_keys=False), encoding="utf-8")
    summary = trainer.fit()
    if not trainer.dist.is_main:
        return summary
    best = out / ("best.pt" if (out / "best.pt").exists() else "last.pt")
    metrics = evaluate(cfg, checkpoint=best)
    summary["dev"] = metrics
    return summary


def load_for_inference(cfg: ExperimentConfig, checkpoint: str | Path | None = None):
    """(task, model in eval mode) from ``checkpoint`` (default: best.pt, else last.pt)."""
    from ..tasks import get_task

    out = Path(cfg.train.output_dir)
    if checkpoint is None:
        checkpoint = out / "best.pt" if (out / "best.pt").exists() else out / "last.pt"
    ckpt = load_checkpoint(checkpoint)
    saved_task = ckpt.get("config", {}).get("task")
    if saved_task != cfg.task:
        raise SeqkitError(f"{checkpoint}: checkpoint is for task {saved_task!r}, config says {cfg.task!r}")
    task: Task = get_task(cfg.task)(cfg)
    task.load_state_dict(ckpt["task"])
    model = task.build_model()
    model.load_state_dict(inference_state(ckpt))
    model.to(resolve_device(cfg.train.device)).eval()
    configure_process(cfg.train, training=False)  # the same CPU threads as training (decoding speeds compare)
    return task, model


def evaluate(cfg: ExperimentConfig, checkpoint: str | Path | None = None, split: str | None = None) -> dict:
    """Evaluate a checkpoint on ``split`` (default dev); print and save metrics + predictions."""
    task, model = load_for_inference(cfg, checkpoint)
    out = Path(cfg.train.output_dir)
    name = "dev" if split is None else Path(split).name.replace(".", "_")
    out.mkdir(parents=True, exist_ok=True)  # predictions and metrics go here
    with torch.inference_mode():
        metrics = task.evaluate(model, split, out_prefix=out / name)
    (out / f"{name}_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    _log(f"{name}: " + " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()))
    return metrics


def predict(cfg: ExperimentConfig, lines: list[str], checkpoint: str | Path | None = None) -> list[str]:
    task, model = load_for_inference(cfg, checkpoint)
    with torch.inference_mode():
        return task.predict(model, lines)
