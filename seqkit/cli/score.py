"""``seqkit score``: score a hypothesis file against reference file(s).

    seqkit score bleu --ref REF [--ref REF2 ...] --hyp HYP [--tokenize 13a] [--lowercase] [--json]
    seqkit score chrf --ref REF [--ref REF2 ...] --hyp HYP [--word-order 0] [--json]
    seqkit score wer  --ref REF --hyp HYP [--worst 5] [--json]
    seqkit score cer  --ref REF --hyp HYP [--worst 5] [--json]
    seqkit score f1   --ref TAGS --hyp TAGS [--json]
    seqkit score acc  --ref LABELS --hyp LABELS [--json]
    seqkit score ppl  --arpa LM.arpa --text FILE [--lowercase] [--json]

Files are line-aligned UTF-8 text (CRLF tolerated).  For ``f1`` each line holds
whitespace-separated BIO tags.  Without ``--json`` a human-readable report is printed;
with it, exactly one JSON object whose ``"score"`` is the corpus figure.
"""

from __future__ import annotations

import argparse
import json

from ..metrics import io, scoring

_METRICS = {
    "bleu": "corpus BLEU (sacrebleu), 0-100",
    "chrf": "corpus chrF (sacrebleu), 0-100",
    "wer": "word error rate (jiwer), a fraction",
    "cer": "character error rate (jiwer), a fraction",
    "f1": "slot (entity) micro F1 over BIO tags (seqeval), a fraction",
    "acc": "line-level exact-match accuracy, a fraction",
}


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``score`` and its metric sub-commands on ``subparsers``."""
    parser = subparsers.add_parser(
        "score",
        help="score a hypothesis file against reference file(s)",
        description="Score a hypothesis file against line-aligned reference file(s).",
    )
    metrics = parser.add_subparsers(dest="metric", required=True, metavar="METRIC")
    for name, help_text in _METRICS.items():
        p = metrics.add_parser(name, help=help_text, description=help_text)
        multi = name in ("bleu", "chrf")
        p.add_argument(
            "--ref",
            required=True,
            action="append" if multi else "store",
            metavar="PATH",
            help="reference file" + (" (repeat for multiple references)" if multi else ""),
        )
        p.add_argument("--hyp", required=True, metavar="PATH", help="hypothesis file")
        p.add_argument("--json", action="store_true", help="print one JSON object instead of a report")
        if name == "bleu":
            p.add_argument("--tokenize", default="13a", metavar="NAME",
                           help="sacrebleu tokenizer: 13a (default), intl, zh, char, none, ...")
            p.add_argument("--lowercase", action="store_true", help="case-insensitive BLEU")
        elif name == "chrf":
            p.add_argument("--word-order", type=int, default=0, metavar="N",
                           help="word n-gram order: 0 for chrF (default), 2 for chrF++")
        elif name in ("wer", "cer"):
            p.add_argument("--worst", type=int, default=5, metavar="N",
                           help="show the N utterances with the most errors (default 5)")
        p.set_defaults(func=run)
    p = metrics.add_parser(
        "ppl",
        help="perplexity of an ARPA n-gram LM on a text file",
        description="Perplexity of an ARPA back-off n-gram model on a text file: each line is "
        "a sentence scored as <s> w_1 .. w_n </s> (n + 1 tokens; words outside the model's "
        "vocabulary are scored as <unk> and counted).  For a neural LM checkpoint use "
        "`seqkit evaluate CONFIG --split FILE`.",
    )
    p.add_argument("--arpa", required=True, metavar="PATH", help="ARPA language model")
    p.add_argument("--text", required=True, metavar="PATH", help="whitespace-tokenised text")
    p.add_argument("--lowercase", action="store_true", help="lowercase the text first")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a report")
    p.set_defaults(func=run_ppl)
    return parser


def run_ppl(args: argparse.Namespace) -> int:
    """Handler for ``seqkit score ppl``."""
    from ..models.ngram import sentence_perplexity
    from ..search.lm_scorer import ArpaLM

    lm = ArpaLM.from_file(args.arpa)
    lines = io.read_text_lines(args.text)  # an empty file is an error, as for the other metrics
    sents = [(line.lower() if args.lowercase else line).split() for line in lines]
    result = {"arpa": args.arpa, "text": args.text, "order": lm.order,
              **sentence_perplexity(lm, sents)}
    if args.json:
        print(json.dumps({"metric": "ppl", **result}))
    else:
        print(
            f"ppl = {result['score']:.2f} (order {lm.order}, {result['tokens']} tokens incl. "
            f"</s> in {result['sentences']} sentences, {result['oov']} OOV scored as <unk>)"
        )
    return 0


def compute(args: argparse.Namespace) -> dict:
    """Read the files named in ``args`` and return the metric's result dict."""
    metric = args.metric
    if metric in ("bleu", "chrf"):
        hyps = io.read_text_lines(args.hyp)
        refs = [io.read_text_lines(path) for path in args.ref]
        names = {"hyp_name": args.hyp, "ref_names": list(args.ref)}
        if metric == "bleu":
            return scoring.bleu(hyps, refs, tokenize=args.tokenize, lowercase=args.lowercase, **names)
        return scoring.chrf(hyps, refs, word_order=args.word_order, **names)

    names = {"ref_name": args.ref, "hyp_name": args.hyp}
    if metric == "f1":
        return scoring.slot_f1(io.read_tag_lines(args.ref), io.read_tag_lines(args.hyp), **names)
    refs, hyps = io.read_text_lines(args.ref), io.read_text_lines(args.hyp)
    if metric == "wer":
        return scoring.wer(refs, hyps, worst=args.worst, **names)
    if metric == "cer":
        return scoring.cer(refs, hyps, worst=args.worst, **names)
    if metric == "acc":
        return scoring.accuracy(refs, hyps, **names)
    raise ValueError(f"unknown metric {metric!r}")


