"""The language_model task: BPTT batching, carried state, stream evaluation, resume, CLI.

Tiny corpora are generated here; nothing reads ../shared.
"""

from __future__ import annotations

import json
import math
import random

import pytest
import torch
import torch.nn.functional as F
import yaml

from seqkit.cli.main import main as seqkit_main
from seqkit.config import load_config
from seqkit.models.language_model import StatefulLM
from seqkit.nn.lm import RNNLM, cache_pointer_log_probs
from seqkit.tasks.base import load_for_inference
from seqkit.tasks.lm import EOS, BPTTWindows, LanguageModelTask, batchify, stream_ids
from seqkit.train.checkpoint import load_checkpoint
from seqkit.train.trainer import Trainer


def run_seqkit(*args, input=None, capsys=None, monkeypatch=None):
    """Run the CLI in-process (no interpreter start-up); returns (stdout, stderr)."""
    import io
    import sys

    if input is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(input.encode())))
    capsys.readouterr()
    assert seqkit_main(list(args)) == 0
    return capsys.readouterr()


_NOUNS = ["cat", "dog", "bird", "fish"]
_VERBS = ["sees", "likes", "chases"]


def write_corpus(path, n_lines, seed=0, blank_every=0):
    rng = random.Random(seed)
    lines = []
    for i in range(n_lines):
        if blank_every and i % blank_every == blank_every - 1:
            lines.append("")
            continue
        a, b = rng.choice(_NOUNS), rng.choice(_NOUNS)
        lines.append(f"the {a} {rng.choice(_VERBS)} the {b}")
    path.write_text("".join(ln + "\n" for ln in lines))
    return path


def tiny_lm_config(tmp_path, data=None, model=None, **train):
    write_corpus(tmp_path / "train.txt", 120, seed=1, blank_every=10)
    write_corpus(tmp_path / "valid.txt", 25, seed=2)
    cfg = {
        "task": "language_model",
        "data": {
            "train": str(tmp_path / "train.txt"),
            "dev": str(tmp_path / "valid.txt"),
            "batch_size": 4,
            "bptt": 7,
            "eval_batch_size": 3,
            "eval_bptt": 5,
            **(data or {}),
        },
        "model": {
            "emb_dim": 12,
            "hidden_size": 16,
            "num_layers": 2,
            "dropout_input": 0.2,
            "dropout_hidden": 0.1,
            "dropout_output": 0.2,
            "dropout_embedding": 0.1,
            "dropout_weight": 0.2,
            **(model or {}),
        },
        "train": {
            "output_dir": str(tmp_path / "exp"),
            "epochs": 2,
            "lr": 0.01,
            "checkpoint_every": 1,
            "log_every": 5,
            "progress": False,
            "tensorboard": False,
            "num_threads": 1,
            "early_stopping": {"metric": "ppl", "mode": "min"},
            **train,
        },
    }
    path = tmp_path / "lm.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


# ----------------------------------------------------------------------------- batching


def test_batchify_columns_are_contiguous_and_targets_shifted():
    ids = torch.arange(23)
    x, y, dropped = batchify(ids, 4)  # 22 (input, target) pairs -> 4 x 5, 2 left over
    assert x.shape == y.shape == (4, 5) and dropped == 2
    assert x[1].tolist() == [5, 6, 7, 8, 9] and y[1].tolist() == [6, 7, 8, 9, 10]
    assert torch.equal(y, x + 1)


def test_bptt_windows_tile_in_order_and_resume():
    fixed = BPTTWindows(100, 35)
    assert fixed.windows(0) == [(0, 35), (35, 35), (70, 30)]
    var = BPTTWindows(1000, 20, variable=True, seed=3)
    for epoch in range(3):
        w = var.windows(epoch)
        assert w[0][0] == 0 and all(a[0] + a[1] == b[0] for a, b in zip(w, w[1:]))
        assert w[-1][0] + w[-1][1] == 1000 and all(n >= 1 for _, n in w)
        assert var.windows(epoch) == w  # deterministic for (seed, epoch)
    assert var.windows(0) != var.windows(1)
    var.set_epoch(2)
    full = list(var)
    var.set_start(3)
    assert list(var) == full[3:] and len(var) == len(full)


