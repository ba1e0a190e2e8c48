"""The trainer every recipe uses.

What it does for a task:

* seeds everything, picks the device and thread count, optionally wraps the model in
  DDP (``torchrun``; gloo on CPU);
* batches by length buckets under a padded-token cap (:class:`BucketBatchSampler`);
* optimizer and LR schedule from :class:`~seqkit.config.TrainConfig`, gradient
  accumulation, gradient-norm clipping (on by default);
* skips and counts optimizer steps whose loss is not finite; stops cleanly with a
  checkpoint after ``max_bad_steps`` in a row;
* evaluates on dev every epoch (or every ``eval_every`` steps), early-stops on a dev
  metric, keeps ``best.pt`` and ``last.pt``;
* optionally keeps an exponential moving average of the weights (``ema_decay``), which
  dev evaluation and inference then use;
* logs to ``metrics.jsonl`` and TensorBoard, shows tqdm progress, plots
  ``learning_curve.png``;
* resumes exactly: ``last.pt`` holds model, optimizer, scheduler, all RNG states, the
  epoch and the position in that epoch's (deterministic) batch order, so a run that is
  killed and resumed ends with the same weights as one that never stopped (on CPU with
  deterministic settings).

The model contract: ``model(batch)`` returns a dict with ``"loss"`` (a scalar to
minimise, already averaged over the batch) and optionally ``"n"`` (how many units the
average was taken over, used to weight the logged loss).
"""

from __future__ import annotations

import math
import random
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import TrainConfig
from ..data.batching import BucketBatchSampler
from ..errors import ConfigError
from . import distributed as D
from .checkpoint import (
    FORMAT,
    VERSION,
    atomic_save,
    load_checkpoint,
    remove_stale_temp_files,
    rng_state,
    set_rng_state,
)
from .faults import kill_point
from .loader import iterate_batches
from .logs import MetricsLog, plot_learning_curve
from .memory import tune_malloc


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:  # pragma: no cover
        pass


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device is 'cuda' but no CUDA device is available")
    return torch.device(name)


def configure_process(cfg: TrainConfig, training: bool = True) -> None:
    """What :meth:`Trainer.fit` (and, with ``training=False``, loading for inference) sets for
    the whole process: torch's CPU threads (``num_threads``), glibc malloc's reuse of freed
    memory (``malloc_top_pad_mb``, :func:`seqkit.train.memory.tune_malloc`) and, for training,
    deterministic algorithms (``deterministic``)."""
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    tune_malloc(cfg.malloc_top_pad_mb)
    if training and cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


