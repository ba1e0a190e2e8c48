"""Trainer: exact resume after a crash, non-finite steps, early stopping, accumulation, schedules."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from seqkit.config import EarlyStoppingConfig, TrainConfig
from seqkit.data import pad_sequences
from seqkit.train.checkpoint import inference_state, load_checkpoint
from seqkit.train.trainer import Trainer, build_scheduler


class ToyLM(nn.Module):
    """Next-token GRU LM with dropout (so resume must restore the RNG too)."""

    def __init__(self, vocab=16, dim=12):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim, padding_idx=0)
        self.rnn = nn.GRU(dim, dim, batch_first=True)
        self.drop = nn.Dropout(0.3)
        self.out = nn.Linear(dim, vocab)
        self.calls = 0
        self.crash_at = None  # raise on this forward call (simulated kill)
        self.nan_batches: set[int] = set()

    def forward(self, batch):
        self.calls += 1
        if self.crash_at is not None and self.calls == self.crash_at:
            raise KeyboardInterrupt("simulated kill")
        x = batch["x"]
        h, _ = self.rnn(self.drop(self.emb(x[:, :-1])))
        logits = self.out(self.drop(h))
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), x[:, 1:].flatten(), ignore_index=0)
        if self.calls in self.nan_batches:
            loss = loss * float("nan")
        return {"loss": loss, "n": int((x[:, 1:] != 0).sum())}


def make_data(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    data = []
    for _ in range(n):
        length = int(torch.randint(3, 12, (1,), generator=g))
        data.append(torch.randint(1, 16, (length,), generator=g).tolist())
    return data


def collate(items):
    x, _ = pad_sequences(items, 0)
    return {"x": x}


def make_trainer(tmp_path, name, crash_at=None, nan_batches=(), **over):
    torch.manual_seed(0)
    model = ToyLM()
    model.crash_at = crash_at
    model.nan_batches = set(nan_batches)
    opts = dict(output_dir=str(tmp_path / name), epochs=3, max_tokens=60, lr=0.01, checkpoint_every=2,
                log_every=3, tensorboard=False, progress=False, seed=5)
    cfg = TrainConfig(**{**opts, **over})
    data = make_data()
    dev = collate(make_data(8, seed=1))

    def evaluate(m):
        return {"loss": float(m(dev)["loss"])}

    return Trainer(model, cfg, data, [len(d) for d in data], collate, evaluate, log=lambda s: None)


def records(path):
    out = []
    for line in (path / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        rec.pop("sec", None)  # wall time differs between runs
        out.append(rec)
    return out


@pytest.mark.parametrize("crash_at", [5, 13, 23])
def test_resume_after_crash_is_bit_identical(tmp_path, crash_at):
    ref = make_trainer(tmp_path, "ref")
    ref.fit()
    n_calls = ref.model.calls

    with pytest.raises(KeyboardInterrupt):
        make_trainer(tmp_path, "crash", crash_at=crash_at).fit()
    assert (tmp_path / "crash" / "last.pt").exists()
    resumed = make_trainer(tmp_path, "crash")  # a new process would build everything anew
    resumed.fit()

    a, b = ref.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert records(tmp_path / "ref") == records(tmp_path / "crash")
    assert ref.state["step"] == resumed.state["step"] and resumed.state["finished"]
    assert n_calls > crash_at  # the crash really happened mid-run
    last = load_checkpoint(tmp_path / "crash" / "last.pt")
    assert last["trainer"]["epoch"] == 3 and last["trainer"]["stop_reason"] == "epochs=3"


def test_resume_keeps_the_running_loss_sums_on_rank_0_only(tmp_path):
    """A checkpoint holds rank 0's running train-loss sums (saved between two log lines); under
    DDP the other ranks start from zero, or the next all-reduced log would count them twice."""
    from seqkit.train.distributed import DistInfo

    with pytest.raises(KeyboardInterrupt):  # checkpoint at step 4, log lines at 3 and 6
        make_trainer(tmp_path, "crash", crash_at=10).fit()
    saved = load_checkpoint(tmp_path / "crash" / "last.pt")["trainer"]
    assert saved["loss_n"] > 0
    for rank, want in ((0, saved["loss_n"]), (1, 0)):
        t = make_trainer(tmp_path, "crash")
        t.dist = DistInfo(rank=rank, world_size=2)
        t.resume(tmp_path / "crash" / "last.pt")
        assert t.state["loss_n"] == want and (t.state["loss_sum"] > 0) == (rank == 0)


def test_finished_run_is_not_trained_again(tmp_path):
    t = make_trainer(tmp_path, "r")
    t.fit()
    again = make_trainer(tmp_path, "r")
    again.fit()
    assert again.model.calls == 0 and again.state["step"] == t.state["step"]


def test_non_finite_steps_are_skipped_and_counted(tmp_path):
    t = make_trainer(tmp_path, "nan", nan_batches={2, 3, 7}, epochs=1)
    t.fit()
    assert t.state["skipped_steps"] == 3
    assert all(torch.isfinite(p).all() for p in t.model.parameters())


def test_persistent_non_finite_loss_stops_cleanly_with_checkpoint(tmp_path):
    t = make_trainer(tmp_path, "nan", nan_batches=range(1, 1000), max_bad_steps=4)
    t.fit()
    assert t.state["step"] == 4 and t.state["stop_reason"] == "4 non-finite steps in a row"
    assert load_checkpoint(tmp_path / "nan" / "last.pt")["trainer"]["finished"]


def test_early_stopping_and_best_checkpoint(tmp_path):
    t = make_trainer(tmp_path, "es", epochs=50, lr=0.0,
                     early_stopping=EarlyStoppingConfig(metric="loss", mode="min", patience=2))
    t.fit()
    # lr=0: the dev loss never improves after the first evaluation
    assert t.state["stop_reason"] == "early stopping" and t.state["epoch"] == 3
    assert load_checkpoint(tmp_path / "es" / "best.pt")["trainer"]["best_step"] == t.state["best_step"]
    assert (tmp_path / "es" / "learning_curve.png").stat().st_size > 1000


def test_gradient_accumulation_step_count(tmp_path):
    one = make_trainer(tmp_path, "a1", epochs=1)
    one.fit()
    two = make_trainer(tmp_path, "a2", epochs=1, accumulate=2)
    two.fit()
    batches = len(one.sampler)
    assert one.state["step"] == batches and two.state["step"] == (batches + 1) // 2


def test_accumulation_over_a_single_last_batch_is_not_halved(tmp_path):
    # one batch per epoch: accumulate=2 must take the same SGD step as accumulate=1
    kw = dict(epochs=2, max_tokens=10_000, optimizer="sgd", lr=0.5, clip_grad_norm=None)
    one = make_trainer(tmp_path, "b1", **kw)
    one.fit()
    two = make_trainer(tmp_path, "b2", accumulate=2, **kw)
    two.fit()
    assert len(one.sampler) == 1 and two.state["step"] == 2
    a, b = one.model.state_dict(), two.model.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-7) for k in a)


def test_warmup_cosine_schedule():
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    cfg = TrainConfig(lr=1.0, scheduler="cosine", warmup_steps=4, min_lr=0.1)
    sched = build_scheduler(opt, cfg, steps_per_epoch=10, total_steps=14)
    lrs = []
    for _ in range(14):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    # step 13 is 9 of 10 post-warm-up steps into the cosine
    assert lrs[4] == pytest.approx(1.0)
    assert lrs[-1] == pytest.approx(max(0.1, 0.5 * (1 + math.cos(math.pi * 9 / 10))))


def test_ema_is_the_moving_average_of_the_stepped_weights(tmp_path):
    decay, start = 0.8, 3
    t = make_trainer(tmp_path, "ema", epochs=2, ema_decay=decay, ema_start=start)
    seen: list[dict] = []
    t.optimizer.register_step_post_hook(
        lambda *_: seen.append({k: v.detach().clone() for k, v in t.model.state_dict().items()})
    )
    t.fit()
    assert len(seen) == t.state["step"] > start + 2
    expected = dict(seen[start])  # averaging starts with a copy at step start + 1
    for w in seen[start + 1 :]:
        expected = {k: decay * expected[k] + (1 - decay) * w[k] for k in w}
    ckpt = load_checkpoint(tmp_path / "ema" / "last.pt")
    got = inference_state(ckpt)
    assert set(got) == set(expected)
    assert all(torch.allclose(got[k].float(), expected[k].float(), atol=1e-6) for k in got)
    assert not all(torch.equal(got[k], ckpt["model"][k]) for k in got)  # not the raw weights
    assert t.eval_model is t.ema.module
    # the dev loss logged at the end is that of the averaged weights
    model = ToyLM()
    model.load_state_dict(got)
    model.eval()
    with torch.inference_mode():
        loss = float(model(collate(make_data(8, seed=1)))["loss"])
    dev = [r for r in records(tmp_path / "ema") if r["kind"] == "dev"]
    assert math.isclose(dev[-1]["loss"], loss, rel_tol=1e-6)


def test_ema_resume_after_crash_is_bit_identical(tmp_path):
    make_trainer(tmp_path, "ref", ema_decay=0.9).fit()
    with pytest.raises(KeyboardInterrupt):
        make_trainer(tmp_path, "crash", crash_at=13, ema_decay=0.9).fit()
    make_trainer(tmp_path, "crash", ema_decay=0.9).fit()
    a = load_checkpoint(tmp_path / "ref" / "last.pt")
    b = load_checkpoint(tmp_path / "crash" / "last.pt")
    for key in ("model", "ema"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key])
    assert records(tmp_path / "ref") == records(tmp_path / "crash")


def test_ema_decay_out_of_range_is_a_config_error(tmp_path):
    from seqkit.errors import ConfigError

    with pytest.raises(ConfigError, match="ema_decay"):
        make_trainer(tmp_path, "bad", ema_decay=1.5)


def test_kept_checkpoints_and_their_average(tmp_path, capsys):
    from seqkit.cli.main import main as seqkit_main
    from seqkit.train.checkpoint import average_checkpoints

    t = make_trainer(tmp_path, "keep", epochs=4, keep_checkpoints=2)
    t.fit()  # one evaluation per epoch: steps of epochs 3 and 4 are kept
    kept = sorted((tmp_path / "keep").glob("ckpt_step*.pt"))
    assert len(kept) == 2
    steps = [load_checkpoint(p)["trainer"]["step"] for p in kept]
    assert steps[1] == t.state["step"] and steps[0] < steps[1]
    a, b = (load_checkpoint(p)["model"] for p in kept)
    assert "optimizer" not in load_checkpoint(kept[0])
    avg = average_checkpoints(kept)
    assert all(torch.allclose(avg["model"][k], (a[k] + b[k]) / 2, atol=1e-7) for k in a)
    assert not torch.equal(a["out.weight"], b["out.weight"])
    out = tmp_path / "avg.pt"
    assert seqkit_main(["average", str(tmp_path / "keep"), "--last", "2", "--out", str(out)]) == 0
    saved = load_checkpoint(out)
    assert all(torch.equal(saved["model"][k], avg["model"][k]) for k in a)
    assert seqkit_main(["average", str(tmp_path / "keep"), "--last", "3", "--out", str(out)]) == 2
    assert "2 ckpt_step*.pt checkpoints, --last 3" in capsys.readouterr().err
