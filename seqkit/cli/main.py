"""The ``seqkit`` command line.

    seqkit train CONFIG [key.sub=value ...] [--fresh]
    seqkit evaluate CONFIG [key.sub=value ...] [--ckpt PATH] [--split PREFIX]
    seqkit predict CONFIG [key.sub=value ...] [--ckpt PATH] [--input FILE|-] [--output FILE]
    seqkit score {bleu,chrf,wer,cer,f1,acc} --ref REF --hyp HYP [--json]
    seqkit score ppl --arpa LM.arpa --text FILE [--json]
    seqkit ngram --order N --train FILE --arpa OUT [--lowercase]
    seqkit average (OUTPUT_DIR --last K | CKPT CKPT ...) --out AVG.pt

Under ``torchrun`` use ``torchrun --nproc_per_node N -m seqkit.cli.main train CONFIG``.
User errors (bad data, bad config) print ``seqkit: error: ...`` and exit with status 2,
without a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import SeqkitError


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="experiment YAML file")
    p.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides")


def _cmd_train(args) -> int:
    from ..config import load_config
    from ..tasks.base import train

    cfg = load_config(args.config, args.overrides)
    summary = train(cfg, fresh=args.fresh)
    if "dev" in summary:
        print(json.dumps({"output_dir": cfg.train.output_dir, **summary["dev"]}))
    return 0


def _cmd_evaluate(args) -> int:
    from ..config import load_config
    from ..tasks.base import evaluate

    cfg = load_config(args.config, args.overrides)
    metrics = evaluate(cfg, checkpoint=args.ckpt, split=args.split)
    print(json.dumps(metrics))
    return 0


def _read_input(path: str) -> list[str]:
    from ..textio import decode_lines, read_lines

    return decode_lines(sys.stdin.buffer.read(), "<stdin>") if path == "-" else read_lines(path)


def _cmd_predict(args) -> int:
    from ..config import load_config
    from ..tasks.base import predict

    cfg = load_config(args.config, args.overrides)
    lines = _read_input(args.input)
    outputs = predict(cfg, lines, checkpoint=args.ckpt)
    text = "".join(o + "\n" for o in outputs)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


def _cmd_ngram(args) -> int:
    import time

    from ..models.ngram import estimate_kn
    from ..textio import read_lines

    t0 = time.time()
    lines = read_lines(args.train)
    sents = [(line.lower() if args.lowercase else line).split() for line in lines]
    if not any(sents):
        raise SeqkitError(f"{args.train}: no words to estimate an n-gram model from "
                          f"({len(lines)} lines, all empty)")
    try:
        lm = estimate_kn(sents, order=args.order)
    except ValueError as e:
        raise SeqkitError(f"{args.train}: {e}") from None
    lm.write_arpa(args.arpa)
    for note in lm.notes:
        print(f"seqkit ngram: warning: {note}", file=sys.stderr)
    counts = " ".join(f"{k}-grams={n}" for k, n in enumerate(lm.counts(), 1))
    discounts = "; ".join(
        f"order {k}: " + " ".join(f"{d:.4f}" for d in ds) for k, ds in enumerate(lm.discounts, 1)
    )
    print(
        f"wrote {args.arpa}: interpolated modified Kneser-Ney, order {args.order}, "
        f"{len(sents)} sentences, vocabulary {len(lm.vocab)} (with <s> </s> <unk>), {counts}; "
        f"discounts D1 D2 D3+ {discounts}; {time.time() - t0:.1f} s"
    )
    return 0


def _cmd_average(args) -> int:
    from pathlib import Path

    from ..train.checkpoint import atomic_save, average_checkpoints

    if args.last is not None:
        if len(args.inputs) != 1 or not Path(args.inputs[0]).is_dir():
            raise SeqkitError("--last K needs exactly one OUTPUT_DIR (a training output folder)")
        found = sorted(Path(args.inputs[0]).glob("ckpt_step*.pt"))
        if len(found) < args.last:
            raise SeqkitError(f"{args.inputs[0]}: {len(found)} ckpt_step*.pt checkpoints, --last "
                              f"{args.last} asked for (train with train.keep_checkpoints >= {args.last})")
        paths = found[-args.last :]
    else:
        paths = [Path(p) for p in args.inputs]
    atomic_save(average_checkpoints(paths), args.out)
    print(f"wrote {args.out}: the mean of {len(paths)} checkpoints: " + " ".join(str(p) for p in paths))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import score

    parser = argparse.ArgumentParser(prog="seqkit", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train (or resume) an experiment, then evaluate it on dev")
    _add_config_args(p)
    p.add_argument("--fresh", action="store_true", help="ignore an existing last.pt and start over")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a checkpoint; write predictions and metrics")
    _add_config_args(p)
    p.add_argument("--ckpt", help="checkpoint (default: OUTPUT_DIR/best.pt)")
    p.add_argument("--split", help="data path/prefix to evaluate (default: the config's dev set)")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("predict", help="predict for raw input lines (file or stdin)")
    _add_config_args(p)
    p.add_argument("--ckpt", help="checkpoint (default: OUTPUT_DIR/best.pt)")
    p.add_argument("--input", default="-", help="input file, or - for stdin (default)")
    p.add_argument("--output", help="write here instead of stdout")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser(
        "ngram",
        help="estimate an interpolated modified Kneser-Ney n-gram LM; write ARPA",
        description="Estimate an interpolated modified Kneser-Ney n-gram LM (Chen & Goodman "
        "1998) from a text file (one sentence per line, whitespace-tokenised) and write it in "
        "ARPA format (readable by seqkit.search.ArpaLM, KenLM, SRILM).",
    )
    p.add_argument("--order", type=int, default=5, help="n (default 5)")
    p.add_argument("--train", required=True, help="training text")
    p.add_argument("--arpa", required=True, help="output ARPA file")
    p.add_argument("--lowercase", action="store_true", help="lowercase the text first")
    p.set_defaults(func=_cmd_ngram)

    p = sub.add_parser("average", help="average the weights of checkpoints (e.g. the last K)")
    p.add_argument("inputs", nargs="+", help="checkpoint files, or with --last one OUTPUT_DIR")
    p.add_argument("--last", type=int, help="the newest K ckpt_step*.pt of OUTPUT_DIR")
    p.add_argument("--out", required=True, help="output checkpoint (evaluate it with --ckpt)")
    p.set_defaults(func=_cmd_average)

    score.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # overrides may also come after options: `seqkit train cfg.yaml --fresh train.lr=0.1`
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args.func(args) or 0)
    except SeqkitError as e:
        print(f"seqkit: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("seqkit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `seqkit score f1 ... | head`: the reader left, not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
