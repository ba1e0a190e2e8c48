"""Plain YAML experiment files mapped onto typed dataclasses.

One file drives ``train``, ``evaluate`` and ``predict`` (as in JoeyNMT)::

    task: slot_filling
    data: {...}      # the task's DataConfig
    model: {...}     # the task's ModelConfig
    train: {...}     # TrainConfig (shared by every task)

Every key is checked: an unknown or mistyped key, or a value of the wrong type, is a
:class:`~seqkit.errors.ConfigError` that names the key and the file, with a suggestion
for near misses.  Overrides on the command line use dotted keys
(``train.lr=0.002 model.hidden_size=128``); their values are parsed as YAML scalars.
YAML is always read with ``yaml.safe_load``.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .errors import ConfigError


@dataclass
class EarlyStoppingConfig:
    metric: str = "loss"  # a key of the task's dev metrics, or "loss"
    mode: Literal["min", "max"] = "min"
    patience: int | None = None  # evaluations without improvement before stopping; None: never


@dataclass
class TrainConfig:
    """Options shared by every task's trainer."""

    output_dir: str = "exp/run"
    seed: int = 1
    epochs: int = 10
    max_steps: int | None = None  # optimizer steps; stops early when reached
    max_minutes: float | None = None  # wall-clock training budget (cumulative over resumes);
    # when spent: evaluate, checkpoint and stop (like fairseq's --stop-time-hours)
    # batching
    max_tokens: int = 4000  # padded-token cap per batch (max_len * n_sentences)
    max_sentences: int | None = None
    # optimisation
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    scheduler: Literal["none", "plateau", "cosine", "linear", "step", "exponential"] = "none"
    warmup_steps: int = 0  # linear warm-up, applies to every scheduler except "plateau"
    decay_factor: float = 0.5  # plateau/step/exponential factor
    decay_patience: int = 1  # plateau: evaluations without improvement before decaying
    decay_every: int = 1  # step: epochs between decays
    min_lr: float = 0.0
    clip_grad_norm: float | None = 5.0  # on by default; null disables
    accumulate: int = 1  # gradient accumulation: batches per optimizer step
    ema_decay: float | None = None  # keep an exponential moving average of the weights
    # (Polyak averaging; OpenNMT-py's average_decay, fairseq's --ema-decay), e.g. 0.999:
    # dev evaluation, best.pt and inference use the averaged weights
    ema_start: int = 0  # optimizer step at which averaging starts (a copy of the weights)
    # evaluation, checkpoints, logs
    eval_every: int | None = None  # evaluate every N optimizer steps; None: once per epoch
    checkpoint_every: int | None = 100  # also write last.pt every N optimizer steps (for resume)
    keep_best: bool = True
    keep_checkpoints: int = 0  # > 0: also keep the weights at the last N evaluations as
    # ckpt_step<step>.pt (for `seqkit average`, checkpoint averaging)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    log_every: int = 20
    tensorboard: bool = True
    progress: bool = True
    # numerics and machine
    max_bad_steps: int = 20  # consecutive non-finite losses before the run stops cleanly
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_threads: int | None = None  # torch intra-op threads; None: torch's default
    malloc_top_pad_mb: int | None = 256  # glibc malloc keeps this much freed memory for reuse
    # and serves blocks up to 32 MiB from its heap (seqkit/train/memory.py): fewer page
    # faults on the large per-step tensors of CPU training and decoding; 0/null: glibc's defaults
    num_workers: int = 0  # DataLoader workers
    loader_timeout: float = 300  # seconds without a batch from the workers (num_workers > 0)
    # before the run stops with an error saying a worker hangs; 0: no limit (a worker that
    # dies is reported at once either way)
    deterministic: bool = True


@dataclass
class ExperimentConfig:
    task: str
    data: Any
    model: Any
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: Any = None  # the task's DecodeConfig (search options), for tasks that have one
    source: str = "<config>"  # the file this came from (not a YAML key)


# --------------------------------------------------------------------------------------
# dataclass <-> dict


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _suggest(key: str, options: list[str]) -> str | None:
    """The option a mistyped ``key`` most likely meant (typo or extra/missing suffix)."""
    close = difflib.get_close_matches(key, options, n=1)
    if close:
        return close[0]
    related = [o for o in options if len(o) >= 2 and (key.startswith(o) or o.startswith(key))]
    return max(related, key=len) if related else None


def _fail(where: str, key: str, msg: str) -> ConfigError:
    return ConfigError(f"{where}: key '{key}': {msg}")


