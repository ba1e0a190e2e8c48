"""seqkit against SpeechBrain 1.x: CTC ASR training on AN4 (epoch time and dev WER).

One command::

    python benchmarks/asr_peers.py            # defaults: 12 epochs, 1 repetition, 1 thread per side

Smoke test (a few minutes)::

    python benchmarks/asr_peers.py --epochs 1 --limit 40 --limit-dev 20 --work exp/bench_asr_peers_smoke

1. Data: ``data/an4/{train,dev}.jsonl`` (844 / 104 utterances, 16 kHz) are copied (optionally
   thinned with ``--limit`` / ``--limit-dev``, evenly over the manifest) to ``WORK/data/``, and both
   sides read those files.  The references are the manifest texts with whitespace collapsed.
2. Peer: the virtual environment ``.bench_venvs/speechbrain`` (git-ignored) is created when
   missing and ``speechbrain>=1,<2`` installed from PyPI (log in
   ``.bench_venvs/speechbrain.install.log``); torch and torchaudio come from the project's venv
   through a ``.pth`` file read after the venv's own site-packages (nothing is downloaded twice).
3. One worker per toolkit (``benchmarks/asr_peers_worker.py`` run by that venv's python,
   ``OMP_NUM_THREADS`` = ``torch.set_num_threads`` = ``--threads``).  For every repetition each
   side gets a fresh model (seed ``--seed + rep``), then the driver asks seqkit for one epoch,
   SpeechBrain for one epoch, and so on (who goes first alternates every epoch), so drift on the
   machine hits both sides alike.  After the last epoch (``--dev-each-epoch``: after every epoch,
   untimed) each side transcribes dev with greedy CTC, and the driver scores both with
   :func:`seqkit.metrics.wer` (jiwer) against the same reference strings.
4. Prints every epoch's time, the median epoch time of each side, the ratio SpeechBrain / seqkit
   (of the medians, and the median of the per-epoch paired ratios), the final dev WER of each,
   CPU, versions and parameter counts; writes ``results.json`` and ``table.md`` into ``--work``
   (default ``exp/bench_asr_peers/``).

Matched setup (both sides):

* features: 80 log-mel filterbanks, 25 ms windows every 10 ms at 16 kHz, each side with its own
  pipeline (seqkit: its FeatureCache over torchaudio's MelSpectrogram, n_fft 512, Hann,
  ``log(mel + 1e-6)``; SpeechBrain: ``speechbrain.lobes.features.Fbank``, n_fft 400, its STFT and
  dB scale); global mean/variance normalisation with statistics of the whole training set,
  computed once before training (seqkit: ``data.cmvn: global``; SpeechBrain:
  ``speechbrain.processing.features.InputNormalization(norm_type="global")`` fed every training
  utterance once before training (``update_until_epoch=1``), frozen afterwards);
* no speed perturbation, no SpecAugment, dropout 0.2 (on the stacked input, between the LSTM
  layers and on the encoder output, on both sides);
* model: 4 frames stacked into one (40 ms; SpeechBrain: a reshape in ``compute_forward``), a
  3-layer BiLSTM with 256 units per direction, a linear CTC head over the characters (seqkit:
  its vocabulary of characters plus PAD = blank, UNK, BOS, EOS; SpeechBrain: CTCTextEncoder,
  characters plus blank), log-softmax; the parameter counts are printed (they differ only by the
  head's extra rows);
* loss: CTC (seqkit: summed over the batch / target characters; SpeechBrain:
  ``speechbrain.nnet.losses.ctc_loss`` with its default ``reduction="mean"``, i.e. torch's mean
  over utterances of loss / target length);
* Adam, lr 1e-3 constant (seqkit: ``train.scheduler: none``; SpeechBrain: no scheduler),
  gradient-norm clipping 5, same epochs, seeded;
* batches of about 50 s of padded audio: seqkit ``train.max_tokens: 5000`` frames (its
  BucketBatchSampler sorts by length and cuts so max frames x utterances <= 5000, then shuffles
  the batches); SpeechBrain ``DynamicBatchSampler(max_batch_length=50.0 s)`` over the durations
  with ``--sb-buckets`` buckets at quantiles of the training durations (a batch of a bucket holds
  int(50 s / bucket's upper edge) utterances, so padded audio <= 50 s), batches in random order.
  Both sides' batches, utterances and real/padded frames per epoch are reported;
* greedy CTC decoding of dev (seqkit: its task's ``ctc_greedy``; SpeechBrain:
  ``speechbrain.decoders.ctc_greedy_decode`` + the label encoder), batches of 32 sorted by length.

What the epoch time holds: from the request to the end of the epoch's last optimizer step
(read by a ``torch.optim`` step hook), i.e. batching, collation, forward, backward, clipping and
updates in each toolkit's own loop; not dev decoding, checkpoints (neither side writes any) or
end-of-epoch hooks (the whole call is reported too).  **Features:** seqkit computes features
once (cached on disk, held in memory) and trains on them; by default (``--sb-features cached``)
SpeechBrain's features are also computed once with its Fbank and held in memory, so the epoch
times compare the training loops alone.  SpeechBrain's recipes read the audio and compute Fbank
per batch: ``--sb-features online`` does that, and its epoch time then includes reading the WAVs
and computing filterbanks.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from pathlib import Path

from _bench_common import Worker, cpu_name, log, peer_venv

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().with_name("asr_peers_worker.py")
SIDES = ("seqkit", "speechbrain")
PEER = {
    "name": "speechbrain",
    "pip": ["speechbrain>=1,<2"],
    "check": "import speechbrain, torchaudio, speechbrain.lobes.features, speechbrain.nnet.RNN, "
             "speechbrain.dataio.sampler, speechbrain.decoders",
}


# --------------------------------------------------------------------------- data


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def thin(utts: list[dict], n: int | None) -> list[dict]:
    """``n`` utterances spread evenly over the manifest (all when ``n`` is None)."""
    if n is None or n >= len(utts):
        return utts
    return [utts[(i * len(utts)) // n] for i in range(n)]


def prepare_data(args) -> tuple[Path, list[str], list[str]]:
    d = Path(args.work) / "data"
    d.mkdir(parents=True, exist_ok=True)
    train = thin(read_jsonl(Path(args.train)), args.limit)
    dev = thin(read_jsonl(Path(args.dev)), args.limit_dev)
    for name, utts in (("train", train), ("dev", dev)):
        text = "".join(json.dumps(u) + "\n" for u in utts)
        p = d / f"{name}.jsonl"
        if not p.exists() or p.read_text(encoding="utf-8") != text:
            p.write_text(text, encoding="utf-8")
    refs = [" ".join(u["text"].split()) for u in dev]
    log(f"data: {len(train)} train utterances ({sum(u['duration'] for u in train) / 60:.1f} min), "
        f"{len(dev)} dev -> {d}")
    return d, refs, [u["id"] for u in dev]


# --------------------------------------------------------------------------- peer venv


def ensure_venv(root: Path) -> Path:
    """``root/speechbrain`` with SpeechBrain from PyPI; torch and torchaudio from this venv."""
    return peer_venv(root, PEER["name"], [PEER["pip"]], PEER["check"])


# --------------------------------------------------------------------------- main


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def score(refs: list[str], hyps: list[str]) -> float:
    from seqkit.metrics import wer

    return wer(refs, hyps, worst=0)["score"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", default=str(ROOT / "data/an4/train.jsonl"))
    p.add_argument("--dev", default=str(ROOT / "data/an4/dev.jsonl"))
    p.add_argument("--work", default=str(ROOT / "exp/bench_asr_peers"))
    p.add_argument("--venvs", default=str(ROOT / ".bench_venvs"))
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--reps", type=int, default=1,
                   help="fresh trainings (seeds seed, seed+1, ...); every epoch is one alternation")
    p.add_argument("--threads", type=int, default=1, help="torch threads of each side")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--limit", type=int, default=None, help="train on this many utterances (smoke tests)")
    p.add_argument("--limit-dev", type=int, default=None, help="decode this many dev utterances")
    p.add_argument("--dev-each-epoch", action="store_true", help="also decode dev after every epoch (untimed)")
    p.add_argument("--sb-features", choices=("online", "cached"), default="cached",
                   help="SpeechBrain: Fbank per batch from the audio (its recipes' usage) or computed once")
    p.add_argument("--sb-buckets", type=int, default=20, help="SpeechBrain DynamicBatchSampler buckets")
    p.add_argument("--max-frames", type=int, default=5000,
                   help="padded 10 ms frames per batch (seqkit max_tokens; SpeechBrain max_frames/100 s)")
    p.add_argument("--sides", nargs="+", default=list(SIDES), choices=SIDES)
    args = p.parse_args()

    work = Path(args.work)
    _, refs, dev_ids = prepare_data(args)
    settings = {"epochs": args.epochs, "threads": args.threads, "n_mels": 80, "stack": 4, "layers": 3,
                "hidden": 256, "dropout": 0.2, "lr": 1e-3, "clip": 5.0, "max_frames": args.max_frames,
                "decode_batch": 32, "sb_features": args.sb_features, "sb_buckets": args.sb_buckets,
                "seqkit_recipe": str(ROOT / "recipes/asr/an4/config.yaml")}
    (work / "settings.json").write_text(json.dumps(settings, indent=1) + "\n")
    pys = {"seqkit": Path(sys.executable)}
    if "speechbrain" in args.sides:
        pys["speechbrain"] = ensure_venv(Path(args.venvs))
    tenv = {k: str(args.threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    env = {"PYTHONWARNINGS": "ignore", **tenv}
    workers = {s: Worker(s, [str(pys[s]), str(WORKER), s, str(work)], ROOT, work / f"worker_{s}.log", env=env)
               for s in args.sides}
    import torch

    res = {"machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
                       "torch": torch.__version__},
           "settings": settings, "args": vars(args), "info": {}, "reps": [], "load": []}
    try:
        for s, w in workers.items():  # the workers set up (features, statistics) in parallel
            res["info"][s] = w.ask({"op": "info"})
            log(f"{s}: {res['info'][s]}")
        for rep in range(args.reps):
            seed = args.seed + rep
            r = {"seed": seed, "epochs": {s: [] for s in args.sides}, "dev": {s: [] for s in args.sides}}
            for s, w in workers.items():
                r.setdefault("start", {})[s] = w.ask({"op": "start", "seed": seed})
            for ep in range(args.epochs):
                order = list(args.sides) if (ep + rep) % 2 == 0 else list(reversed(args.sides))
                for s in order:
                    res["load"].append(loadavg())
                    e = workers[s].ask({"op": "epoch"})
                    r["epochs"][s].append(e)
                    log(f"rep {rep} epoch {ep + 1} {s}: {e['seconds']:.2f} s ({e['call_seconds']:.2f} s call), "
                        f"{e['steps']} steps, {e['utterances']} utts, pad {e['padded_frames'] / max(e['frames'], 1):.3f}, "
                        f"loss {e['loss']:.3f}; load {loadavg():.2f}")
                if args.dev_each_epoch or ep == args.epochs - 1:
                    for s in order:
                        d = workers[s].ask({"op": "decode"})
                        assert d["ids"] == dev_ids, f"{s}: dev order differs"
                        d["wer"] = score(refs, d["hyps"])
                        d["epoch"] = ep + 1
                        if ep == args.epochs - 1:
                            (work / f"dev.hyp.{s}.rep{rep}").write_text("".join(h + "\n" for h in d["hyps"]),
                                                                       encoding="utf-8")
                        del d["hyps"]
                        r["dev"][s].append(d)
                        log(f"rep {rep} epoch {ep + 1} {s}: dev WER {100 * d['wer']:.2f}% "
                            f"(decode {d['seconds']:.1f} s)")
            res["reps"].append(r)
    finally:
        for w in workers.values():
            w.close()
    (work / "dev.ref").write_text("".join(x + "\n" for x in refs), encoding="utf-8")
    res["summary"] = summarize(res, args)
    (work / "results.json").write_text(json.dumps(res, indent=1) + "\n")
    table = tables(res, args)
    (work / "table.md").write_text(table)
    print(table)


def summarize(res: dict, args) -> dict:
    out = {}
    for s in args.sides:
        times = [e["seconds"] for r in res["reps"] for e in r["epochs"][s]]
        wers = [r["dev"][s][-1]["wer"] for r in res["reps"]]
        out[s] = {"median_epoch_s": statistics.median(times), "min_epoch_s": min(times), "max_epoch_s": max(times),
                  "epochs_timed": len(times), "final_dev_wer": statistics.median(wers), "final_dev_wers": wers}
    if set(SIDES) <= set(args.sides):
        pairs = [b["seconds"] / a["seconds"] for r in res["reps"]
                 for a, b in zip(r["epochs"]["seqkit"], r["epochs"]["speechbrain"])]
        out["ratio_of_medians"] = out["speechbrain"]["median_epoch_s"] / out["seqkit"]["median_epoch_s"]
        out["median_paired_ratio"] = statistics.median(pairs)
        out["paired_ratios"] = pairs
    return out


def tables(res: dict, args) -> str:
    m, sm, info = res["machine"], res["summary"], res["info"]
    load = res["load"] or [0.0]
    n_train = info[args.sides[0]]["train_utterances"]
    n_dev = info[args.sides[0]]["dev_utterances"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, {args.threads} thread(s) per side, torch {m['torch']}, "
             f"Python {m['python']}; 1-min load average during the epochs: median {statistics.median(load):.2f} "
             f"(min {min(load):.2f}, max {max(load):.2f}).",
             f"AN4: {n_train} training utterances, {n_dev} dev; {args.epochs} epochs x {args.reps} repetition(s), "
             f"sides alternating every epoch; SpeechBrain features: {args.sb_features}.", ""]
    vers = []
    for s in args.sides:
        i = info[s]
        vers.append(f"{s} {i['version']}" + (f" (torchaudio {i['torchaudio']})" if "torchaudio" in i else ""))
    lines += ["Versions: " + ", ".join(vers) + ".", ""]
    lines += ["| toolkit | params | outputs | median epoch s | min-max | steps/epoch | utts/epoch | padded/real frames "
              "| final dev WER (greedy CTC) |", "|---|---|---|---|---|---|---|---|---|"]
    for s in args.sides:
        eps = [e for r in res["reps"] for e in r["epochs"][s]]
        steps = statistics.median(e["steps"] for e in eps)
        utts = statistics.median(e["utterances"] for e in eps)
        pad = statistics.median(e["padded_frames"] / max(e["frames"], 1) for e in eps)
        v = sm[s]
        w = ", ".join(f"{100 * x:.2f}" for x in v["final_dev_wers"])
        lines.append(f"| {s} | {info[s]['params']:,} | {info[s]['outputs']} | {v['median_epoch_s']:.2f} | "
                     f"{v['min_epoch_s']:.2f}-{v['max_epoch_s']:.2f} | {steps:g} | {utts:g} | {pad:.3f} | "
                     f"{100 * v['final_dev_wer']:.2f}%" + (f" ({w})" if args.reps > 1 else "") + " |")
    lines.append("")
    if "ratio_of_medians" in sm:
        lines += [f"Epoch time SpeechBrain / seqkit: {sm['ratio_of_medians']:.2f} (ratio of the medians); median of "
                  f"the per-epoch paired ratios {sm['median_paired_ratio']:.2f} "
                  f"({', '.join(f'{x:.2f}' for x in sm['paired_ratios'])}).", ""]
    lines += ["Per-epoch seconds:", "", "| rep | epoch | " + " | ".join(args.sides) + " |",
              "|---|---|" + "---|" * len(args.sides)]
    for k, r in enumerate(res["reps"]):
        for ep in range(args.epochs):
            lines.append(f"| {k} | {ep + 1} | " + " | ".join(f"{r['epochs'][s][ep]['seconds']:.2f}"
                                                            for s in args.sides) + " |")
    if args.dev_each_epoch:
        lines += ["", "Dev WER after each epoch (%):", "", "| rep | epoch | " + " | ".join(args.sides) + " |",
                  "|---|---|" + "---|" * len(args.sides)]
        for k, r in enumerate(res["reps"]):
            for ep in range(args.epochs):
                lines.append(f"| {k} | {ep + 1} | " + " | ".join(f"{100 * r['dev'][s][ep]['wer']:.2f}"
                                                                for s in args.sides) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
