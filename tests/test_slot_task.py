"""The slot-filling task: labels unseen in training, skips, predictions files."""

from __future__ import annotations

from seqkit.config import load_config
from seqkit.tasks.slot_filling import SlotFillingTask

from .conftest import tiny_slot_config


def test_dev_labels_unseen_in_training_are_counted_errors(tmp_path):
    cfg_path = tiny_slot_config(tmp_path)
    data = tmp_path / "data"
    with open(data / "dev.seq.in", "a") as f:
        f.write("fly klm from boston\n")
    with open(data / "dev.seq.out", "a") as f:
        f.write("O B-airline O B-from_city\n")
    with open(data / "dev.label", "a") as f:
        f.write("airline_query\n")
    task = SlotFillingTask(load_config(cfg_path))
    task.build_state()
    assert "B-airline" not in task.tags and "airline_query" not in task.intents
    model = task.build_model().eval()
    metrics = task.evaluate(model, out_prefix=tmp_path / "out" / "dev")
    assert metrics["unseen_tags"] == 1 and metrics["unseen_intents"] == 1
    assert metrics["sentences"] == 21
    hyp_tags = (tmp_path / "out" / "dev.hyp.seq.out").read_text().splitlines()
    hyp_intents = (tmp_path / "out" / "dev.hyp.label").read_text().splitlines()
    assert len(hyp_tags) == len(hyp_intents) == 21
    assert len(hyp_tags[-1].split()) == 4 and hyp_intents[-1] != "airline_query"
    # an untrained model may output anything known, but never a label it has not seen
    assert all(t in task.tags for line in hyp_tags for t in line.split())


def test_empty_training_lines_are_skipped_and_counted(tmp_path, capsys):
    cfg_path = tiny_slot_config(tmp_path)
    data = tmp_path / "data"
    for ext, extra in ((".seq.in", "\n"), (".seq.out", "\n"), (".label", "\n")):
        with open(data / f"train{ext}", "a") as f:
            f.write(extra)
        with open(data / f"train{ext}", "a") as f:
            f.write({".seq.in": "to denver\n", ".seq.out": "O B-to_city\n", ".label": "find_flight\n"}[ext])
    task = SlotFillingTask(load_config(cfg_path))
    task.build_state()
    items, lengths, _ = task.training_data()
    assert len(items) == 61  # 60 + the line after the empty one
    assert "skipped 1 items (1 empty line)" in capsys.readouterr().err
