"""Data-loader workers that die, hang or raise (train.num_workers > 0): a clear SeqkitError
between two batches, never a hang or a traceback; the run resumes from last.pt."""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import time
from pathlib import Path

import pytest
import torch

from seqkit.cli.main import main
from seqkit.errors import DataError, SeqkitError
from seqkit.train.loader import DataLoaderWorkerError, original_message
from tests.conftest import tiny_slot_config
from tests.test_trainer import make_data, make_trainer

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGCHLD"), reason="POSIX worker processes")


@pytest.fixture(autouse=True)
def no_hang():
    """Guard: a test that hangs fails after 60 s instead of blocking the suite."""

    def fail(signum, frame):
        raise TimeoutError("test hung for 60 s")

    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)
    for child in multiprocessing.active_children():  # no worker is left behind
        child.join(timeout=5)
        assert not child.is_alive(), f"worker {child.pid} still running"


class Faulty:
    """A list of examples whose item ``at`` makes the (worker) process that loads it die,
    hang or raise, once: the first time, while ``flag`` exists (it is removed then)."""

    def __init__(self, items, at: int, action: str, flag: Path, bad_file: Path | None = None):
        self.items, self.at, self.action, self.flag, self.bad_file = items, at, action, flag, bad_file
        flag.touch()

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        if i == self.at and self.flag.exists():
            self.flag.unlink()
            if self.action == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            elif self.action == "hang":
                time.sleep(120)
            elif self.action == "data_error":
                raise DataError("cannot decode audio (truncated header)", path=self.bad_file, line=7)
            elif self.action == "bug":
                raise ValueError("unexpected item layout 42")
        return self.items[i]


def faulty_trainer(tmp_path, name, action, batch=5, **over):
    """The toy trainer of test_trainer.py, one worker, with item 0 of epoch 1's
    ``batch``-th batch faulty."""
    t = make_trainer(tmp_path, name, num_workers=1, **over)
    t.sampler.set_epoch(0)
    t.sampler.set_start(0)
    at = list(t.sampler)[batch - 1][0]
    t.train_set = Faulty(make_data(), at, action, tmp_path / f"{name}.flag", tmp_path / "utt7.wav")
    return t


def weights(t):
    return {k: v.clone() for k, v in t.model.state_dict().items()}


def test_killed_worker_is_reported_and_the_run_resumes_exactly(tmp_path):
    ref = make_trainer(tmp_path, "ref")  # uninterrupted, in-process loading
    ref.fit()

    t = faulty_trainer(tmp_path, "run", "kill")
    start = time.monotonic()
    with pytest.raises(DataLoaderWorkerError) as err:
        t.fit()
    assert time.monotonic() - start < 30  # reported, not waited on for train.loader_timeout
    msg = str(err.value)
    assert re.search(r"a data-loader worker died \(pid \d+, killed by signal SIGKILL\); training "
                     r"stopped in epoch 1 at batch [1-5] of \d+ \(after optimizer step \d+\)", msg), msg
    last = tmp_path / "run" / "last.pt"
    assert f"the last checkpoint {last} is intact; re-running the same command resumes" in msg
    assert "train.num_workers=0" in msg and "Traceback" not in msg
    assert last.exists() and t.state["step"] >= 2

    resumed = make_trainer(tmp_path, "run", num_workers=1)  # a new process would build it anew
    resumed.fit()
    assert resumed.state["finished"] and resumed.state["step"] == ref.state["step"]
    a, b = weights(ref), weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_worker_killed_from_outside_during_a_step_is_reported_after_that_step(tmp_path):
    """torch's SIGCHLD handler would raise inside the model's forward; the error must come
    out between two batches, with the step that was running completed (and checkpointed)."""
    t = make_trainer(tmp_path, "ext", num_workers=1, checkpoint_every=1)
    forward = t.model.forward

    def forward_that_kills_the_worker(batch):
        if t.model.calls == 3:  # the 4th forward: optimizer step 4
            for child in multiprocessing.active_children():
                os.kill(child.pid, signal.SIGKILL)
            time.sleep(0.5)  # SIGCHLD arrives here, in the middle of the step
        return forward(batch)

    t.model.forward = forward_that_kills_the_worker
    with pytest.raises(DataLoaderWorkerError, match=r"batch 5 of \d+ \(after optimizer step 4\)"):
        t.fit()
    assert t.state["step"] == 4 and t.state["batch_in_epoch"] == 4
    assert torch.load(tmp_path / "ext" / "last.pt", weights_only=True)["trainer"]["step"] == 4


def test_worker_raising_a_seqkit_error_gives_its_own_message(tmp_path):
    t = faulty_trainer(tmp_path, "bad", "data_error", batch=2)
    with pytest.raises(DataError) as err:
        t.fit()
    # exactly what num_workers=0 would show: file, line, reason; no worker traceback
    assert str(err.value) == f"{tmp_path / 'utt7.wav'}:7: cannot decode audio (truncated header)"


def test_worker_bug_keeps_its_message_and_traceback(tmp_path):
    t = faulty_trainer(tmp_path, "bug", "bug", batch=2)
    with pytest.raises(ValueError, match="unexpected item layout 42") as err:
        t.fit()
    assert "in DataLoader worker process 0" in str(err.value)  # torch's worker traceback
    assert not isinstance(err.value, SeqkitError)


def test_hung_worker_is_reported_after_loader_timeout(tmp_path):
    t = faulty_trainer(tmp_path, "hang", "hang", batch=3, loader_timeout=1.5)
    start = time.monotonic()
    with pytest.raises(DataLoaderWorkerError, match=r"no batch from the data-loader workers for 1\.5 s "
                       r"in epoch 1 at batch [1-3] of \d+.*train\.loader_timeout"):
        t.fit()
    assert time.monotonic() - start < 20  # the hung worker is terminated, not joined for 5 s


def test_original_message_of_a_rebuilt_worker_error():
    text = ("Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent "
            "call last):\n  File \"x.py\", line 1, in f\n    raise DataError(...)\n"
            "seqkit.errors.DataError: a.wav:3: bad\nsecond line\n")
    assert original_message(DataError(text)) == "a.wav:3: bad\nsecond line"
    assert original_message(DataError("a.wav:3: bad")) == "a.wav:3: bad"


def test_cli_reports_a_dead_worker_on_one_line_and_resumes(tmp_path, monkeypatch, capsys):
    from seqkit.tasks.slot_filling import SlotFillingTask

    real = SlotFillingTask.training_data
    runs = []

    def training_data(self):  # the first run's worker dies on item 40
        items, lengths, coll = real(self)
        runs.append(1)
        if len(runs) == 1:
            items = Faulty(items, 40, "kill", tmp_path / "kill.flag")
        return items, lengths, coll

    monkeypatch.setattr(SlotFillingTask, "training_data", training_data)
    cfg = str(tiny_slot_config(tmp_path, num_workers=1, epochs=2))
    assert main(["train", cfg]) == 2
    err = capsys.readouterr().err
    assert "seqkit: error: a data-loader worker died (pid" in err and "Traceback" not in err
    last = tmp_path / "exp" / "last.pt"  # item 40 comes after the step-2 checkpoint
    assert f"{last} is intact; re-running the same command resumes from it" in err
    assert main(["train", cfg]) == 0
    err = capsys.readouterr().err
    assert f"resuming from {last}" in err and "Traceback" not in err
    assert torch.load(last, weights_only=True)["trainer"]["stop_reason"] == "epochs=2"