def test_stream_adds_eos_per_line_counts_oov(tmp_path):
    path = write_corpus(tmp_path / "t.txt", 10, blank_every=5)
    task = LanguageModelTask(load_config(tiny_lm_config(tmp_path)))
    task.build_state()
    lines = [["the", "cat"], [], ["zebra", "<unk>"]]
    ids, oov = stream_ids(lines, task.vocab)
    eos, unk = task.vocab.index(EOS), task.vocab.unk_id
    assert ids.tolist() == [
        task.vocab.index("the"),
        task.vocab.index("cat"),
        eos,
        eos,
        unk,
        unk,
        eos,
    ]
    assert oov == 1  # a literal <unk> in the text is not an OOV word
    assert path.read_text().count("\n") == 10


# ----------------------------------------------------------------------------- the carried state


def test_carried_state_equals_one_long_sequence():
    torch.manual_seed(0)
    lm = RNNLM(20, 8, 10, 2).eval()
    model = StatefulLM(lm).eval()
    x = torch.randint(0, 20, (3, 12))
    y = torch.randint(0, 20, (3, 12))
    total = 0.0
    for s, n in [(0, 5), (5, 4), (9, 3)]:
        out = model({"input": x[:, s : s + n], "target": y[:, s : s + n], "reset": s == 0})
        total += out["nll"].item() * out["n"]
    logits, _, _ = lm(x)
    ref = F.cross_entropy(logits.reshape(-1, 20), y.reshape(-1), reduction="sum").item()
    assert math.isclose(total, ref, rel_tol=1e-5)
    # reset=True starts from zeros again
    a = model({"input": x[:, :5], "target": y[:, :5], "reset": True})["nll"]
    b = F.cross_entropy(lm(x[:, :5])[0].reshape(-1, 20), y[:, :5].reshape(-1))
    assert torch.allclose(a, b)


def test_carried_state_is_detached_and_saved():
    torch.manual_seed(0)
    model = StatefulLM(RNNLM(20, 8, 10, 2))
    x = torch.randint(0, 20, (3, 6))
    model({"input": x, "target": x, "reset": True})["loss"].backward()
    state = model.carried_state(3)
    assert state is not None and all(not v.requires_grad for v in state.values())
    sd = model.state_dict()
    assert sd["carry_h0"].shape == (3, 10) and sd["carry_c1"].shape == (3, 8)
    fresh = StatefulLM(RNNLM(20, 8, 10, 2))
    fresh.load_state_dict(sd)  # the shape of the carry comes from the checkpoint
    assert torch.equal(fresh.carry_h1, model.carry_h1)


# ----------------------------------------------------------------------------- evaluation


def test_stream_perplexity_matches_brute_force(tmp_path):
    """ppl over the whole dev stream: every token but the first predicted exactly once."""
    cfg = load_config(tiny_lm_config(tmp_path, model={"num_layers": 1}))
    task = LanguageModelTask(cfg)
    task.build_state()
    torch.manual_seed(0)
    model = task.build_model().eval()
    lm = model.lm
    ids, _ = stream_ids(task._lines(cfg.data.dev, "data.dev"), task.vocab)
    n = ids.numel() - 1
    # B = 1: one pass over the whole text
    cfg.data.eval_batch_size = 1
    with torch.no_grad():
        m1 = task.score(model, cfg.data.dev)
        lp = F.log_softmax(lm(ids[:-1].unsqueeze(0))[0][0], -1)
        ref1 = -lp.gather(1, ids[1:, None]).sum().item() / n
    assert m1["tokens"] == n and math.isclose(m1["loss"], ref1, rel_tol=1e-5)
    # B = 3 columns (each from a zero state), the leftover pairs continuing the last column
    cfg.data.eval_batch_size = 3
    length = n // 3
    assert n % 3  # the remainder path is exercised
    with torch.no_grad():
        m3 = task.score(model, cfg.data.dev)
        ref3 = 0.0
        for j in range(3):
            stop = (j + 1) * length + (n - 3 * length if j == 2 else 0)
            seg = ids[j * length : stop + 1]
            lp = F.log_softmax(lm(seg[:-1].unsqueeze(0))[0][0], -1)
            ref3 -= lp.gather(1, seg[1:, None]).sum().item()
    assert m3["tokens"] == n and math.isclose(m3["loss"], ref3 / n, rel_tol=1e-5)