def move_to(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: move_to(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(v, device) for v in batch)
    return batch


def build_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def build_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int, total_steps: int):
    """Per-step LambdaLR (with linear warm-up) or ReduceLROnPlateau (stepped per evaluation)."""
    if cfg.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt,
            mode=cfg.early_stopping.mode,
            factor=cfg.decay_factor,
            patience=cfg.decay_patience,
            min_lr=cfg.min_lr,
        )
    base = cfg.lr
    floor = cfg.min_lr / base if base > 0 else 0.0
    warm = max(0, cfg.warmup_steps)

    def factor(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        s = step - warm
        span = max(1, total_steps - warm)
        if cfg.scheduler == "cosine":
            f = 0.5 * (1 + math.cos(math.pi * min(1.0, s / span)))
        elif cfg.scheduler == "linear":
            f = max(0.0, 1 - s / span)
        elif cfg.scheduler == "step":
            f = cfg.decay_factor ** (step // max(1, steps_per_epoch * cfg.decay_every))
        elif cfg.scheduler == "exponential":
            f = cfg.decay_factor ** (step / max(1, steps_per_epoch))
        else:
            f = 1.0
        return max(floor, f)

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


class Trainer:
    """Train ``model`` on ``train_set`` and select it on dev with ``evaluate``.

    Args:
        model: returns ``{"loss": scalar, "n": int}`` for ``model(batch)``.
        cfg: training options.
        train_set: indexable examples; ``collate(list_of_examples) -> batch``.
        lengths: per-example lengths used for bucketing and the token cap.
        evaluate: ``evaluate(model) -> dict`` of dev metrics (floats); called on the
            unwrapped model in eval mode under ``torch.inference_mode``.
        checkpoint_extra: plain data saved in every checkpoint (config, vocabularies).
        batch_sampler: optional replacement for the shuffled length buckets: an iterable
            of lists of ``train_set`` keys with ``set_epoch(epoch)``, ``set_start(batch)``
            (skip that many batches of the epoch, for resuming) and ``len()`` (batches in
            the current epoch), e.g. the ordered truncated-BPTT windows of a language model.
            ``lengths`` is then unused.
    """

    def __init__(
        self,
        model: nn.Module,
        cfg: TrainConfig,
        train_set: Sequence,
        lengths: Sequence[int],
        collate: Callable[[list], Any],
        evaluate: Callable[[nn.Module], dict] | None,
        checkpoint_extra: dict | None = None,
        log: Callable[[str], None] | None = None,
        batch_sampler: Any = None,
    ):
        self.cfg = cfg
        self.out = Path(cfg.output_dir)
        self.device = resolve_device(cfg.device)
        self.dist = D.setup(self.device)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        self.model = model.to(self.device)
        self.evaluate_fn = evaluate
        self.extra = checkpoint_extra or {}
        self._print = log or (lambda s: print(s, file=sys.stderr, flush=True))
        self.train_set = train_set
        self.collate = collate
        self.sampler = batch_sampler if batch_sampler is not None else BucketBatchSampler(
            lengths,
            max_tokens=cfg.max_tokens,
            max_sentences=cfg.max_sentences,
            shuffle=True,
            seed=cfg.seed,
            num_replicas=self.dist.world_size,
            rank=self.dist.rank,
        )
        self.steps_per_epoch = math.ceil(len(self.sampler) / cfg.accumulate)
        total = cfg.max_steps or self.steps_per_epoch * cfg.epochs
        self.optimizer = build_optimizer([p for p in model.parameters() if p.requires_grad], cfg)
        self.scheduler = build_scheduler(self.optimizer, cfg, self.steps_per_epoch, total)
        self.state = {
            "epoch": 0,  # epochs completed
            "batch_in_epoch": 0,  # this rank's batches consumed in the current epoch
            "step": 0,  # optimizer steps taken
            "best": None,  # best dev value of early_stopping.metric
            "best_step": None,
            "bad_evals": 0,  # evaluations since the best one
            "bad_steps": 0,  # consecutive skipped (non-finite) steps
            "skipped_steps": 0,  # all skipped steps
            "log_records": 0,
            "loss_sum": 0.0,  # train loss accumulated since the last log line
            "loss_n": 0,
            "finished": False,
            "stop_reason": None,
            "train_seconds": 0.0,  # wall-clock time spent in training so far (max_minutes)
        }
        self.ema = None
        if cfg.ema_decay is not None:
            if not 0.0 < cfg.ema_decay < 1.0:
                raise ConfigError(f"train.ema_decay must lie in (0, 1), got {cfg.ema_decay}")
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = AveragedModel(
                self.model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True
            )
        self.wrapped: nn.Module = self.model
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.wrapped = DDP(self.model, device_ids=ids)

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_state(self, resume: bool = True) -> dict:
        """Everything a checkpoint holds; without ``resume`` the weights only (no
        :data:`~seqkit.train.checkpoint.RESUME_KEYS`)."""
        state = {
            "format": FORMAT,
            "version": VERSION,
            **self.extra,
            "model": self.model.state_dict(),
            "trainer": dict(self.state),
            **({"ema": self.ema.state_dict()} if self.ema is not None else {}),
        }
        if resume:
            state.update(optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(),
                         rng=rng_state())
        return state

    def _update_ema(self) -> None:
        """One step of the moving average.  A buffer whose shape changed since the average
        was made (the language model's carried state, empty at first and (B, H) once used)
        is first copied over: the average cannot blend tensors of different shapes."""
        for (name, avg), cur in zip(self.ema.module.named_buffers(), self.model.buffers()):
            if avg.shape != cur.shape:
                owner, _, attr = name.rpartition(".")
                setattr(self.ema.module.get_submodule(owner), attr, cur.detach().clone())
        self.ema.update_parameters(self.model)

    @property
    def eval_model(self) -> nn.Module:
        """The weights dev evaluation sees: the moving average once it has started."""
        if self.ema is not None and int(self.ema.n_averaged) > 0:
            return self.ema.module
        return self.model

    def _elapsed(self) -> float:
        """Seconds of training so far, summed over resumed runs."""
        t0 = getattr(self, "_fit_t0", None)
        return self.state["train_seconds"] + (0.0 if t0 is None else time.time() - t0)

    def _out_of_time(self) -> bool:
        return bool(self.cfg.max_minutes) and self._elapsed() >= self.cfg.max_minutes * 60

    def save(self, name: str) -> Path:
        path = self.out / name
        if getattr(self, "_fit_t0", None) is not None:
            now = time.time()
            self.state["train_seconds"] += now - self._fit_t0
            self._fit_t0 = now
        if self.dist.is_main:
            atomic_save(self.checkpoint_state(), path)
        return path

    def resume(self, path: str | Path) -> None:
        ckpt = load_checkpoint(path, map_location=self.device)
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.state.update(ckpt["trainer"])
        if not self.dist.is_main:
            # the checkpoint holds rank 0's running train-loss sums; counting them on every rank
            # would count them world_size times in the next all-reduced log line
            self.state["loss_sum"], self.state["loss_n"] = 0.0, 0
        if self.ema is not None:
            if "ema" not in ckpt:
                raise ConfigError(f"{path}: train.ema_decay is set but the checkpoint holds no "
                                  "moving average (the run started without it); use --fresh")
            self.ema.load_state_dict(ckpt["ema"])
        set_rng_state(ckpt["rng"])

    # ------------------------------------------------------------------ evaluation
    def run_eval(self, logger: MetricsLog) -> dict:
        metrics: dict = {}
        if self.evaluate_fn is not None:
            model = self.eval_model
            model.eval()
            with torch.inference_mode():
                metrics = dict(self.evaluate_fn(model))
            model.train()
        kill_point("eval")
        es = self.cfg.early_stopping
        improved = False
        if es.metric in metrics:
            value = float(metrics[es.metric])
            best = self.state["best"]
            improved = best is None or (value > best if es.mode == "max" else value < best)
            if improved:
                self.state.update(best=value, best_step=self.state["step"], bad_evals=0)
            else:
                self.state["bad_evals"] += 1
            if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                self.scheduler.step(value)
        elif metrics:
            raise ConfigError(
                f"{self.extra.get('config', {}).get('source', 'config')}: key "
                f"'train.early_stopping.metric': '{es.metric}' is not among the dev metrics "
                f"{sorted(metrics)}"
            )
        if self.dist.is_main:
            logger.write("dev", self.state["step"], self.state["epoch"], **metrics)
            self._print(
                f"dev @ step {self.state['step']} (epoch {self.state['epoch']}): "
                + " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())
                + (" *best*" if improved else "")
            )
        self.state["log_records"] = len(logger)
        if improved and self.cfg.keep_best:
            self.save("best.pt")
        if self.cfg.keep_checkpoints > 0 and self.dist.is_main:
            self._keep_checkpoint()
        return metrics

    def _keep_checkpoint(self) -> None:
        """Weights at this evaluation as ``ckpt_step<step>.pt``; only the newest
        ``keep_checkpoints`` are kept."""
        atomic_save(self.checkpoint_state(resume=False), self.out / f"ckpt_step{self.state['step']:09d}.pt")
        for old in sorted(self.out.glob("ckpt_step*.pt"))[: -self.cfg.keep_checkpoints]:
            old.unlink(missing_ok=True)

    def _should_stop_early(self) -> bool:
        p = self.cfg.early_stopping.patience
        return p is not None and self.state["bad_evals"] >= p

    # ------------------------------------------------------------------ training
    def fit(self) -> dict:
        cfg = self.cfg
        configure_process(cfg)
        seed_everything(cfg.seed)
        if self.dist.is_main:
            stale = remove_stale_temp_files(self.out)
            if stale:
                self._print(f"{self.out}: removed {len(stale)} unfinished checkpoint write(s) of a killed run: "
                            + " ".join(p.name for p in stale))
        last = self.out / "last.pt"
        keep = None
        if last.exists():
            self.resume(last)
            keep = self.state["log_records"]
            if self.state["finished"]:
                self._print(f"{last}: run already finished ({self.state['stop_reason']}); nothing to do")
                return self.summary()
            self._print(
                f"resuming from {last}: epoch {self.state['epoch'] + 1}, batch "
                f"{self.state['batch_in_epoch']}, step {self.state['step']}"
            )
        logger = MetricsLog(self.out, cfg.tensorboard, keep_records=keep, enabled=self.dist.is_main)
        self._fit_t0 = time.time()
        try:
            self._loop(logger)
        finally:
            logger.close()
            if self.dist.is_main:
                plot_learning_curve(
                    logger.records, self.out / "learning_curve.png", cfg.early_stopping.metric
                )
        if self.dist.enabled:
            in_sync = D.same_on_all_ranks(self.model, self.dist)
            if self.dist.is_main:
                self._print(f"ddp: {self.dist.world_size} ranks, weights "
                            + ("in sync" if in_sync else "DIFFER between ranks"))
        D.barrier(self.dist)
        return self.summary()

    def summary(self) -> dict:
        return {k: self.state[k] for k in ("epoch", "step", "best", "best_step", "skipped_steps", "stop_reason")}

    def _log_train(self, logger: MetricsLog, epoch: int, t0: float) -> float | None:
        """Log the token-weighted mean training loss since the last log, over all ranks (every
        rank must call this: under DDP it all-reduces); None when no finite loss was seen."""
        st = self.state
        loss_sum, loss_n = D.sum_over_ranks([st["loss_sum"], st["loss_n"]], self.dist, self.device)
        if not loss_n:
            return None
        avg = loss_sum / loss_n
        logger.write("train", st["step"], epoch, loss=avg, lr=self.optimizer.param_groups[0]["lr"],
                     sec=round(time.time() - t0, 3))
        st["loss_sum"], st["loss_n"] = 0.0, 0
        return avg

    def _loop(self, logger: MetricsLog) -> None:
        cfg = self.cfg
        self.model.train()
        loader_kw = dict(collate_fn=self.collate, num_workers=cfg.num_workers)
        if cfg.num_workers > 0:
            loader_kw["timeout"] = cfg.loader_timeout  # a hung worker is reported, not waited on forever
        show = cfg.progress and self.dist.is_main
        while self.state["epoch"] < cfg.epochs and not self.state["finished"]:
            epoch = self.state["epoch"]
            self.sampler.set_epoch(epoch)
            self.sampler.set_start(self.state["batch_in_epoch"])
            # a private generator: creating the loader's iterator must not draw from the
            # global RNG, or a mid-epoch resume would shift the dropout masks
            gen = torch.Generator().manual_seed(cfg.seed * 100003 + epoch)
            loader = torch.utils.data.DataLoader(self.train_set, batch_sampler=self.sampler, generator=gen,
                                                 **loader_kw)
            n_batches = len(self.sampler)
            bar = None
            if show:
                from tqdm import tqdm

                bar = tqdm(total=n_batches, initial=self.state["batch_in_epoch"], desc=f"epoch {epoch + 1}",
                           leave=False, dynamic_ncols=True, disable=None, file=sys.stderr)
            t0 = time.time()
            finite = True
            st = self.state
            # a worker that dies, hangs or raises becomes a SeqkitError between two batches
            batches = iterate_batches(loader, epoch=epoch, start=self.state["batch_in_epoch"],
                                      n_batches=n_batches, output_dir=self.out,
                                      step=lambda: self.state["step"], timeout=cfg.loader_timeout)
            for batch in batches:
                pos = self.state["batch_in_epoch"]
                micro = pos % cfg.accumulate
                last_micro = micro == cfg.accumulate - 1 or pos == n_batches - 1
                batch = move_to(batch, self.device)
                sync = (not self.dist.enabled) or last_micro
                ctx = nullcontext() if sync else self.wrapped.no_sync()
                with ctx:
                    out = self.wrapped(batch)
                    loss = out["loss"]
                    is_finite = bool(torch.isfinite(loss.detach()).item())
                    finite = finite and is_finite
                    # the mean over this step's micro-batches (fewer than accumulate at an odd epoch end)
                    (loss / min(cfg.accumulate, n_batches - (pos - micro))).backward()
                if is_finite:
                    n = int(out.get("n", 1))
                    st["loss_sum"] += float(loss.detach()) * n
                    st["loss_n"] += n
                self.state["batch_in_epoch"] += 1
                if bar is not None:
                    bar.update(1)
                if not last_micro:
                    continue
                # ---- one optimizer step
                if D.all_true(finite, self.dist, self.device):
                    if cfg.clip_grad_norm:
                        nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_grad_norm)
                    self.optimizer.step()
                    if self.ema is not None and self.state["step"] + 1 > cfg.ema_start:
                        self._update_ema()
                    self.state["bad_steps"] = 0
                else:
                    self.state["bad_steps"] += 1
                    self.state["skipped_steps"] += 1
                    if self.dist.is_main:
                        self._print(f"step {self.state['step'] + 1}: non-finite loss, step skipped "
                                    f"({self.state['skipped_steps']} skipped so far)")
                self.optimizer.zero_grad(set_to_none=True)
                finite = True
                self.state["step"] += 1
                if not isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    with warnings.catch_warnings():  # a skipped step still advances the schedule
                        warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step", UserWarning)
                        self.scheduler.step()
                step = self.state["step"]
                kill_point("step")
                if self.state["bad_steps"] >= cfg.max_bad_steps:
                    self.state.update(finished=True, stop_reason=f"{cfg.max_bad_steps} non-finite steps in a row")
                if step % cfg.log_every == 0 and (avg := self._log_train(logger, epoch, t0)) is not None:
                    if bar is not None:
                        bar.set_postfix(loss=f"{avg:.4f}", lr=f"{self.optimizer.param_groups[0]['lr']:.2e}")
                    t0 = time.time()
                if cfg.eval_every and step % cfg.eval_every == 0:
                    self.run_eval(logger)
                    if self._should_stop_early():
                        self.state.update(finished=True, stop_reason="early stopping")
                if cfg.max_steps and step >= cfg.max_steps and not self.state["finished"]:
                    self.state.update(finished=True, stop_reason=f"max_steps={cfg.max_steps}")
                if not self.state["finished"] and self._out_of_time():
                    if not (cfg.eval_every and step % cfg.eval_every == 0):  # not just done
                        self.run_eval(logger)
                    self.state.update(finished=True, stop_reason=f"max_minutes={cfg.max_minutes}")
                self.state["log_records"] = len(logger)
                if self.state["finished"] or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0):
                    self.save("last.pt")
                if self.state["finished"]:
                    break
            if bar is not None:
                bar.close()
            if self.state["finished"]:
                break
            # ---- end of epoch
            self.state["epoch"] += 1
            self.state["batch_in_epoch"] = 0
            self._log_train(logger, epoch, t0)
            if not cfg.eval_every:
                self.run_eval(logger)
                if self._should_stop_early():
                    self.state.update(finished=True, stop_reason="early stopping")
            if self.state["epoch"] >= cfg.epochs:
                self.state.update(finished=True, stop_reason=f"epochs={cfg.epochs}")
            elif not self.state["finished"] and self._out_of_time():
                if cfg.eval_every:  # the per-epoch evaluation above did not run
                    self.run_eval(logger)
                self.state.update(finished=True, stop_reason=f"max_minutes={cfg.max_minutes}")
            self.state["log_records"] = len(logger)
            self.save("last.pt")
        if self.state["stop_reason"] and self.dist.is_main:
            self._print(f"training stopped: {self.state['stop_reason']}; best "
                        f"{cfg.early_stopping.metric}={self.state['best']} at step {self.state['best_step']}")
