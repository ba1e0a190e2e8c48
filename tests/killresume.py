"""Kill-and-resume harness shared by ``tests/test_kill_resume.py`` and ``benchmarks/kill_resume.py``.

Three tiny recipes (slot filling, translation, ASR) are trained once without interruption
(the reference) and once as a chain of processes, each killed with ``SIGKILL``, either by
the fault points of :mod:`seqkit.train.faults` (``SEQKIT_KILL_AT``: after an optimizer step,
between a checkpoint's write and its rename, inside a dev evaluation) or by the parent after
a random delay, then resumed by running the same command again.  :func:`compare` checks that
the chain ends with the reference's weights (``last.pt``, ``best.pt``, kept checkpoints),
the same log records and the same final dev metrics, bit for bit.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
POINTS = ("step", "ckpt_write", "eval")
#: dev metrics that measure speed, not results: they differ between any two runs
TIMING_KEYS = {"sec", "sentences_per_second", "rtf", "decode_seconds", "seconds", "threads", "output_dir",
               "utterances_per_second", "encode_seconds", "audio_seconds"}


# ---------------------------------------------------------------------------- tiny recipes


def slot_setup(folder: Path) -> tuple[Path, list[str]]:
    """Tiny ATIS-style slot filling + intent; 4 epochs, last.pt every 2 steps."""
    from tests.conftest import tiny_slot_config

    cfg = tiny_slot_config(folder, epochs=4, checkpoint_every=2, keep_checkpoints=2)
    return cfg, []


def translation_setup(folder: Path) -> tuple[Path, list[str]]:
    """The Multi30k recipe config on a 120-pair toy dictionary corpus, shrunk; 4 epochs (the
    seeded kills can use up 3: two of them come inside a dev evaluation)."""
    from tests.test_translation import toy_corpus, write_split

    write_split(folder / "data", "train", toy_corpus(120, 0))
    write_split(folder / "data", "val", toy_corpus(12, 1))
    cfg = ROOT / "recipes" / "translation" / "multi30k" / "config.yaml"
    return cfg, [
        f"data.train={folder / 'data' / 'train'}", f"data.dev={folder / 'data' / 'val'}",
        "data.sp_vocab_size=40", "model.emb_dim=16", "model.enc_hidden=16", "model.dec_hidden=16",
        "train.epochs=4", "train.max_tokens=120", "train.warmup_steps=5", "train.max_minutes=null",
        "train.checkpoint_every=3", "train.log_every=2", "train.keep_checkpoints=2", "decode.beam_size=2",
    ]


def asr_setup(folder: Path) -> tuple[Path, list[str]]:
    """A joint CTC/attention model on the 6 shipped AN4 files; 3 epochs, last.pt every step."""
    from data_prep import an4

    data = folder / "an4"
    an4.prepare(data, ROOT / "tests" / "data" / "an4_tiny", dev_speakers=1)
    cfg = {
        "task": "asr",
        "data": {"train": str(data / "train.jsonl"), "dev": str(data / "dev.jsonl"), "n_mels": 40,
                 "cache_dir": str(folder / "cache"), "allow_outside_paths": True, "speed_perturb": [0.9, 1.0, 1.1]},
        "model": {"front": "stack", "stack": 3, "encoder": "pyramidal", "enc_layers": 2, "enc_hidden": 24,
                  "ctc_weight": 0.5, "emb_dim": 16, "dec_hidden": 24, "dropout": 0.1, "specaugment": True},
        "decode": {"method": "joint", "beam_size": 2},
        "train": {"epochs": 3, "max_tokens": 400, "lr": 0.003, "checkpoint_every": 1, "log_every": 1,
                  "keep_checkpoints": 2},
    }
    path = folder / "asr.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, []


SETUPS = {"slot_filling": slot_setup, "translation": translation_setup, "asr": asr_setup}


# ---------------------------------------------------------------------------- running


@dataclass
class Run:
    """One process of a chain: how it was meant to end and how it did."""

    kill: str  # "step:2", "after 3.1 s", or "" (run to the end)
    returncode: int
    seconds: float
    resumed_from: str = ""  # the "resuming from ..." line, if any
    removed_temp: bool = False  # it cleaned up a half-written checkpoint of its predecessor
    already_finished: bool = False  # it found the run finished and did nothing
    stdout: str = ""
    stderr: str = field(default="", repr=False)


def command(cfg: Path, overrides: list[str], out: Path) -> list[str]:
    return [sys.executable, "-m", "seqkit", "train", str(cfg), *overrides, f"train.output_dir={out}",
            "train.num_threads=1", "train.progress=false", "train.tensorboard=false"]


def run_once(cmd: list[str], kill_at: str = "", kill_after: float | None = None, timeout: float = 600) -> Run:
    """Run ``cmd``; with ``kill_at`` under ``SEQKIT_KILL_AT``, with ``kill_after`` SIGKILL it from here."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONHASHSEED="0")
    env.pop("SEQKIT_KILL_AT", None)
    if kill_at:
        env["SEQKIT_KILL_AT"] = kill_at
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=kill_after if kill_after is not None else timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate()
    resumed = next((ln for ln in err.splitlines() if ln.startswith("resuming from")), "")
    return Run(kill_at or (f"after {kill_after:.1f} s" if kill_after is not None else ""), proc.returncode,
               round(time.time() - t0, 2), resumed, "unfinished checkpoint write" in err,
               "nothing to do" in err, out, err)


