"""Every sentiment recipe config runs end to end on a tiny slice: data_prep -> train -> predict
(and, for the attention model, the attention plot).

The configs are used as shipped (model sizes, tokenizer, optimiser); only the data paths, the
output folder and the number of epochs are overridden, so a broken recipe config fails here in
seconds.  Runs in-process through ``seqkit.cli.main.main`` to keep the file fast.
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from seqkit.cli.main import main as seqkit_main

from .conftest import ROOT
from .test_classification import prep, write_glue

RECIPE = ROOT / "recipes" / "sentiment" / "sst2"
CONFIGS = sorted(p.name for p in RECIPE.glob("config*.yaml"))


@pytest.mark.parametrize("config", CONFIGS)
def test_sentiment_recipe_runs_on_a_tiny_slice(config, tmp_path, capsys, monkeypatch):
    assert {"config.yaml", "config_cnn.yaml"} <= set(CONFIGS)
    raw = write_glue(tmp_path / "raw", n_train=60, n_dev=12)
    assert prep.main(["--src", str(raw), "--out", str(tmp_path / "data")]) == 0
    overrides = [
        f"data.train={tmp_path / 'data' / 'train.tsv'}",
        f"data.dev={tmp_path / 'data' / 'dev.tsv'}",
        f"train.output_dir={tmp_path / 'exp'}",
        "train.epochs=1",
        "train.eval_every=null",
        "train.num_threads=1",
        "train.progress=false",
        "train.tensorboard=false",
    ]
    capsys.readouterr()
    assert seqkit_main(["train", str(RECIPE / config), "--fresh", *overrides]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["sentences"] == 12 and 0.0 <= metrics["accuracy"] <= 1.0
    assert (tmp_path / "exp" / "best.pt").is_file()
    monkeypatch.setattr("sys.stdin", _Stdin("a gorgeous , witty film .\n"))
    assert seqkit_main(["predict", str(RECIPE / config), *overrides]) == 0
    label, prob = capsys.readouterr().out.rstrip("\n").split("\t")
    assert label in ("positive", "negative") and 0.5 <= float(prob) <= 1.0
    if config == "config.yaml":  # the headline model has attention pooling: plot it
        spec = importlib.util.spec_from_file_location(
            "plot_attention", RECIPE / "plot_attention.py"
        )
        plot = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(plot)
        png = tmp_path / "att.png"
        argv = [str(RECIPE / config), *overrides, "--rows", "1", "2", "--text", "a fine film"]
        assert plot.main([*argv, "--out", str(png)]) == 0
        assert png.stat().st_size > 1000
        rows = capsys.readouterr().out.strip().splitlines()
        assert len(rows) == 3 and rows[0].endswith("a fine film")  # --text first, then rows


class _Stdin:
    """Stands in for ``sys.stdin`` (``seqkit predict`` reads ``sys.stdin.buffer``)."""

    def __init__(self, text: str):
        import io

        self.buffer = io.BytesIO(text.encode("utf-8"))
