"""Fault injection for the kill-and-resume tests.

``SEQKIT_KILL_AT="point:n[,point:n ...]"`` makes the process send itself ``SIGKILL`` the
``n``-th time (1-based, counted in this process) it reaches ``point``.  The points:

* ``step``: after an optimizer step, before that step's checkpoint is written (mid-epoch);
* ``ckpt_write``: inside :func:`~seqkit.train.checkpoint.atomic_save`, after the temporary
  file holds the whole checkpoint and before it is renamed over the target;
* ``eval``: inside a dev evaluation, after the metrics are computed and before they are
  logged or any checkpoint of that evaluation is written.

A real ``SIGKILL`` runs no cleanup code, so what it leaves on disk is what a crash or the
out-of-memory killer would leave.  Without the variable :func:`kill_point` does nothing.
"""

from __future__ import annotations

import os
import signal

_ENV = "SEQKIT_KILL_AT"
POINTS = ("step", "ckpt_write", "eval")
_counts: dict[str, int] = {}


def _parse(spec: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, n = part.partition(":")
        if name not in POINTS or not n.isdigit() or int(n) < 1:
            raise ValueError(f"{_ENV}={spec!r}: expected point:n with point in {POINTS} and n >= 1")
        out[name] = int(n)
    return out


def kill_point(name: str) -> None:
    """SIGKILL this process if ``SEQKIT_KILL_AT`` asks for it at this visit of ``name``."""
    spec = os.environ.get(_ENV)
    if not spec:
        return
    want = _parse(spec).get(name)
    if want is None:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] == want:
        os.kill(os.getpid(), signal.SIGKILL)