def _coerce(value: Any, tp: Any, key: str, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert where lossless."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key, where)
            except ConfigError as e:
                errors.append(str(e))
        raise _fail(where, key, f"expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in args:
            raise _fail(where, key, f"expected one of {list(args)}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _fail(where, key, f"expected a list, got {value!r}")
        inner = args[0] if args else Any
        return [_coerce(v, inner, f"{key}[{i}]", where) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _fail(where, key, f"expected a mapping, got {value!r}")
        vt = args[1] if len(args) == 2 else Any
        return {k: _coerce(v, vt, f"{key}.{k}", where) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise _fail(where, key, f"expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, where=where, prefix=key + ".")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _fail(where, key, f"expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _fail(where, key, f"expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise _fail(where, key, f"expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise _fail(where, key, f"expected a string, got {value!r}")
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise _fail(where, key, f"expected {_type_name(tp)}, got {value!r}")


def from_dict(cls: type, data: dict, where: str = "<config>", prefix: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``; unknown keys and bad types name key and file."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: '{prefix.rstrip('.') or '<top>'}' must be a mapping")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            close = _suggest(str(key), list(fields))
            hint = f" (did you mean '{prefix}{close}'?)" if close else ""
            valid = ", ".join(sorted(fields))
            raise ConfigError(
                f"{where}: unknown key '{prefix}{key}'{hint}; valid keys here: {valid}"
            )
        kwargs[key] = _coerce(value, hints[key], prefix + key, where)
    missing = [
        n
        for n, f in fields.items()
        if n not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING  # type: ignore[misc]
    ]
    if missing:
        raise ConfigError(f"{where}: missing required key '{prefix}{missing[0]}'")
    return cls(**kwargs)


def to_dict(obj: Any) -> Any:
    """Dataclass tree -> plain dict (for saving inside checkpoints and logs)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


# --------------------------------------------------------------------------------------
# files and overrides


def apply_overrides(raw: dict, overrides: list[str], where: str = "command line") -> dict:
    """Apply ``a.b.c=value`` overrides to a nested dict (values parsed as YAML scalars)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"{where}: override '{item}' must look like key.sub=value")
        dotted, text = item.split("=", 1)
        try:
            value = yaml.safe_load(text) if text != "" else ""
        except yaml.YAMLError as e:
            raise ConfigError(f"{where}: cannot parse value of '{dotted}': {e}") from None
        node = raw
        parts = dotted.split(".")
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                node[p] = {} if node.get(p) is None else node[p]
                if not isinstance(node[p], dict):
                    raise ConfigError(f"{where}: '{dotted}': '{p}' is not a section")
            node = node[p]
        node[parts[-1]] = value
    return raw


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"{path}{line}: invalid YAML: {problem}") from None
    if raw is None:
        raise ConfigError(f"{path}: config file is empty")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections")
    return raw


def build_config(raw: dict, where: str = "<config>") -> ExperimentConfig:
    """Map a raw dict onto the task's typed dataclasses."""
    from .tasks import get_task  # the task registry names the data/model dataclasses

    raw = dict(raw)
    known = {"task", "data", "model", "train", "decode"}
    for key in raw:
        if key not in known:
            close = _suggest(str(key), sorted(known))
            hint = f" (did you mean '{close}'?)" if close else ""
            raise ConfigError(f"{where}: unknown key '{key}'{hint}; valid keys: {', '.join(sorted(known))}")
    if "task" not in raw:
        raise ConfigError(f"{where}: missing required key 'task'")
    task_cls = get_task(raw["task"], where=where)
    decode_cls = getattr(task_cls, "DecodeConfig", None)
    if decode_cls is None and raw.get("decode") is not None:
        raise ConfigError(f"{where}: key 'decode': task {raw['task']!r} has no decode options")
    return ExperimentConfig(
        task=raw["task"],
        data=from_dict(task_cls.DataConfig, raw.get("data") or {}, where, "data."),
        model=from_dict(task_cls.ModelConfig, raw.get("model") or {}, where, "model."),
        train=from_dict(TrainConfig, raw.get("train") or {}, where, "train."),
        decode=None if decode_cls is None else from_dict(decode_cls, raw.get("decode") or {}, where, "decode."),
        source=where,
    )


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read ``path``, apply dotted overrides and build the typed config.

    Relative data paths in the file are resolved by the task against the current
    directory (recipes are run from the repository root, as in their READMEs).
    """
    raw = read_yaml(path)
    raw = apply_overrides(raw, overrides or [], where=f"{path} (override)")
    return build_config(raw, where=str(path))
