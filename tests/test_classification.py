"""Text classification: the masked CNN and pooling, the two classifiers, the task end to end
(train -> evaluate -> predict from stdin), the SST-2 data preparation."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest
import torch
import yaml

from seqkit.config import load_config
from seqkit.data.batching import lengths_to_mask
from seqkit.models.classifier import CNNClassifier, RNNClassifier
from seqkit.nn import MaskedConvMaxPool, SequencePooling
from seqkit.nn.adversarial import adversarial_perturbation
from seqkit.tasks.base import load_for_inference, predict, train
from seqkit.tasks.classification import TextClassificationTask

from .conftest import ROOT, run_seqkit

sys.path.insert(0, str(ROOT))
from data_prep import sst2 as prep  # noqa: E402

POS = ["good", "great", "charming", "moving", "funny", "wonderful"]
NEG = ["bad", "dull", "boring", "awful", "tedious", "clumsy"]
FILL = ["the film", "this movie", "the plot", "the acting", "its story", "the cast"]


def tiny_sentiment(n: int, seed: int) -> list[tuple[str, str]]:
    """Sentences whose label is the polarity of their adjective (0 negative, 1 positive)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        pos = rng.random() < 0.5
        adj = rng.choice(POS if pos else NEG)
        text = f"{rng.choice(FILL)} is {'very ' * rng.randint(0, 2)}{adj} ."
        rows.append((text, "1" if pos else "0"))
    return rows


