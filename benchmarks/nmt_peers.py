"""seqkit against JoeyNMT 2.3.0 and OpenNMT-py 3.5.1 on Multi30k De->En (issue 8, items 2 and 3).

One command::

    python benchmarks/nmt_peers.py            # defaults: 3 repetitions, 10 + 60 timed steps, beam 5
    python benchmarks/nmt_peers.py --device cuda   # the same on a GPU (every side on cuda:0)

On a machine with no package registry, install the peers from wheels and pass
``--peer-python`` (how the GPU figures in ``benchmarks/README.md`` were taken).

1. Data (``exp/bench_nmt_peers/``): one joint SentencePiece unigram model (8000 pieces, trained
   with seqkit's ``SentencePieceTokenizer`` on the German and English training text, as the
   recipe does) pre-tokenises ``data/multi30k/{train,val}.{de,en}`` into space-separated
   pieces.  Every toolkit reads those files as plain word-level text and builds its
   vocabulary from the training side (every piece seen, no cut-off), so the vocabularies hold
   the same pieces (the script checks the sizes).
2. Peers: virtual environments under ``.bench_venvs/`` (git-ignored), created when missing:
   ``joeynmt==2.3.0`` and ``OpenNMT-py==3.5.1`` installed with ``--no-deps`` plus their
   declared dependencies except torch (JoeyNMT also gets ``importlib-metadata``); torch 2.11
   comes from the project's venv through a ``.pth`` file listed after the peer's own
   site-packages (OpenNMT-py 3.5.1 declares ``torch<2.3``; it trains and translates on 2.11).
3. One worker per toolkit (``benchmarks/nmt_peers_worker.py`` run by that venv's python,
   ``OMP_NUM_THREADS=1`` and ``torch.set_num_threads(1)``).  Training: every repetition asks
   each worker in turn (the order rotates) to train a fresh, seeded model with its own
   training loop for ``--warmup + --steps`` optimizer steps; target tokens per second over
   the last ``--steps`` steps.  Beam search: each worker then trains its model for
   ``--beam-train-steps`` steps (untimed) and translates ``val.de`` (1014 sentences) at beam
   5, batch 64 sentences, ``--reps`` times in turn; sentences per second.
4. Prints medians, the paired ratios (median over repetitions of seqkit speed / peer speed)
   and writes ``results.json`` and ``table.md`` into the work folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from collections import Counter
from pathlib import Path

from _bench_common import Worker, cpu_name, log, peer_venv

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().with_name("nmt_peers_worker.py")
WORKER_ENV = {"PYTHONWARNINGS": "ignore",
              # OpenNMT-py 3.5.1 checkpoints hold argparse options: torch >= 2.6 loads them only so
              "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
PEERS = {
    "joeynmt": {
        "wheel": "joeynmt==2.3.0",
        "deps": ["future", "pillow", "numpy>=1.19.5", "setuptools>=41.0.0", "protobuf<3.21,>=3.19.4",
                 "tensorboard>=1.15", "sacrebleu>=2.0.0", "sacremoses", "sentencepiece", "subword-nmt",
                 "matplotlib", "seaborn", "pyyaml>=5.1", "six>=1.12", "wrapt>=1.11.1", "pylint", "yapf",
                 "flake8", "pytest", "datasets", "packaging", "plotly", "pandas", "importlib-metadata"],
        "check": "import joeynmt.training, joeynmt.prediction",
    },
    "opennmt": {
        "wheel": "OpenNMT-py==3.5.1",
        "deps": ["configargparse", "ctranslate2<5,>=4", "tensorboard>=2.3", "flask", "waitress",
                 "pyonmttok<2,>=1.37", "pyyaml", "sacrebleu", "rapidfuzz", "pyahocorasick", "fasttext-wheel",
                 "spacy", "six"],
        "check": "import onmt.trainer, onmt.inference_engine",
    },
}
SETTINGS = {
    "emb": 256, "enc_hidden": 128, "dec_hidden": 256, "dropout": 0.3, "label_smoothing": 0.1,
    "lr": 0.001, "clip": 1.0, "max_tokens": 2000, "max_len": 100, "seed": 1, "length_penalty": 1.0,
    "onmt_max_length": 100, "seqkit_recipe": str(ROOT / "recipes/translation/multi30k/config.yaml"),
}


# --------------------------------------------------------------------------- data


def prepare_data(args) -> Path:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    src = Path(args.data)
    stamp = {k: os.stat(src / k).st_size for k in ("train.de", "train.en", "val.de", "val.en")}
    marker = work / "data.json"
    if marker.exists() and json.loads(marker.read_text()).get("stamp") == stamp:
        log(f"data: cached {work}")
        return work
    from seqkit.data.tokenizers import SentencePieceTokenizer

    train = {lang: (src / f"train.{lang}").read_text(encoding="utf-8").splitlines() for lang in ("de", "en")}
    sp = SentencePieceTokenizer.train(texts=train["de"] + train["en"], model_prefix=work / "spm",
                                      vocab_size=8000, model_type="unigram", seed=1)
    counts = Counter()
    for split in ("train", "val"):
        for lang in ("de", "en"):
            lines = (src / f"{split}.{lang}").read_text(encoding="utf-8").splitlines()
            toks = [sp.encode(x) for x in lines]
            if split == "train":
                for t in toks:
                    counts.update(t)
            (work / f"{split}.{lang}").write_text("".join(" ".join(t) + "\n" for t in toks), encoding="utf-8")
    # OpenNMT-py vocabulary file (what onmt_build_vocab writes: token<TAB>count, most frequent first)
    (work / "opennmt.vocab").write_text("".join(f"{w}\t{c}\n" for w, c in counts.most_common()), encoding="utf-8")
    # JoeyNMT: one token a line (its specials are added in front); one file for both sides
    (work / "joeynmt.vocab").write_text("".join(f"{w}\n" for w, _ in counts.most_common()), encoding="utf-8")
    marker.write_text(json.dumps({"stamp": stamp, "pieces_in_train": len(counts)}) + "\n")
    log(f"data: {len(counts)} distinct pieces in train -> {work}")
    return work


# --------------------------------------------------------------------------- peer venvs


def ensure_venv(root: Path, name: str) -> Path:
    """``root/name`` with the peer (``--no-deps``) and its dependencies except torch."""
    spec = PEERS[name]
    return peer_venv(root, name, [["--no-deps", spec["wheel"]], spec["deps"]], spec["check"])


# --------------------------------------------------------------------------- machine


def machine() -> dict:
    cpu = cpu_name()
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "gpu": gpu}


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


# --------------------------------------------------------------------------- main


SIDES = ("seqkit", "joeynmt", "opennmt")
TARGET = {"train": {"joeynmt": 1.5, "opennmt": 1.2}, "beam": {"joeynmt": 2.0, "opennmt": 1.2}}


def summarize(runs: dict, key: str, unit_fn) -> dict:
    """Per side: median speed, min, max; paired ratios seqkit / peer per repetition."""
    out = {}
    for side, rs in runs.items():
        sp = [unit_fn(r) for r in rs]
        out[side] = {"median": statistics.median(sp), "min": min(sp), "max": max(sp), "n": len(sp)}
    for side in runs:
        if side == "seqkit":
            continue
        pairs = [unit_fn(a) / unit_fn(b) for a, b in zip(runs["seqkit"], runs[side])]
        out[side]["ratio"] = statistics.median(pairs)
        out[side]["ratios"] = pairs
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(ROOT / "data/multi30k"))
    p.add_argument("--work", default=str(ROOT / "exp/bench_nmt_peers"))
    p.add_argument("--venvs", default=str(ROOT / ".bench_venvs"))
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--steps", type=int, default=60, help="timed training steps per repetition")
    p.add_argument("--beam-train-steps", type=int, default=300)
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--fixed-len", type=int, default=None,
                   help="beam search: every output exactly this long on every side (min = max length)")
    p.add_argument("--sides", nargs="+", default=list(SIDES))
    p.add_argument("--peer-python", default=None,
                   help="run the peers with this interpreter (JoeyNMT and OpenNMT-py already importable by it, "
                        "e.g. installed from carried wheels on a machine without a package registry) "
                        "instead of building venvs under --venvs")
    p.add_argument("--seqkit-set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra seqkit config override (repeatable), e.g. train.malloc_top_pad_mb=0")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="where every side trains and decodes (host work stays on 1 thread)")
    p.add_argument("--no-train", action="store_true")
    p.add_argument("--no-beam", action="store_true")
    args = p.parse_args()

    work = prepare_data(args)
    settings = {**SETTINGS, "device": args.device, "seqkit_set": args.seqkit_set}
    (work / "settings.json").write_text(json.dumps(settings, indent=1) + "\n")
    pys = {"seqkit": Path(sys.executable)}
    for side in args.sides:
        if side != "seqkit":
            pys[side] = Path(args.peer_python) if args.peer_python else ensure_venv(Path(args.venvs), side)
    workers = {s: Worker(s, [str(pys[s]), str(WORKER), s, str(work)], ROOT, work / f"worker_{s}.log",
                         env=WORKER_ENV) for s in args.sides}
    res = {"machine": machine(), "settings": settings, "args": vars(args), "info": {}, "train": {}, "beam": {},
           "load": []}
    try:
        for s, w in workers.items():
            res["info"][s] = w.ask({"op": "info"})
            log(f"{s}: {res['info'][s]}")
        order = list(args.sides)
        if not args.no_train:
            runs = {s: [] for s in args.sides}
            for rep in range(args.reps):
                for s in order[rep % len(order):] + order[: rep % len(order)]:
                    res["load"].append(loadavg())
                    r = workers[s].ask({"op": "train", "steps": args.warmup + args.steps, "warmup": args.warmup,
                                        "tag": f"rep{rep}"})
                    r["tok_per_s"] = r["tokens"] / r["seconds"]
                    runs[s].append(r)
                    log(f"train rep {rep} {s}: {r['tok_per_s']:.0f} target tok/s, "
                        f"{r['tokens'] / r['steps']:.0f} tok/step, {r['sentences'] / r['steps']:.1f} sent/step, "
                        f"{r['seconds'] / r['steps']:.3f} s/step; load {loadavg():.2f}")
            res["train"] = {"runs": runs, "summary": summarize(runs, "tok_per_s", lambda r: r["tok_per_s"])}
        if not args.no_beam:
            for s in args.sides:
                res["load"].append(loadavg())
                r = workers[s].ask({"op": "train", "steps": args.beam_train_steps, "warmup": 0, "tag": "beam"})
                res["beam"].setdefault("model_train", {})[s] = r
                log(f"beam model {s}: {args.beam_train_steps} steps, {r['seconds']:.0f} s")
            runs = {s: [] for s in args.sides}
            for rep in range(args.reps):
                for s in order[rep % len(order):] + order[: rep % len(order)]:
                    res["load"].append(loadavg())
                    r = workers[s].ask({"op": "decode", "beam": args.beam, "batch": args.batch,
                                        "fixed_len": args.fixed_len})
                    r["sent_per_s"] = r["sentences"] / r["seconds"]
                    if rep == 0:
                        (work / f"val.hyp.{s}").write_text("".join(h + "\n" for h in r["hyps"]), encoding="utf-8")
                    del r["hyps"]
                    runs[s].append(r)
                    log(f"beam rep {rep} {s}: {r['sent_per_s']:.1f} sent/s, {r['out_tokens'] / r['sentences']:.1f} "
                        f"out tokens/sent; load {loadavg():.2f}")
            res["beam"].update(runs=runs, summary=summarize(runs, "sent_per_s", lambda r: r["sent_per_s"]))
    finally:
        for w in workers.values():
            w.close()
    res["load_median"] = statistics.median(res["load"]) if res["load"] else None
    (work / "results.json").write_text(json.dumps(res, indent=1) + "\n")
    table = tables(res, args)
    (work / "table.md").write_text(table)
    print(table)


def tables(res: dict, args) -> str:
    m = res["machine"]
    where = f"GPU {m['gpu']} (host " if args.device == "cuda" else ""
    lines = [f"Machine: {where}{m['cpu']}, {m['cores']} cores{')' if where else ' shared with other jobs'}, 1 thread per side, "
             f"torch {m['torch']}, Python {m['python']}; 1-min load average during the runs: median "
             f"{res['load_median']:.2f} (min {min(res['load']):.2f}, max {max(res['load']):.2f}).", ""]
    info = res["info"]
    if res["train"]:
        sm, runs = res["train"]["summary"], res["train"]["runs"]
        lines += [f"Training, target tokens/s (median of {args.reps}; {args.steps} timed steps after {args.warmup}):", "",
                  "| toolkit | params | target tok/s (median) | min-max | target tok/step | sent/step | s/step | "
                  "seqkit / peer | target | met |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for s, v in sm.items():
            rs = runs[s]
            tps = statistics.median(r["tokens"] / r["steps"] for r in rs)
            sps = statistics.median(r["sentences"] / r["steps"] for r in rs)
            ssp = statistics.median(r["seconds"] / r["steps"] for r in rs)
            params = info[s].get("params") or rs[0].get("params")
            ratio = f"{v['ratio']:.2f} ({', '.join(f'{x:.2f}' for x in v['ratios'])})" if "ratio" in v else "-"
            tgt = TARGET["train"].get(s)
            met = "-" if tgt is None else ("yes" if v["ratio"] >= tgt else "no")
            lines.append(f"| {s} | {params:,} | {v['median']:.0f} | {v['min']:.0f}-{v['max']:.0f} | {tps:.0f} | "
                         f"{sps:.1f} | {ssp:.3f} | {ratio} | {'-' if tgt is None else f'>= {tgt}'} | {met} |")
        lines.append("")
    if res["beam"]:
        sm, runs = res["beam"]["summary"], res["beam"]["runs"]
        lines += [f"Beam search, beam {args.beam}, batch {args.batch} sentences, Multi30k val (1014 sentences), models "
                  f"trained {args.beam_train_steps} steps each"
                  + (f", every output forced to {args.fixed_len} tokens (min = max length)" if args.fixed_len else "")
                  + f" (median of {args.reps}):", "",
                  "| toolkit | sentences/s (median) | min-max | output tokens/sent | output tokens/s | seqkit / peer | "
                  "target | met |",
                  "|---|---|---|---|---|---|---|---|"]
        for s, v in sm.items():
            r0 = runs[s][0]
            ratio = f"{v['ratio']:.2f} ({', '.join(f'{x:.2f}' for x in v['ratios'])})" if "ratio" in v else "-"
            tgt = TARGET["beam"].get(s)
            met = "-" if tgt is None else ("yes" if v["ratio"] >= tgt else "no")
            lines.append(f"| {s} | {v['median']:.1f} | {v['min']:.1f}-{v['max']:.1f} | "
                         f"{r0['out_tokens'] / r0['sentences']:.1f} | "
                         f"{statistics.median(r['out_tokens'] / r['seconds'] for r in runs[s]):.0f} | {ratio} | {'-' if tgt is None else f'>= {tgt}'} "
                         f"| {met} |")
        lines.append("")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
