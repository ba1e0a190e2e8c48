"""Checkpoints: atomic writes, weights_only loads, refusal of code-running pickles."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from seqkit.errors import SeqkitError
from seqkit.train.checkpoint import FORMAT, atomic_save, load_checkpoint, rng_state, set_rng_state


def test_round_trip(tmp_path):
    obj = {"format": FORMAT, "model": {"w": torch.arange(4.0)}, "task": {"tokens": ["a", "b"]}}
    atomic_save(obj, tmp_path / "c.pt")
    back = load_checkpoint(tmp_path / "c.pt")
    assert torch.equal(back["model"]["w"], torch.arange(4.0)) and back["task"]["tokens"] == ["a", "b"]


def test_crash_during_write_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_save({"format": FORMAT, "v": 1}, path)

    def broken_save(obj, f):
        f.write(b"partial bytes")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        atomic_save({"format": FORMAT, "v": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["v"] == 1
    assert sorted(os.listdir(tmp_path)) == ["last.pt"]


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_code_running_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = _Evil()
    evil.marker = marker
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"format": FORMAT, "payload": evil}, f, protocol=2)
    with pytest.raises(SeqkitError, match="refused to load"):
        load_checkpoint(path)
    assert not marker.exists()


def test_truncated_and_foreign_files(tmp_path):
    good = tmp_path / "good.pt"
    atomic_save({"format": FORMAT, "w": torch.randn(100)}, good)
    bad = tmp_path / "trunc.pt"
    bad.write_bytes(good.read_bytes()[:50])
    with pytest.raises(SeqkitError, match="trunc.pt: cannot read checkpoint"):
        load_checkpoint(bad)
    torch.save({"w": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(SeqkitError, match="not a seqkit checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(SeqkitError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_rng_state_survives_weights_only_round_trip(tmp_path):
    import random

    import numpy as np

    torch.manual_seed(3)
    random.seed(3)
    np.random.seed(3)
    atomic_save({"format": FORMAT, "rng": rng_state()}, tmp_path / "r.pt")
    expect = (torch.rand(3), random.random(), np.random.rand())
    set_rng_state(load_checkpoint(tmp_path / "r.pt")["rng"])
    got = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(expect[0], got[0]) and expect[1] == got[1] and expect[2] == got[2]
