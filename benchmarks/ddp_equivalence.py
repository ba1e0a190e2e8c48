"""DDP equivalence (issue 8, "Scale"): a 2-process gloo run against 1-process runs.

A tiny translation task (synthetic word-level pairs: the target is the reversed source with a
word mapping; 1-layer BiLSTM/LSTM of 16 units, dropout 0, word dropout none, label smoothing 0,
Adam, no warm-up, gradient clipping off) is trained four ways through seqkit's own
:class:`~seqkit.train.trainer.Trainer`, each on 1 CPU thread (``OMP_NUM_THREADS=1``):

* ``ddp``: ``torchrun --nproc_per_node 2`` (gloo), ``max_tokens`` M: rank r takes global
  batches r, r+2, r+4, ... of the :class:`BucketBatchSampler` (so one optimizer step sees global
  batches 2k and 2k+1, one per rank), each rank's loss is the token mean of its own batch and
  DDP averages the two ranks' gradients;
* ``accum``: 1 process, ``max_tokens`` M, ``accumulate: 2``: the same two batches per step,
  each loss divided by 2 and the gradients summed: the *same* objective as DDP (the mean of the
  two batch means), so it must agree up to float reduction order;
* ``merged``: 1 process whose batch k is global batches 2k and 2k+1 merged into one (the
  doubled batch with exactly the tokens the two ranks see): its loss is the token mean over
  both, which weights the two halves by their token counts n0 / (n0 + n1) and n1 / (n0 + n1)
  instead of 1/2 and 1/2, so it differs from DDP whenever the two ranks' batches hold different
  numbers of target tokens;
* ``double``: 1 process, plain ``max_tokens`` 2M through the CLI-equivalent sampler: the
  doubled batch as a user would set it.  The cut is greedy under ``max_len * n <= max_tokens``
  and the batch order is shuffled per epoch, so its batches are *not* the union of the DDP
  ranks' batches (see the README): it agrees with DDP in distribution only.

Every run records each micro-batch's loss and token count (per rank) and saves its final weights;
the script compares per-step losses (DDP: the mean of the two ranks' losses, which is the loss
DDP optimises; also the token-weighted mean) and the final weights against the DDP run, and
prints ``metrics.jsonl``'s logged train losses (on DDP the token-weighted mean over both ranks'
batches since the last log: the trainer all-reduces its loss sums before it writes, so they equal
``accum``'s logged losses, which cover the same batches).

    python benchmarks/ddp_equivalence.py                 # ~1 min
    python benchmarks/ddp_equivalence.py --epochs 3 --pairs 400
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def write_data(folder: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(30)]
    mapping = {w: f"v{(i * 7) % 30}" for i, w in enumerate(words)}
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", n), ("dev", 20)):
        src, tgt = [], []
        for _ in range(count):
            s = [rng.choice(words) for _ in range(rng.randint(2, 14))]
            src.append(" ".join(s))
            tgt.append(" ".join(mapping[w] for w in reversed(s)))
        (folder / f"{split}.src").write_text("\n".join(src) + "\n")
        (folder / f"{split}.tgt").write_text("\n".join(tgt) + "\n")


def write_config(folder: Path, data: Path, epochs: int, max_tokens: int, accumulate: int) -> Path:
    import yaml

    folder.mkdir(parents=True, exist_ok=True)

    cfg = {
        "task": "translation",
        "data": {"train": str(data / "train"), "dev": str(data / "dev"),
                 "src_lang": "src", "tgt_lang": "tgt", "tokenizer": "word", "joint_vocab": False},
        "model": {"emb_dim": 16, "enc_hidden": 16, "dec_hidden": 16, "dropout": 0.0, "label_smoothing": 0.0,
                  "tie_embeddings": True},
        "train": {"output_dir": str(folder / "exp"), "seed": 3, "epochs": epochs, "max_tokens": max_tokens,
                  "accumulate": accumulate, "optimizer": "adam", "lr": 0.01, "scheduler": "none",
                  "warmup_steps": 0, "clip_grad_norm": 0.0, "log_every": 5, "checkpoint_every": 0,
                  "progress": False, "tensorboard": False, "num_threads": 1, "device": "cpu"},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


class Recorder(torch.nn.Module):
    """Wraps the model; records (loss, n) of every micro-batch."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.log: list[tuple[float, int]] = []

    def forward(self, batch):
        out = self.inner(batch)
        self.log.append((float(out["loss"].detach()), int(out["n"])))
        return out