def random_kills(n: int, rng: random.Random) -> list[str]:
    """``n`` fault points (each kind at least once when n >= 3), each at an early visit."""
    kinds = list(POINTS) + [rng.choice(POINTS) for _ in range(max(0, n - len(POINTS)))]
    rng.shuffle(kinds)
    visits = {"step": (1, 4), "ckpt_write": (1, 3), "eval": (1, 2)}
    return [f"{k}:{rng.randint(*visits[k])}" for k in kinds[:n]]


def chain(cmd: list[str], kills: list[str], delays: list[float] = ()) -> list[Run]:
    """Run ``cmd`` killed at each of ``kills`` (fault points) and after each of ``delays``
    (seconds; from outside), in that order, then once more to the end."""
    runs = [run_once(cmd, kill_at=k) for k in kills]
    runs += [run_once(cmd, kill_after=d) for d in delays]
    runs.append(run_once(cmd))
    return runs


# ---------------------------------------------------------------------------- comparing


def _records(out: Path) -> list[dict]:
    recs = []
    for line in (out / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        recs.append({k: v for k, v in rec.items() if k not in TIMING_KEYS})
    return recs


def final_metrics(run: Run) -> dict:
    return {k: v for k, v in json.loads(run.stdout.strip().splitlines()[-1]).items() if k not in TIMING_KEYS}


def compare(ref_dir: Path, ref: Run, run_dir: Path, last: Run) -> list[str]:
    """Differences between the reference run and the resumed chain (empty: identical)."""
    import torch

    from seqkit.train.checkpoint import load_checkpoint

    diffs = []
    names = sorted(p.name for p in ref_dir.glob("*.pt"))
    if names != sorted(p.name for p in run_dir.glob("*.pt")):
        diffs.append(f"checkpoint files differ: {names} vs {sorted(p.name for p in run_dir.glob('*.pt'))}")
    for name in names:
        if not (run_dir / name).exists():
            continue
        a, b = load_checkpoint(ref_dir / name), load_checkpoint(run_dir / name)
        bad = [k for k in a["model"] if not torch.equal(a["model"][k], b["model"][k])]
        if bad:
            diffs.append(f"{name}: {len(bad)} tensors differ, e.g. {bad[0]}")
        ta = {k: v for k, v in a["trainer"].items() if k != "train_seconds"}
        tb = {k: v for k, v in b["trainer"].items() if k != "train_seconds"}
        if ta != tb:
            diffs.append(f"{name}: trainer state differs: {ta} vs {tb}")
    if _records(ref_dir) != _records(run_dir):
        diffs.append("metrics.jsonl records differ")
    if final_metrics(ref) != final_metrics(last):
        diffs.append(f"final dev metrics differ: {final_metrics(ref)} vs {final_metrics(last)}")
    leftovers = [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    if leftovers:
        diffs.append(f"temporary files left: {leftovers}")
    return diffs