def test_cache_evaluation(tmp_path):
    cfg = load_config(
        tiny_lm_config(
            tmp_path,
            data={"cache_size": 20, "cache_theta": 0.5, "cache_lambda": 0.3, "eval_batch_size": 1},
        )
    )
    task = LanguageModelTask(cfg)
    task.build_state()
    torch.manual_seed(0)
    model = task.build_model().eval()
    with torch.no_grad():
        m = task.score(model, cfg.data.dev, cache=True)
        ids, _ = stream_ids(task._lines(cfg.data.dev, "data.dev"), task.vocab)
        logits, _, hid = model.lm(ids[:-1].unsqueeze(0))
        lp = F.log_softmax(logits[0], -1)
        mixed = cache_pointer_log_probs(lp, hid[0], ids[1:], 20, 0.5, 0.3)
        ref = -mixed.gather(1, ids[1:, None]).mean().item()
    assert math.isclose(m["loss_cache"], ref, rel_tol=1e-5) and m["ppl_cache"] != m["ppl"]
    cfg.data.cache_lambda = 0.0
    with torch.no_grad():
        m0 = task.score(model, cfg.data.dev, cache=True)
    assert math.isclose(m0["ppl_cache"], m0["ppl"], rel_tol=1e-6)


# ----------------------------------------------------------------------------- training


class _Crash(torch.nn.Module):
    """Wraps a model; raises KeyboardInterrupt on forward call number ``at``."""

    def __init__(self, model, at):
        super().__init__()
        self.inner, self.at, self.calls = model, at, 0

    def forward(self, batch):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return self.inner(batch)


def _trainer(cfg_path, out, crash_at=None):
    cfg = load_config(cfg_path, [f"train.output_dir={out}"])
    task = LanguageModelTask(cfg)
    last = out / "last.pt"
    if last.exists():
        task.load_state_dict(load_checkpoint(last)["task"])
    else:
        task.build_state()
    torch.manual_seed(cfg.train.seed)
    data, lengths, collate = task.training_data()
    model = task.build_model()
    trainer = Trainer(
        model,
        cfg.train,
        data,
        lengths,
        collate,
        evaluate=task.evaluate,
        checkpoint_extra={"task": task.state_dict()},
        batch_sampler=task.train_batch_sampler(),
        log=lambda s: None,
    )
    if crash_at:
        trainer.wrapped = _Crash(model, crash_at)
    return trainer


def test_resume_mid_epoch_is_bit_identical(tmp_path):
    cfg = tiny_lm_config(tmp_path, data={"variable_bptt": True, "bptt": 14})
    ref = _trainer(cfg, tmp_path / "ref")
    ref.fit()
    first, second = (len(ref.sampler.windows(e)) for e in (0, 1))
    assert first > 8 and first != second  # variable BPTT: each epoch has its own windows
    with pytest.raises(KeyboardInterrupt):
        _trainer(cfg, tmp_path / "crash", crash_at=first + 5).fit()  # epoch 2, window 5
    saved = load_checkpoint(tmp_path / "crash" / "last.pt")
    assert saved["trainer"]["epoch"] == 1 and saved["trainer"]["batch_in_epoch"] == 4
    assert saved["model"]["carry_h0"].abs().sum() > 0  # a carried state was saved mid-epoch
    resumed = _trainer(cfg, tmp_path / "crash")
    resumed.fit()
    a, b = ref.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.state["step"] == ref.state["step"] == first + second


def test_tiny_lm_overfits_a_deterministic_text(tmp_path, capsys):
    """Three sentences in a fixed cycle: with the carried state every token is predictable."""
    cycle = ["the cat sees the dog", "a bird likes fish", "the dog chases the cat too"]
    lines = [cycle[i % 3] for i in range(150)]
    cfg = tiny_lm_config(
        tmp_path,
        model={
            "dropout_input": 0.0,
            "dropout_hidden": 0.0,
            "dropout_output": 0.0,
            "dropout_embedding": 0.0,
            "dropout_weight": 0.0,
            "hidden_size": 32,
            "emb_dim": 16,
        },
        data={"batch_size": 8, "bptt": 12},
        epochs=15,
        lr=0.03,
        checkpoint_every=1000,
    )
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")  # replace the random corpus
    (tmp_path / "valid.txt").write_text("\n".join(lines[:30]) + "\n")
    out, _ = run_seqkit("train", str(cfg), "--fresh", capsys=capsys)
    dev = json.loads(out.strip().splitlines()[-1])
    # unigram perplexity of this text is ~9; a memorising model approaches 1
    assert dev["ppl"] < 1.3, dev