def format_report(metric: str, result: dict) -> str:
    """The human-readable report for one metric's result dict."""
    if metric == "bleu":
        precisions = "/".join(f"{p:.1f}" for p in result["precisions"])
        return (
            f"BLEU = {result['score']:.2f} {precisions} (BP = {result['bp']:.3f} "
            f"ratio = {result['ratio']:.3f} hyp_len = {result['sys_len']} "
            f"ref_len = {result['ref_len']}) signature: {result['signature']}"
        )
    if metric == "chrf":
        return f"{result['name']} = {result['score']:.2f} signature: {result['signature']}"
    if metric in ("wer", "cer"):
        unit = "words" if metric == "wer" else "chars"
        lines = [
            f"{metric.upper()} = {result['score']:.4f} ({100 * result['score']:.2f}%) "
            f"S = {result['substitutions']} D = {result['deletions']} I = {result['insertions']} "
            f"hits = {result['hits']} ref_{unit} = {result[f'ref_{unit}']} "
            f"sentences = {result['sentences']}"
        ]
        if result["empty_refs"]:
            lines.append(
                f"{result['empty_refs']} empty reference line(s): their hypothesis {unit} "
                "count as insertions"
            )
        if result["worst"]:
            lines.append("")
            lines.append(f"worst {len(result['worst'])} utterance(s):")
            for w in result["worst"]:
                lines.append(
                    f"line {w['index'] + 1}: {w['errors']} error(s) "
                    f"(S = {w['substitutions']} D = {w['deletions']} I = {w['insertions']})"
                )
                lines.append(w["alignment"])
        return "\n".join(lines)
    if metric == "f1":
        lines = [
            f"slot F1 = {result['score']:.4f} precision = {result['precision']:.4f} "
            f"recall = {result['recall']:.4f} (reference slots = {result['support']}, "
            f"sentences = {result['sentences']})"
        ]
        if result["per_label"]:
            width = max(5, *(len(label) for label in result["per_label"]))
            lines.append("")
            lines.append(f"{'label':<{width}}  precision  recall      f1  support")
            for label, v in result["per_label"].items():
                lines.append(
                    f"{label:<{width}}  {v['precision']:9.4f}  {v['recall']:6.4f}  "
                    f"{v['f1']:6.4f}  {v['support']:7d}"
                )
        return "\n".join(lines)
    if metric == "acc":
        return f"accuracy = {result['score']:.4f} ({result['correct']}/{result['total']} correct)"
    raise ValueError(f"unknown metric {metric!r}")


def run(args: argparse.Namespace) -> int:
    """Handler for ``seqkit score METRIC``: print the report (or JSON); return 0."""
    result = compute(args)
    if args.json:
        print(json.dumps({"metric": args.metric, **result}))
    else:
        print(format_report(args.metric, result))
    return 0