def write_glue(folder: Path, n_train: int = 80, n_dev: int = 20) -> Path:
    """A GLUE-format SST-2 directory (header, a space before the tab, 0/1 labels)."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", n_train, 0), ("dev", n_dev, 1)):
        rows = tiny_sentiment(n, seed)
        (folder / f"{split}.tsv").write_text(
            "sentence\tlabel\n" + "".join(f"{t} \t{lab}\n" for t, lab in rows)
        )
    return folder


def tiny_config(tmp_path: Path, **model) -> Path:
    data = tmp_path / "data"
    assert prep.main(["--src", str(write_glue(tmp_path / "raw")), "--out", str(data)]) == 0
    cfg = {
        "task": "text_classification",
        "data": {"train": str(data / "train.tsv"), "dev": str(data / "dev.tsv")},
        "model": {"emb_dim": 16, "hidden_size": 16, "num_filters": 8, **model},
        "train": {
            "output_dir": str(tmp_path / "exp"),
            "epochs": 8,
            "max_tokens": 200,
            "lr": 0.01,
            "progress": False,
            "tensorboard": False,
            "num_threads": 1,
            "early_stopping": {"metric": "accuracy", "mode": "max"},
        },
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


# ----------------------------------------------------------------------------- seqkit.nn


def _conv_reference(conv: MaskedConvMaxPool, x: torch.Tensor) -> torch.Tensor:
    """Brute force for one sequence x (T, D): every window of the zero-padded sequence."""
    feats = []
    for w, layer in zip(conv.widths, conv.convs):
        padded = torch.cat([x.new_zeros(w - 1, x.size(1)), x, x.new_zeros(w - 1, x.size(1))])
        outs = []
        for s in range(x.size(0) + w - 1):
            window = padded[s : s + w]  # (w, D)
            outs.append(torch.einsum("fdw,wd->f", layer.weight, window) + layer.bias)
        feats.append(torch.relu(torch.stack(outs)).amax(0))
    return torch.cat(feats)


def test_masked_conv_matches_brute_force_and_ignores_padding():
    torch.manual_seed(0)
    conv = MaskedConvMaxPool(6, widths=(3, 4, 5), num_filters=7).double()
    lengths = torch.tensor([9, 4, 1, 2])
    x = torch.randn(4, 9, 6, dtype=torch.float64)
    mask = lengths_to_mask(lengths, 9)
    out = conv(x, mask)
    assert out.shape == (4, 21)
    for b, n in enumerate(lengths.tolist()):
        alone = conv(x[b : b + 1, :n], torch.ones(1, n, dtype=torch.bool))[0]
        torch.testing.assert_close(out[b], alone)  # padded batch == each sequence alone
        torch.testing.assert_close(out[b], _conv_reference(conv, x[b, :n]))
    # padding must never win the max: huge values there change nothing
    poisoned = x.masked_fill(~mask.unsqueeze(-1), 1e6)
    torch.testing.assert_close(conv(poisoned, mask), out)
    assert torch.isfinite(out).all()


def test_masked_conv_gradcheck():
    torch.manual_seed(1)
    conv = MaskedConvMaxPool(3, widths=(2, 3), num_filters=2, activation="tanh").double()
    x = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    mask = lengths_to_mask(torch.tensor([5, 2]), 5)
    assert torch.autograd.gradcheck(lambda t: conv(t, mask), (x,))
    conv(x, mask).sum().backward()
    assert x.grad[1, 2:].abs().sum() == 0  # no gradient reaches padded positions


@pytest.mark.parametrize("mode", ["attention", "max", "mean"])
def test_pooling_ignores_padding(mode):
    torch.manual_seed(2)
    pool = SequencePooling(5, mode)
    h = torch.randn(3, 6, 5)
    lengths = torch.tensor([6, 3, 1])
    mask = lengths_to_mask(lengths, 6)
    pooled, w = pool(h.masked_fill(~mask.unsqueeze(-1), 1e4), mask)
    for b, n in enumerate(lengths.tolist()):
        alone, _ = pool(h[b : b + 1, :n], torch.ones(1, n, dtype=torch.bool))
        torch.testing.assert_close(pooled[b], alone[0])
    if mode == "attention":
        assert (w[~mask] == 0).all()
        torch.testing.assert_close(w.sum(1), torch.ones(3))


@pytest.mark.parametrize("arch", ["rnn", "cnn"])
def test_classifier_padded_batch_equals_each_sentence_alone(arch):
    torch.manual_seed(3)
    kw = dict(vocab_size=20, num_classes=3, emb_dim=8, pad_id=0, unk_id=1)
    model = (
        RNNClassifier(hidden_size=8, **kw) if arch == "rnn" else CNNClassifier(num_filters=4, **kw)
    ).eval()
    tokens = torch.tensor([[5, 6, 7, 8, 9], [4, 3, 0, 0, 0], [2, 0, 0, 0, 0]])
    lengths = torch.tensor([5, 2, 1])
    probs, attn = model.predict({"tokens": tokens, "lengths": lengths})
    for b, n in enumerate(lengths.tolist()):
        p, a = model.predict({"tokens": tokens[b : b + 1, :n], "lengths": lengths[b : b + 1]})
        torch.testing.assert_close(probs[b], p[0])
        if arch == "rnn":
            torch.testing.assert_close(attn[b, :n], a[0])
            assert (attn[b, n:] == 0).all()
    assert (attn is None) == (arch == "cnn")


@pytest.mark.parametrize("arch", ["rnn", "cnn"])
def test_classifier_overfits_a_handful_of_sentences(arch):
    torch.manual_seed(4)
    rows = tiny_sentiment(12, seed=5)
    vocab = {w: i + 2 for i, w in enumerate(sorted({w for t, _ in rows for w in t.split()}))}
    seqs = [[vocab[w] for w in t.split()] for t, _ in rows]
    width = max(map(len, seqs))
    tokens = torch.tensor([s + [0] * (width - len(s)) for s in seqs])
    batch = {
        "tokens": tokens,
        "lengths": torch.tensor([len(s) for s in seqs]),
        "labels": torch.tensor([int(lab) for _, lab in rows]),
    }
    kw = dict(
        vocab_size=len(vocab) + 2, num_classes=2, emb_dim=16, word_dropout=0.1, input_dropout=0.1
    )
    model = (
        RNNClassifier(hidden_size=16, **kw) if arch == "rnn" else CNNClassifier(num_filters=8, **kw)
    )
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(60):
        opt.zero_grad()
        model(batch)["loss"].backward()
        opt.step()
    probs, _ = model.eval().predict(batch)
    assert (probs.argmax(-1) == batch["labels"]).all()
    assert probs.max(-1).values.min() > 0.9


@pytest.mark.parametrize("relative", [True, False])
def test_adversarial_perturbation_size_direction_and_padding(relative):
    torch.manual_seed(6)
    x, grad = torch.randn(3, 5, 4), torch.randn(3, 5, 4)
    mask = lengths_to_mask(torch.tensor([5, 3, 1]), 5)
    r = adversarial_perturbation(grad, x, mask, eps=0.3, relative=relative)
    assert (r[~mask] == 0).all()
    m = mask.unsqueeze(-1)
    want = 0.3 * (x * m).flatten(1).norm(dim=1) if relative else torch.full((3,), 0.3)
    torch.testing.assert_close(r.flatten(1).norm(dim=1), want)
    cos = torch.nn.functional.cosine_similarity(r.flatten(1), (grad * m).flatten(1))
    torch.testing.assert_close(cos, torch.ones(3))


@pytest.mark.parametrize("arch", ["rnn", "cnn"])
def test_adversarial_loss_is_the_loss_at_the_perturbed_vectors(arch):
    """With dropout off, forward = clean loss + weight * loss at x + eps ||x|| g / ||g||, the
    perturbation raises the loss, and gradients reach the embeddings through both terms."""
    torch.manual_seed(7)
    cls = RNNClassifier if arch == "rnn" else CNNClassifier
    size = {"hidden_size": 8} if arch == "rnn" else {"num_filters": 4}
    kw = dict(vocab_size=20, num_classes=2, emb_dim=8, dropout=0.0, **size)
    model = cls(adversarial_eps=0.2, adversarial_weight=0.5, **kw).train()
    plain = cls(**kw).train()
    plain.load_state_dict(model.state_dict())
    batch = {
        "tokens": torch.tensor([[5, 6, 7, 8], [4, 3, 0, 0]]),
        "lengths": torch.tensor([4, 2]),
        "labels": torch.tensor([1, 0]),
    }
    x, mask = plain.token_vectors(batch)
    x = x.detach().requires_grad_(True)
    clean = plain._loss(plain.classify(x, mask, batch)[0], batch["labels"])
    (grad,) = torch.autograd.grad(clean, x)
    r = adversarial_perturbation(grad, x, mask, 0.2)
    adv = plain._loss(plain.classify(x + r, mask, batch)[0], batch["labels"])
    assert adv > clean
    loss = model(batch)["loss"]
    torch.testing.assert_close(loss, clean.detach() + 0.5 * adv.detach())
    loss.backward()
    assert model.embed.weight.grad[[3, 4, 5, 6, 7, 8]].abs().sum(-1).gt(0).all()
    with torch.no_grad():  # evaluation: the clean loss only
        torch.testing.assert_close(model.eval()(batch)["loss"], plain.eval()(batch)["loss"])


# ----------------------------------------------------------------------------- the task


def test_task_end_to_end_train_evaluate_predict(tmp_path):
    cfg_path = tiny_config(tmp_path)
    summary = train(load_config(cfg_path, ["train.progress=false"]))
    dev = summary["dev"]
    assert dev["sentences"] == 20 and dev["skipped"] == 0 and dev["unseen_labels"] == 0
    assert dev["accuracy"] >= 0.9  # the adjective decides the label; 8 epochs learn it
    assert set(dev) >= {"precision_positive", "recall_negative", "f1_positive", "macro_f1", "nll"}
    out = tmp_path / "exp"
    assert len((out / "dev.hyp.label").read_text().splitlines()) == 20
    metrics = json.loads((out / "dev_metrics.json").read_text())
    assert metrics["accuracy"] == dev["accuracy"]
    # predict round-trip through the CLI: raw text on stdin -> label<TAB>probability
    proc = run_seqkit(
        "predict", str(cfg_path), input="the plot is wonderful .\n\nthis movie is awful .\n"
    )
    lines = proc.stdout.split("\n")
    assert lines[1] == "" and len(lines) == 4  # an empty input line gives an empty output line
    (lab1, p1), (lab2, p2) = lines[0].split("\t"), lines[2].split("\t")
    assert (lab1, lab2) == ("positive", "negative")
    assert 0.5 <= float(p1) <= 1.0 and 0.5 <= float(p2) <= 1.0
    assert "1 empty input lines" in proc.stderr
    # attention weights of a sentence: one per token, summing to 1
    task, model = load_for_inference(load_config(cfg_path))
    (res,) = task.explain(model, ["the cast is very funny ."])
    assert res["tokens"] == "the cast is very funny .".split()
    assert len(res["attention"]) == 6 and abs(sum(res["attention"]) - 1) < 1e-5


def test_sentencepiece_and_char_features_travel_in_the_checkpoint(tmp_path):
    cfg_path = tiny_config(tmp_path, arch="cnn")
    over = ["data.tokenizer=sentencepiece", "data.sp_vocab_size=40", "train.epochs=2"]
    over += ["model.char_filters=4", "model.char_dim=4"]  # with character features too
    cfg = load_config(cfg_path, over)
    train(cfg)
    for f in (tmp_path / "exp").glob("spm.*"):
        f.unlink()  # prediction must not need the .model file on disk
    (line,) = predict(load_config(cfg_path, over), ["an unseen wordzzz is great ."])
    label, prob = line.split("\t")
    assert label in ("positive", "negative") and 0.5 <= float(prob) <= 1.0
    task = TextClassificationTask(cfg)
    task.load_state_dict(torch.load(tmp_path / "exp" / "best.pt", weights_only=True)["task"])
    assert task.tokenizer.kind == "sentencepiece" and len(task.tokenize("the film is dull .")) >= 3


def test_empty_rows_are_skipped_and_counted(tmp_path, capsys):
    cfg_path = tiny_config(tmp_path)
    with open(tmp_path / "data" / "train.tsv", "a") as f:
        f.write("\tpositive\nthe film is good .\tpositive\n")
    task = TextClassificationTask(load_config(cfg_path))
    task.build_state()
    items, lengths, collate = task.training_data()
    assert len(items) == 81
    assert "skipped 1 items (1 empty text or label)" in capsys.readouterr().err
    batch = collate(items[:3])
    assert batch["tokens"].shape[0] == 3 and batch["labels"].tolist() == [
        it["label"] for it in items[:3]
    ]


def test_bad_row_names_file_and_line(tmp_path):
    cfg_path = tiny_config(tmp_path)
    with open(tmp_path / "data" / "train.tsv", "a") as f:
        f.write("too\tmany\tcolumns\n")
    proc = run_seqkit("train", str(cfg_path), check=False)
    assert proc.returncode == 2
    assert f"{tmp_path / 'data' / 'train.tsv'}:82: expected 2 tab-separated columns" in proc.stderr


# ----------------------------------------------------------------------------- data_prep


def test_data_prep_counts_duplicates_and_conflicts(tmp_path, capsys):
    raw = write_glue(tmp_path / "raw", n_train=10, n_dev=4)
    with open(raw / "train.tsv", "a") as f:
        f.write("laughably \t0\nlaughably \t1\nthe film is good . \t1\n")
    assert prep.main(["--src", str(raw), "--out", str(tmp_path / "keep")]) == 0
    msg = capsys.readouterr().out
    assert "1 texts with conflicting labels ('laughably') kept" in msg
    stats = json.loads((tmp_path / "keep" / "stats.json").read_text())
    tr = stats["splits"]["train"]
    assert tr["rows"] == tr["rows_written"] == 13 and tr["conflicting_texts"] == 1
    assert tr["duplicate_rows"] == len([t for t, _ in tiny_sentiment(10, 0)]) + 3 - len(
        {t for t, _ in tiny_sentiment(10, 0)} | {"laughably", "the film is good ."}
    )
    lines = (tmp_path / "keep" / "train.tsv").read_text().splitlines()
    assert lines[0] == "sentence\tlabel" and lines[-1] == "the film is good .\tpositive"
    assert all(not ln.split("\t")[0].endswith(" ") for ln in lines)
    assert (
        prep.main(["--src", str(raw), "--out", str(tmp_path / "drop"), "--conflicts", "drop"]) == 0
    )
    assert "dropped: 2 rows" in capsys.readouterr().out
    assert len((tmp_path / "drop" / "train.tsv").read_text().splitlines()) == 1 + 11


def test_data_prep_bad_label_and_download_path(tmp_path, capsys):
    raw = write_glue(tmp_path / "raw", n_train=5, n_dev=2)
    with open(raw / "dev.tsv", "a") as f:
        f.write("a fine film \t7\n")
    assert prep.main(["--src", str(raw), "--out", str(tmp_path / "out")]) == 2
    assert f"{raw / 'dev.tsv'}:4: bad label '7'" in capsys.readouterr().err
    fake = {"train": [(" good  film ", 1), ("bad film", 0)], "dev": [("fine", 1)]}
    assert prep.main(["--out", str(tmp_path / "hf")], load_hf=fake.__getitem__) == 0
    assert (
        tmp_path / "hf" / "train.tsv"
    ).read_text() == "sentence\tlabel\ngood film\tpositive\nbad film\tnegative\n"
    assert "SST-2 from the Hugging Face hub" in capsys.readouterr().out
