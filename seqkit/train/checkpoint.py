"""Checkpoints: atomic writes and safe loads.

A checkpoint is a plain dict of tensors and Python literals, written with
``torch.save`` to a temporary file in the same directory, flushed to disk and then
renamed over the target (``os.replace`` is atomic on POSIX), so a crash or a kill
never leaves a half-written checkpoint behind.  Loading always uses
``torch.load(weights_only=True)``: a file that needs arbitrary unpickling (and so
could run code) is refused with a clear message.
"""

from __future__ import annotations

import os
import pickle
import random
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..errors import SeqkitError
from .faults import kill_point

FORMAT = "seqkit-checkpoint"
VERSION = 1
#: entries needed only to resume training (left out of kept and averaged checkpoints)
RESUME_KEYS = ("optimizer", "scheduler", "rng")


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to ``path`` atomically (temp file + fsync + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        kill_point("ckpt_write")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def remove_stale_temp_files(folder: str | Path) -> list[Path]:
    """Delete the temporary files of :func:`atomic_save` calls that never finished (a kill
    between the write and the rename leaves one); returns what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = sorted(p for p in folder.glob(".*.pt.*.tmp") if p.is_file())
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a seqkit checkpoint safely (``weights_only=True``).

    Raises :class:`SeqkitError` for a missing file, a truncated/corrupt file, a file
    whose unpickling would run code, or a file that is not a seqkit checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise SeqkitError(f"{path}: checkpoint not found")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SeqkitError(
            f"{path}: refused to load: the file is not a plain weights checkpoint and "
            f"unpickling it could run code ({first})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SeqkitError(f"{path}: cannot read checkpoint (corrupt or truncated?): {first}") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise SeqkitError(f"{path}: not a seqkit checkpoint")
    return obj


def rng_state() -> dict:
    """All RNG states a training step can touch, as weights_only-loadable values."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    try:
        import numpy as np

        kind, keys, pos, has_gauss, cached = np.random.get_state()
        state["numpy"] = [kind, torch.from_numpy(keys.astype("int64")), pos, has_gauss, cached]
    except ImportError:  # pragma: no cover - numpy ships with torch's deps
        pass
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "numpy" in state:
        import numpy as np

        kind, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype("uint32"), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def average_checkpoints(paths: list[str | Path]) -> dict:
    """The element-wise mean of the inference weights of ``paths`` (checkpoint averaging,
    as in fairseq's ``average_checkpoints.py`` and Marian/OpenNMT), returned as a checkpoint:
    the last file's entries (config, vocabularies) with ``model`` replaced by the mean, no
    optimizer and no moving average.  Integer tensors must agree and are kept as they are.
    """
    if not paths:
        raise SeqkitError("average_checkpoints: no checkpoints given")
    total: dict | None = None
    dtypes: dict = {}
    last: dict = {}
    for p in paths:
        last = load_checkpoint(p)
        weights = inference_state(last)
        if total is None:
            total = {k: v.double() if v.is_floating_point() else v.clone() for k, v in weights.items()}
            dtypes = {k: v.dtype for k, v in weights.items()}
            continue
        if set(weights) != set(total):
            raise SeqkitError(f"{p}: its parameters differ from those of {paths[0]}")
        for k, v in weights.items():
            if v.shape != total[k].shape:
                raise SeqkitError(f"{p}: parameter {k} has shape {tuple(v.shape)}, "
                                  f"{paths[0]} has {tuple(total[k].shape)}")
            if v.is_floating_point():
                total[k] += v.double()
            elif not torch.equal(v, total[k]):
                raise SeqkitError(f"{p}: integer tensor {k} differs from that of {paths[0]}")
    avg = {k: (v / len(paths)).to(dtypes[k]) if v.is_floating_point() else v for k, v in total.items()}
    out = {k: v for k, v in last.items() if k not in ("model", "ema", *RESUME_KEYS)}
    out["model"] = avg
    out["averaged_from"] = [str(p) for p in paths]
    return out


def inference_state(ckpt: dict) -> dict:
    """The weights to predict with: the moving average where training kept one
    (``train.ema_decay``), else the trained weights."""
    ema = ckpt.get("ema")
    if not ema:
        return ckpt["model"]
    return {k[len("module.") :]: v for k, v in ema.items() if k.startswith("module.")}
