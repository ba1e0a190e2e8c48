"""The ``seqkit`` command line.

    seqkit train CONFIG [key.sub=value ...] [--fresh]
    seqkit evaluate CONFIG [key.sub=value ...] [--ckpt PATH] [--split PREFIX]
    seqkit predict CONFIG [key.sub=value ...] [--ckpt PATH] [--input FILE|-] [--output FILE]
    seqkit score {bleu,chrf,wer,cer,f1,acc} --ref REF --hyp HYP [--json]

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