class MergedSampler:
    """Batch k = global batches 2k and 2k+1 of a BucketBatchSampler (padded to even like DDP's)."""

    def __init__(self, base):
        self.base, self.start = base, 0

    def _pairs(self):
        b = self.base.batches(self.base.epoch)
        if len(b) % 2:
            b = b + [b[0]]
        return [b[i] + b[i + 1] for i in range(0, len(b), 2)]

    def set_epoch(self, epoch):
        self.base.set_epoch(epoch)
        self.start = 0

    def set_start(self, start):
        self.start = start

    def __iter__(self):
        yield from self._pairs()[self.start:]

    def __len__(self):
        return len(self._pairs())


def run_worker(cfg_path: str, mode: str, out: str) -> None:
    from seqkit.config import load_config
    from seqkit.data.batching import BucketBatchSampler
    from seqkit.tasks import get_task
    from seqkit.train.trainer import Trainer

    cfg = load_config(cfg_path, [f"train.output_dir={out}"])
    task = get_task(cfg.task)(cfg)
    task.build_state()
    torch.manual_seed(cfg.train.seed)
    examples, lengths, collate = task.training_data()
    model = Recorder(task.build_model())
    sampler = None
    if mode == "merged":
        sampler = MergedSampler(BucketBatchSampler(lengths, cfg.train.max_tokens, shuffle=True, seed=cfg.train.seed))
    trainer = Trainer(model, cfg.train, examples, lengths, collate, evaluate=None, batch_sampler=sampler)
    trainer.fit()
    rank = trainer.dist.rank
    Path(out, f"losses.rank{rank}.json").write_text(json.dumps(model.log))
    if trainer.dist.is_main:
        global_batches = trainer.sampler.batches(0) if hasattr(trainer.sampler, "batches") else None
        Path(out, "info.json").write_text(json.dumps({
            "steps": trainer.state["step"], "batches_epoch0": None if global_batches is None else len(global_batches)}))
        torch.save(trainer.model.state_dict(), Path(out, "final.pt"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(cfg: Path, mode: str, out: Path) -> float:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    me = [str(Path(__file__).resolve()), "--worker", mode, "--config", str(cfg), "--out", str(out)]
    if mode == "ddp":
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(free_port()), *me]
    else:
        cmd = [sys.executable, *me]
    t = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    if proc.returncode:
        raise SystemExit(f"{mode} failed:\n{proc.stderr[-3000:]}")
    return time.time() - t


def compare(folder: Path, modes: list[str]) -> dict:
    res = {}
    ddp0 = json.loads((folder / "ddp" / "losses.rank0.json").read_text())
    ddp1 = json.loads((folder / "ddp" / "losses.rank1.json").read_text())
    # the objective DDP minimises per step: the plain mean of the ranks' token means
    ddp_step = [(a[0] + b[0]) / 2 for a, b in zip(ddp0, ddp1)]
    ddp_tok = [(a[0] * a[1] + b[0] * b[1]) / (a[1] + b[1]) for a, b in zip(ddp0, ddp1)]
    unequal = sum(a[1] != b[1] for a, b in zip(ddp0, ddp1))
    w_ddp = torch.load(folder / "ddp" / "final.pt")
    res["ddp"] = {"steps": len(ddp_step), "rank_token_counts_unequal": unequal,
                  "max_rank_token_ratio": max(max(a[1], b[1]) / min(a[1], b[1]) for a, b in zip(ddp0, ddp1))}
    for mode in modes:
        if mode == "ddp":
            continue
        log = json.loads((folder / mode / "losses.rank0.json").read_text())
        if mode == "accum":
            steps = [(log[i][0] + log[i + 1][0]) / 2 for i in range(0, len(log) - 1, 2)]
            first = [log[i][0] for i in range(0, len(log), 2)]
            first_ddp = [a[0] for a in ddp0]
            extra = {"max_abs_diff_per_batch_loss_vs_rank0": max(abs(x - y) for x, y in zip(first, first_ddp))}
        else:
            steps = [x[0] for x in log]
            extra = {}
        ref = ddp_tok if mode == "merged" else ddp_step
        n = min(len(steps), len(ref))
        w = torch.load(folder / mode / "final.pt")
        wdiff = max(float((w[k] - w_ddp[k]).abs().max()) for k in w_ddp)
        wscale = max(float(w_ddp[k].abs().max()) for k in w_ddp)
        res[mode] = {"steps": len(steps),
                     "max_abs_diff_step_loss": max(abs(steps[i] - ref[i]) for i in range(n)),
                     "first_step_abs_diff": abs(steps[0] - ref[0]),
                     "last_step_loss": steps[n - 1], "ddp_last_step_loss": ref[n - 1],
                     "max_abs_diff_final_weights": wdiff, "max_abs_weight": wscale,
                     "loss_compared_to": "token-weighted mean of the ranks" if mode == "merged" else "mean of the ranks",
                     **extra}
        if mode == "merged":  # merged vs DDP's objective, to show the weighting effect
            res[mode]["first_step_diff_vs_rank_mean"] = abs(steps[0] - ddp_step[0])
    logged = {}
    for mode in modes:
        recs = [json.loads(line) for line in (folder / mode / "metrics.jsonl").read_text().splitlines()]
        logged[mode] = [(r["step"], round(r["loss"], 5)) for r in recs if r.get("split", r.get("kind")) == "train"
                        or ("loss" in r and "lr" in r)]
    res["logged_train_loss"] = logged
    for mode in modes:
        if mode != "ddp" and [x[0] for x in logged[mode]] == [x[0] for x in logged["ddp"]]:
            res[mode]["max_abs_diff_logged_loss"] = max(
                (abs(a[1] - b[1]) for a, b in zip(logged[mode], logged["ddp"])), default=0.0)
    return res


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--worker")
    p.add_argument("--config")
    p.add_argument("--out")
    p.add_argument("--dir", help="work folder (default: a new temporary one)")
    p.add_argument("--pairs", type=int, default=240)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--max-tokens", type=int, default=60)
    p.add_argument("--modes", nargs="+", default=["ddp", "accum", "merged", "double"])
    args = p.parse_args(argv)
    if args.worker:
        run_worker(args.config, args.worker, args.out)
        return
    import tempfile

    folder = Path(args.dir or tempfile.mkdtemp(prefix="ddp_eq_"))
    write_data(folder / "data", args.pairs)
    print(f"torch {torch.__version__}; work folder {folder}; load {os.getloadavg()[0]:.2f}")
    secs = {}
    for mode in args.modes:
        mt = args.max_tokens * (2 if mode == "double" else 1)
        cfg = write_config(folder / mode, folder / "data", args.epochs, mt, 2 if mode == "accum" else 1)
        secs[mode] = launch(cfg, mode, folder / mode)
        info = json.loads((folder / mode / "info.json").read_text())
        print(f"{mode}: max_tokens {mt}, {info['steps']} optimizer steps, {secs[mode]:.1f} s", flush=True)
    res = compare(folder, args.modes)
    logged = res.pop("logged_train_loss")
    print(json.dumps(res, indent=1))
    d = res["ddp"]
    print(f"\nddp: {d['steps']} steps; the two ranks' batches hold different target-token counts in "
          f"{d['rank_token_counts_unequal']} of them (ratio up to {d['max_rank_token_ratio']:.2f})")
    print("\n| 1-process run | steps | compared with | max abs diff of step losses | first step | "
          "max abs diff of final weights (max abs weight) |")
    print("| --- | ---: | --- | ---: | ---: | ---: |")
    for mode in args.modes:
        if mode == "ddp":
            continue
        r = res[mode]
        print(f"| {mode} | {r['steps']} | DDP, {r['loss_compared_to']} | {r['max_abs_diff_step_loss']:.3g} | "
              f"{r['first_step_abs_diff']:.3g} | {r['max_abs_diff_final_weights']:.3g} ({r['max_abs_weight']:.3g}) |")
    print("\nmetrics.jsonl train losses (step: loss; on DDP the token-weighted mean over both ranks):")
    for mode, recs in logged.items():
        print(f"  {mode:7s} " + " ".join(f"{s}:{x:.4f}" for s, x in recs))


if __name__ == "__main__":
    main()
