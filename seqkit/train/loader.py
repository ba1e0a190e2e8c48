"""Iterating a ``DataLoader`` whose workers may fail: failures become clear :class:`SeqkitError`\\ s.

With ``train.num_workers > 0`` torch prepares batches in worker processes, and three
things can go wrong there:

* **A worker dies** (the out-of-memory killer, a segfault in a decoding library, a
  ``kill``).  torch notices it in one of three ways: its ``SIGCHLD`` handler raises
  ``RuntimeError: DataLoader worker (pid N) is killed by signal: Killed.`` *asynchronously,
  wherever the main thread happens to be* (inside the model's forward, inside a checkpoint
  write), a ``RuntimeError: DataLoader worker (pid(s) N) exited unexpectedly`` from the
  queue read, or a bare ``ConnectionResetError`` when the batch it had sent can no longer be
  fetched from it.  :func:`iterate_batches` replaces the ``SIGCHLD`` handler while it runs
  with one that calls torch's but only lets its error through while the main thread is
  waiting for a batch (that wait is what the error must interrupt); a death noticed at any
  other moment is remembered and reported at the next request for a batch, so the error
  always comes out between two batches, never in the middle of an optimizer step or a
  checkpoint write.  All three forms become one :class:`DataLoaderWorkerError` that says
  which epoch and batch, that ``last.pt`` is intact and that re-running the same command
  resumes from it, and that ``train.num_workers=0`` loads the data in-process to debug.
* **A worker raises.**  torch re-raises the exception in the main process as the same type
  built from one string: ``"Caught DataError in DataLoader worker process 0. Original
  Traceback ..."``.  A :class:`SeqkitError` (bad input: the message names the file) is
  re-raised with its original message, so the CLI prints the same ``seqkit: error:
  FILE:LINE: ...`` line as with ``num_workers=0``.  Any other exception is a bug and keeps
  torch's worker traceback.
* **A worker hangs**: after ``train.loader_timeout`` seconds without a batch, a
  :class:`DataLoaderWorkerError` says so (torch's "DataLoader timed out").
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import SeqkitError

_DIED_MARKERS = ("exited unexpectedly", "is killed by signal")


class DataLoaderWorkerError(SeqkitError):
    """A data-loader worker process died or stopped delivering batches."""


def _is_worker_death(err: BaseException) -> bool:
    msg = str(err)
    return (
        isinstance(err, RuntimeError)
        and "DataLoader worker" in msg
        and any(m in msg for m in _DIED_MARKERS)
    )


def original_message(err: SeqkitError) -> str:
    """The message a :class:`SeqkitError` raised in a worker had, from torch's re-raised copy
    (whose message is ``"Caught X in DataLoader worker process N.\\nOriginal Traceback ...
    module.X: message"``); ``str(err)`` itself when it is not such a copy."""
    text = str(err)
    if not (
        text.startswith("Caught ") and "in DataLoader worker process" in text.split("\n", 1)[0]
    ):
        return text
    cls = type(err)
    names = [cls.__qualname__] if cls.__module__ in ("builtins", "__main__") else []
    names.append(f"{cls.__module__}.{cls.__qualname__}")
    for name in names:  # the last exception of the formatted chain is the one raised
        at = text.rfind("\n" + name + ": ")
        if at >= 0:
            return text[at + len(name) + 3 :].rstrip("\n")
    return text


class _ChildWatch:
    """Wraps torch's ``SIGCHLD`` handler: its error only escapes while ``waiting``."""

    def __init__(self) -> None:
        self.died: RuntimeError | None = None
        self.waiting = False
        self.prev: Any = None
        self.installed = False

    def handler(self, signum, frame) -> None:
        try:
            if callable(self.prev):
                self.prev(signum, frame)
        except RuntimeError as e:
            if not _is_worker_death(e):
                raise
            self.died = self.died or e
            if self.waiting:
                raise

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # torch installs no handler outside the main thread either; it polls
        self.prev = signal.getsignal(signal.SIGCHLD)
        signal.signal(signal.SIGCHLD, self.handler)
        self.installed = True

    def uninstall(self) -> None:
        if self.installed and signal.getsignal(signal.SIGCHLD) == self.handler:
            signal.signal(signal.SIGCHLD, self.prev if self.prev is not None else signal.SIG_DFL)
        self.installed = False


def _how(code: int) -> str:
    if code >= 0:
        return f"exit code {code}"
    try:
        return f"killed by signal {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


def _stop(it: Any, hung: bool = False) -> None:
    """Stop the iterator's workers now, before the error is reported: the exception's
    traceback keeps the iterator (and so its idle workers) alive as long as it lives.
    ``hung``: terminate live workers first (torch's shutdown would wait 5 s for each)."""
    if hung:
        for w in list(getattr(it, "_workers", None) or []):  # torch's processes (private)
            try:
                if w.is_alive():
                    w.terminate()
            except (ValueError, OSError):
                continue
    shutdown = getattr(it, "_shutdown_workers", None)  # what the iterator's __del__ calls
    if shutdown is not None:
        shutdown()


def _dead_workers(it: Any, wait: float) -> list[str]:
    """``"pid N (exit code C)"`` for the iterator's workers that have died, waiting up to
    ``wait`` seconds for one to be seen dead."""
    workers = list(getattr(it, "_workers", None) or [])  # torch's worker processes (private)
    deadline = time.monotonic() + wait
    while True:
        dead = []
        for w in workers:
            try:
                alive, code = w.is_alive(), w.exitcode
            except (ValueError, OSError):  # already closed
                continue
            if not alive and code not in (None, 0):
                dead.append(f"pid {w.pid}, {_how(code)}")
        if dead or time.monotonic() >= deadline:
            return dead
        time.sleep(0.02)


def iterate_batches(
    loader,
    *,
    epoch: int,
    start: int,
    n_batches: int,
    output_dir: str | Path,
    step: Any = None,
    timeout: float | None = None,
) -> Iterator:
    """Yield ``loader``'s batches; a worker's death, hang or input error is raised as a
    :class:`SeqkitError` (see the module docstring).

    Args:
        epoch: 0-based epoch (reported 1-based, as the trainer's progress bar does).
        start: batches of this epoch consumed before ``loader`` started (resume position).
        n_batches: batches in the epoch.
        output_dir: the run's folder, for the ``last.pt`` hint.
        step: a callable giving the current optimizer step, for the message.
        timeout: the loader's timeout in seconds (for the hang message).
    """
    if getattr(loader, "num_workers", 0) == 0:
        yield from loader  # in-process: errors are raised where they happen
        return
    watch = _ChildWatch()
    pos = start
    it = iter(loader)  # starts the workers and torch's SIGCHLD handler
    watch.install()
    try:
        while True:
            err: BaseException | None = None
            if watch.died is None:
                watch.waiting = True
                try:
                    batch = next(it)
                except StopIteration:
                    return
                except SeqkitError as e:  # bad input found in a worker: its own message
                    msg = original_message(e)
                    if msg == str(e):
                        raise
                    try:
                        clean = type(e)(msg)
                    except Exception:
                        clean = SeqkitError(msg)
                    _stop(it)
                    raise clean from None
                except Exception as e:
                    err = e
                finally:
                    watch.waiting = False
            if err is None and watch.died is None:
                pos += 1
                yield batch
                continue
            # ---- something went wrong while waiting for batch pos + 1
            timed_out = err is not None and "DataLoader timed out" in str(err)
            # a reset connection or a closed pipe comes just before the worker is seen dead
            dead = _dead_workers(it, 2.0 if isinstance(err, (OSError, EOFError)) else 0.0)
            if not (
                dead
                or watch.died is not None
                or (err is not None and (_is_worker_death(err) or timed_out))
            ):
                _stop(it)
                raise err  # not about the workers: a bug, keep its traceback
            what = ", ".join(dead) if dead else str(watch.died or err).strip()
            _stop(it, hung=timed_out and not dead)
            err = watch.died = None
            where = f"epoch {epoch + 1} at batch {pos + 1} of {n_batches}"
            if step is not None:
                where += f" (after optimizer step {step()})"
            last = Path(output_dir) / "last.pt"
            if last.exists():
                resume = (
                    f"the last checkpoint {last} is intact; re-running the same command resumes "
                    "from it"
                )
            else:
                resume = (
                    f"no checkpoint was written yet ({last}); re-running the same command starts "
                    "the run again"
                )
            debug = (
                "set train.num_workers=0 to load the data in this process and see the error there"
            )
            if timed_out and not dead:
                raise DataLoaderWorkerError(
                    f"no batch from the data-loader workers for {timeout:g} s in {where}: a worker hangs "
                    f"(train.loader_timeout sets this limit); {resume}; {debug}"
                ) from None
            raise DataLoaderWorkerError(
                f"a data-loader worker died ({what}); training stopped in {where}; the "
                f"out-of-memory killer is a common cause (see dmesg); {resume}; {debug}"
            ) from None
    finally:
        watch.uninstall()