def test_cli_train_evaluate_predict_round_trip(tmp_path, capsys, monkeypatch):
    cfg = tiny_lm_config(tmp_path, data={"cache_size": 10}, epochs=1, max_minutes=5.0)
    out, _ = run_seqkit("train", str(cfg), "--fresh", capsys=capsys)
    dev = json.loads(out.strip().splitlines()[-1])
    assert dev["tokens"] > 100 and dev["ppl"] > 1 and "ppl_cache" in dev
    other = write_corpus(tmp_path / "other.txt", 7, seed=9)
    ev = json.loads(run_seqkit("evaluate", str(cfg), "--split", str(other), capsys=capsys)[0])
    assert ev["tokens"] == 7 * 6 - 1 and "ppl_cache" in ev
    stdout, stderr = run_seqkit(
        "predict",
        str(cfg),
        input="the cat sees the dog\nthe zebra\n",
        capsys=capsys,
        monkeypatch=monkeypatch,
    )
    out = stdout.rstrip("\n").split("\n")
    assert len(out) == 2
    ppl, shown, nxt = out[0].split("\t")
    assert float(ppl) > 1 and shown == "the cat sees the dog" and len(nxt.split()) == 5
    assert out[1].split("\t")[1] == "the zebra(<unk>)" and "outside the vocabulary" in stderr
    # the printed ppl is the model's: recompute it from the checkpoint
    task, model = load_for_inference(load_config(cfg))
    with torch.no_grad():
        (line,) = task.predict(model, ["the cat sees the dog"])
    assert line == out[0]


def test_max_minutes_stops_with_evaluation_and_checkpoint(tmp_path, capsys):
    cfg = tiny_lm_config(tmp_path, epochs=1000, max_minutes=0.002)
    run_seqkit("train", str(cfg), "--fresh", capsys=capsys)
    last = load_checkpoint(tmp_path / "exp" / "last.pt")
    assert last["trainer"]["stop_reason"] == "max_minutes=0.002"
    assert last["trainer"]["train_seconds"] >= 0.12 and last["trainer"]["epoch"] < 1000
    assert (tmp_path / "exp" / "best.pt").is_file()
    records = [json.loads(r) for r in (tmp_path / "exp" / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["kind"] == "dev" and "ppl" in records[-1]


def test_tune_cache_script_agrees_with_the_full_mixture(tmp_path):
    """recipes/lm/tune_cache.py scores only the targets; it must equal the task's mixture."""
    import importlib.util

    from .conftest import ROOT

    spec = importlib.util.spec_from_file_location("tune_cache", ROOT / "recipes/lm/tune_cache.py")
    tune = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tune)
    cfg = load_config(tiny_lm_config(tmp_path, data={"eval_batch_size": 3}))
    task = LanguageModelTask(cfg)
    task.build_state()
    torch.manual_seed(0)
    model = task.build_model().eval()
    cols, n = tune.collect(task, model, cfg.data.dev)
    for window, theta, lam in [(5, 0.5, 0.2), (40, 1.0, 0.1)]:
        nll = 0.0
        for hid, tgt, lp in cols:
            pc, empty = tune.cache_target_prob(hid, tgt, window, theta, chunk=7)
            pm = lp.double().exp()
            nll -= torch.where(empty, pm, (1 - lam) * pm + lam * pc).log().sum().item()
        cfg.data.cache_size, cfg.data.cache_theta, cfg.data.cache_lambda = window, theta, lam
        with torch.no_grad():
            ref = task.score(model, cfg.data.dev, cache=True)
        assert ref["tokens"] == n and math.isclose(nll / n, ref["loss_cache"], rel_tol=1e-5)


def test_moving_average_of_weights_with_the_carried_state(tmp_path):
    """``train.ema_decay`` on the language model: the carried state's buffers change shape
    (empty, then (B, H)), which the average must follow rather than fail on (it did)."""
    cfg = tiny_lm_config(tmp_path, ema_decay=0.9, ema_start=3)
    t = _trainer(cfg, tmp_path / "ema")
    t.fit()
    assert int(t.ema.n_averaged) == t.state["step"] - 3 > 0
    assert t.ema.module.carry_h0.shape == t.model.carry_h0.shape == (4, 16)
    # the averaged weights differ from the last ones, and they are what dev evaluation saw
    assert not torch.equal(t.ema.module.lm.decoder.bias, t.model.lm.decoder.bias)
    assert t.eval_model is t.ema.module
