"""Shared fixtures: tiny data made on the fly (the suite never needs ../shared)."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_CITIES = ["boston", "denver", "new york", "san diego", "dallas", "atlanta"]
_DAYS = ["monday", "friday", "next tuesday"]


def _sentence(rng: random.Random):
    """One ATIS-style sentence: (tokens, BIO tags, intent)."""
    kind = rng.choice(["flight", "fare", "weather"])
    toks: list[str] = []
    tags: list[str] = []

    def add(words, slot=None):
        for i, w in enumerate(words.split()):
            toks.append(w)
            tags.append("O" if slot is None else ("B-" if i == 0 else "I-") + slot)

    if kind == "weather":
        add("what is the weather in")
        add(rng.choice(_CITIES), "city")
        add(rng.choice(_DAYS), "date")
        return toks, tags, "get_weather"
    add(rng.choice(["show me flights", "i want to fly"]) if kind == "flight" else "how much is a ticket")
    add("from")
    a, b = rng.sample(_CITIES, 2)
    add(a, "from_city")
    add("to")
    add(b, "to_city")
    if rng.random() < 0.5:
        add("on")
        add(rng.choice(_DAYS), "date")
    return toks, tags, "find_flight" if kind == "flight" else "airfare"


def write_tiny_slots(folder: Path, n_train: int = 60, n_dev: int = 20, seed: int = 0) -> Path:
    """Write ATIS-layout train/dev files into ``folder``; returns ``folder``."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("dev", n_dev)):
        rows = [_sentence(rng) for _ in range(n)]
        (folder / f"{split}.seq.in").write_text("".join(" ".join(t) + "\n" for t, _, _ in rows))
        (folder / f"{split}.seq.out").write_text("".join(" ".join(g) + "\n" for _, g, _ in rows))
        (folder / f"{split}.label").write_text("".join(i + "\n" for _, _, i in rows))
    return folder


def tiny_slot_config(tmp_path: Path, **train_over) -> Path:
    data = write_tiny_slots(tmp_path / "data")
    train = {"output_dir": str(tmp_path / "exp"), "epochs": 3, "max_tokens": 120, "lr": 0.01,
             "checkpoint_every": 2, "log_every": 2, "progress": False, "tensorboard": False,
             "num_threads": 1, "early_stopping": {"metric": "slot_f1", "mode": "max"}}
    train.update(train_over)
    import yaml

    cfg = {
        "task": "slot_filling",
        "data": {"train": str(data / "train"), "dev": str(data / "dev")},
        "model": {"emb_dim": 16, "hidden_size": 16, "char_dim": 8, "char_filters": 8},
        "train": train,
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def tiny_config(tmp_path):
    return tiny_slot_config(tmp_path)


def run_seqkit(*args: str, input: str | None = None, check: bool = True, **kw) -> subprocess.CompletedProcess:
    """Run the CLI in a subprocess, as a user would."""
    proc = subprocess.run([sys.executable, "-m", "seqkit", *args], input=input, capture_output=True,
                          text=True, cwd=kw.pop("cwd", ROOT), timeout=kw.pop("timeout", 300), **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"seqkit {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def spy_shapes(monkeypatch, module, name: str) -> list:
    """Wrap ``module.name`` so that each call records the shape of its first argument (a
    tensor); returns the list the shapes are appended to."""
    seen: list = []
    real = getattr(module, name)

    def spy(*args, **kwargs):
        seen.append(tuple(args[0].shape))
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)
    return seen
