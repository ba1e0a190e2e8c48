"""Config: typed dataclasses from YAML, overrides, errors that name the key and the file."""

from __future__ import annotations

import pytest

from seqkit.config import TrainConfig, apply_overrides, from_dict, load_config
from seqkit.errors import ConfigError

GOOD = """\
task: slot_filling
data:
  train: d/train
  dev: d/dev
model:
  hidden_size: 32
train:
  lr: 1e-3
  epochs: 2
  early_stopping: {metric: slot_f1, mode: max, patience: 3}
"""


def write(tmp_path, text, name="exp.yaml"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_load_typed_values_and_defaults(tmp_path):
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.task == "slot_filling"
    assert cfg.model.hidden_size == 32
    assert cfg.model.emb_dim == 100  # default kept
    assert cfg.train.lr == pytest.approx(1e-3)  # YAML reads "1e-3" as a string; coerced
    assert isinstance(cfg.train.lr, float)
    assert cfg.train.early_stopping.patience == 3
    assert cfg.train.clip_grad_norm == 5.0  # clipping on by default


def test_overrides_nested_and_typed(tmp_path):
    cfg = load_config(write(tmp_path, GOOD), ["train.lr=0.5", "model.crf=false", "train.early_stopping.patience=7"])
    assert cfg.train.lr == 0.5 and cfg.model.crf is False and cfg.train.early_stopping.patience == 7


def test_unknown_key_names_key_file_and_suggestion(tmp_path):
    p = write(tmp_path, GOOD.replace("  lr: 1e-3", "  lr_rate: 1e-3"))
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert str(p) in msg and "'train.lr_rate'" in msg and "did you mean 'train.lr'" in msg


def test_unknown_override_key_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'model.hiden_size'.*did you mean 'model.hidden_size'"):
        load_config(write(tmp_path, GOOD), ["model.hiden_size=3"])


def test_wrong_type_names_key(tmp_path):
    with pytest.raises(ConfigError, match=r"exp.yaml: key 'train.epochs': expected an integer, got 'two'"):
        load_config(write(tmp_path, GOOD.replace("epochs: 2", "epochs: two")))
    with pytest.raises(ConfigError, match=r"key 'train.optimizer': expected one of"):
        load_config(write(tmp_path, GOOD), ["train.optimizer=adagrad"])
    with pytest.raises(ConfigError, match=r"key 'model.crf': expected true/false"):
        load_config(write(tmp_path, GOOD), ["model.crf=1"])


def test_bad_top_level_and_task(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'trian'.*did you mean 'train'"):
        load_config(write(tmp_path, GOOD + "trian: {}\n"))
    with pytest.raises(ConfigError, match=r"unknown task 'slot_filing'"):
        load_config(write(tmp_path, GOOD.replace("task: slot_filling", "task: slot_filing")))
    with pytest.raises(ConfigError, match=r"missing required key 'task'"):
        load_config(write(tmp_path, "data: {}\n"))


def test_missing_empty_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match=r"nope.yaml: config file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match=r"config file is empty"):
        load_config(write(tmp_path, ""))
    with pytest.raises(ConfigError, match=r"exp.yaml:4: invalid YAML"):
        load_config(write(tmp_path, "task: x\ndata:\n  - a\n  b: [\n"))
    p = tmp_path / "bin.yaml"
    p.write_bytes(b"task: \xff\xfe\n")
    with pytest.raises(ConfigError, match=r"not UTF-8"):
        load_config(p)


def test_yaml_is_loaded_safely(tmp_path):
    # a python/object tag would construct arbitrary objects with an unsafe loader
    p = write(tmp_path, "task: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(p)


def test_from_dict_and_override_syntax():
    cfg = from_dict(TrainConfig, {"betas": [0.9, 0.98], "max_steps": None})
    assert cfg.betas == [0.9, 0.98] and cfg.max_steps is None
    with pytest.raises(ConfigError, match="must look like key.sub=value"):
        apply_overrides({}, ["train.lr"])
