"""Every language-modelling recipe config runs end to end on a tiny slice:
data_prep (--src) -> train -> evaluate (with the cache where configured) -> predict.

The configs are used as shipped (dropouts, BPTT, cache, optimiser; the CPU configs' model
sizes); only the data paths, the output folder, the epoch count, the thread count and, for
the GPU configs, the device and the layer widths (3 x 1150 units would take 10 s per test on
a CPU) are overridden, so a broken recipe config fails here in seconds.
"""

from __future__ import annotations

import importlib
import io
import json
import random
import sys

import pytest

from seqkit.cli.main import main as seqkit_main

from .conftest import ROOT

CONFIGS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "recipes" / "lm").glob("*/config*.yaml"))
# the file names each data_prep script accepts in --src (see data_prep/ptb.py, wikitext2.py)
SRC_NAMES = {"ptb": "ptb.{}.txt", "wikitext2": "wiki.{}.tokens"}


def _tiny_text(n, seed):
    rng = random.Random(seed)
    words = "the a cat dog sees likes N <unk> of and".split()
    return "".join(
        " " + " ".join(rng.choices(words, k=rng.randint(3, 9))) + " \n" for _ in range(n)
    )


def test_every_lm_recipe_is_covered():
    assert len(CONFIGS) == 4
    assert {c.split("/")[2] for c in CONFIGS} == {"ptb", "wikitext2"}


@pytest.mark.parametrize("config", CONFIGS)
def test_lm_recipe_runs_on_a_tiny_slice(config, tmp_path, capsys, monkeypatch):
    corpus = config.split("/")[2]
    raw = tmp_path / "raw"
    raw.mkdir()
    for split, n, seed in (("train", 60, 1), ("valid", 12, 2)):
        (raw / SRC_NAMES[corpus].format(split)).write_text(_tiny_text(n, seed))
    prep = importlib.import_module(f"data_prep.{corpus}")
    assert prep.main(["--src", str(raw), "--out", str(tmp_path / "data")]) == 0
    stats = json.loads((tmp_path / "data" / "stats.json").read_text())
    assert stats["splits"]["train"]["lines"] == 60
    overrides = [
        f"data.train={tmp_path / 'data' / 'train.txt'}",
        f"data.dev={tmp_path / 'data' / 'valid.txt'}",
        f"train.output_dir={tmp_path / 'exp'}",
        "train.epochs=1",
        "train.num_threads=1",
        "train.device=cpu",
        "train.progress=false",
        "train.tensorboard=false",
    ]
    if "gpu" in config:
        overrides += ["model.emb_dim=32", "model.hidden_size=48"]
    capsys.readouterr()
    assert seqkit_main(["train", str(ROOT / config), "--fresh", *overrides]) == 0
    dev = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert dev["tokens"] > 50 and dev["ppl"] > 1.0 and dev["oov"] == 0
    assert ("ppl_cache" in dev) == ("gpu" in config)  # the GPU configs turn the cache on
    assert (tmp_path / "exp" / "best.pt").is_file()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"the cat sees a dog\n")))
    assert seqkit_main(["predict", str(ROOT / config), *overrides]) == 0
    ppl, shown, nxt = capsys.readouterr().out.rstrip("\n").split("\t")
    assert float(ppl) > 1.0 and shown == "the cat sees a dog" and len(nxt.split()) == 5
