"""Kill and resume (issue 9): slot filling, translation and ASR, each SIGKILLed 5 times at
seeded random fault points (after an optimizer step, between a checkpoint's write and its
rename, inside a dev evaluation), resumed each time; the end state equals an uninterrupted
run's bit for bit (CPU, deterministic settings, 1 thread).  ``benchmarks/kill_resume.py``
runs the same with more kills and kills at random times from outside."""

from __future__ import annotations

import random
import signal

import pytest

from .killresume import SETUPS, chain, command, compare, random_kills, run_once


@pytest.mark.parametrize("task", sorted(SETUPS))
def test_sigkill_at_five_random_points_then_resume_is_bit_identical(tmp_path, task):
    cfg, overrides = SETUPS[task](tmp_path)
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"
    ref = run_once(command(cfg, overrides, ref_dir))
    assert ref.returncode == 0, ref.stderr[-2000:]

    kills = random_kills(5, random.Random(f"{task}-0"))
    assert {k.split(":")[0] for k in kills} == {"step", "ckpt_write", "eval"}
    runs = chain(command(cfg, overrides, run_dir), kills)
    for r in runs[:-1]:
        assert r.returncode == -signal.SIGKILL, f"{r.kill}: the run ended before the kill ({r.stderr[-500:]})"
    last = runs[-1]
    assert last.returncode == 0, last.stderr[-2000:]
    assert sum(bool(r.resumed_from) for r in runs) >= 3  # most kills came after a checkpoint
    after_write_kill = [i + 1 for i, r in enumerate(runs[:-1]) if r.kill.startswith("ckpt_write")]
    assert all(runs[i].removed_temp for i in after_write_kill)  # the half-written file was cleaned up
    assert compare(ref_dir, ref, run_dir, last) == []
