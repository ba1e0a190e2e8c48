"""Every slot-filling recipe runs end to end on a tiny slice: data_prep -> train -> predict.

The recipe configs are used as shipped (model sizes, optimiser, CRF, pooling); only the data
paths, the output folder and the number of epochs are overridden, so a broken recipe config
(a mistyped key, an option the task lost) fails here in seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import ROOT, run_seqkit, write_tiny_slots

RECIPES = sorted(p.parent.name for p in (ROOT / "recipes" / "slot_filling").glob("*/config.yaml"))


@pytest.mark.parametrize("recipe", RECIPES)
def test_slot_recipe_runs_on_a_tiny_slice(recipe, tmp_path):
    assert {"atis", "snips", "toy"} <= set(RECIPES)
    raw = write_tiny_slots(tmp_path / "raw", n_train=40, n_dev=10)
    prep = ROOT / "data_prep" / ("snips.py" if recipe == "snips" else "atis.py")
    subprocess.run(
        [sys.executable, str(prep), "--src", str(raw), "--out", str(tmp_path / "data")],
        check=True, capture_output=True, text=True, timeout=120,
    )
    config = ROOT / "recipes" / "slot_filling" / recipe / "config.yaml"
    overrides = [
        f"data.train={tmp_path / 'data' / 'train'}",
        f"data.dev={tmp_path / 'data' / 'dev'}",
        f"train.output_dir={tmp_path / 'exp'}",
        "train.epochs=1",
        "train.num_threads=1",
        "train.progress=false",
        "train.tensorboard=false",
    ]
    proc = run_seqkit("train", str(config), "--fresh", *overrides)
    metrics = json.loads(proc.stdout.strip().splitlines()[-1])
    assert metrics["sentences"] == 10 and 0.0 <= metrics["slot_f1"] <= 1.0
    assert (tmp_path / "exp" / "best.pt").is_file()
    pred = run_seqkit("predict", str(config), *overrides, input="fly from boston to denver\n")
    intent, tags = pred.stdout.rstrip("\n").split("\t")
    assert intent and len(tags.split()) == 5
