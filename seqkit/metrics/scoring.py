"""Corpus-level scoring: BLEU, chrF, WER, CER, slot F1, accuracy and perplexity.

Every function is pure (no file I/O) and returns a plain, JSON-serialisable ``dict``
whose key ``"score"`` is the corpus figure; the other keys are the breakdown.

* BLEU and chrF come from :mod:`sacrebleu` and follow its argument order
  ``(hyps, refs)`` where ``refs`` is a list of reference *streams*; their scores are
  on a 0-100 scale and come with sacrebleu's reproducibility signature.
* WER and CER come from :mod:`jiwer` and follow its order ``(refs, hyps)``; their
  scores are fractions (0.25 means 25 %).
* Slot F1 comes from :mod:`seqeval` in its default (conlleval-compatible) mode.

Inputs are checked before scoring: an empty input or a length mismatch between
references and hypotheses raises :class:`~seqkit.errors.DataError`.  The optional
``ref_name`` / ``hyp_name`` arguments (file paths, usually) only serve to make those
messages point at the right files.
"""

from __future__ import annotations

import math
import os
import unicodedata
import warnings
from collections.abc import Sequence

from ..errors import DataError, SeqkitError

__all__ = ["accuracy", "alignment_view", "bleu", "cer", "chrf", "perplexity", "slot_f1", "wer"]


# --------------------------------------------------------------------------- checks


def _lines(n: int) -> str:
    return f"{n} line" if n == 1 else f"{n} lines"


def _check_pair(refs: Sequence, hyps: Sequence, ref_name: str, hyp_name: str) -> None:
    """Raise :class:`DataError` unless ``refs`` and ``hyps`` are non-empty and line-aligned."""
    if len(refs) == 0:
        raise DataError(f"{ref_name} is empty")
    if len(hyps) == 0:
        raise DataError(f"{hyp_name} is empty")
    if len(refs) != len(hyps):
        longer = hyp_name if len(hyps) > len(refs) else ref_name
        where = os.path.isfile(longer)  # files: point at the longer one's first unmatched line
        raise DataError(
            f"line counts differ: {ref_name} has {_lines(len(refs))} "
            f"but {hyp_name} has {_lines(len(hyps))}",
            longer if where else None,
            min(len(refs), len(hyps)) + 1 if where else None,
        )


def _check_streams(
    hyps: Sequence[str],
    refs: Sequence[Sequence[str]],
    hyp_name: str,
    ref_names: Sequence[str] | None,
) -> list[list[str]]:
    """Validate sacrebleu-style reference streams; return them as lists."""
    if isinstance(refs, str) or any(isinstance(stream, str) for stream in refs):
        raise TypeError("refs must be a list of reference streams, e.g. [ref_lines]")
    if len(refs) == 0:
        raise DataError("no reference given")
    if ref_names is None:
        ref_names = ["reference"] if len(refs) == 1 else [f"reference {k + 1}" for k in range(len(refs))]
    if len(ref_names) != len(refs):
        raise ValueError(f"{len(ref_names)} reference names for {len(refs)} reference streams")
    for stream, name in zip(refs, ref_names):
        _check_pair(stream, hyps, name, hyp_name)
    return [list(stream) for stream in refs]


# --------------------------------------------------------------------------- sacrebleu


def bleu(
    hyps: Sequence[str],
    refs: Sequence[Sequence[str]],
    tokenize: str | None = None,
    lowercase: bool = False,
    *,
    hyp_name: str = "hypothesis",
    ref_names: Sequence[str] | None = None,
) -> dict:
    """Corpus BLEU (0-100) with sacrebleu.

    ``refs`` holds one or more reference streams, each line-aligned with ``hyps``
    (``refs=[ref_lines]`` for a single reference).  ``tokenize`` is a sacrebleu
    tokenizer name (``None``: sacrebleu's default, ``"13a"``).
    """
    from sacrebleu.metrics import BLEU

    streams = _check_streams(hyps, refs, hyp_name, ref_names)
    if tokenize is not None and tokenize not in BLEU.TOKENIZERS:
        raise SeqkitError(
            f"unknown BLEU tokenizer {tokenize!r} (choose from {', '.join(sorted(BLEU.TOKENIZERS))})"
        )
    try:
        metric = BLEU(tokenize=tokenize, lowercase=lowercase)
    except (ImportError, RuntimeError) as e:  # e.g. ja-mecab without its extra package
        raise SeqkitError(f"BLEU tokenizer {tokenize!r} is not available: {e}") from None
    result = metric.corpus_score(list(hyps), streams)
    return {
        "score": float(result.score),
        "signature": str(metric.get_signature()),
        "precisions": [float(p) for p in result.precisions],
        "bp": float(result.bp),
        "ratio": float(result.ratio),
        "sys_len": int(result.sys_len),
        "ref_len": int(result.ref_len),
        "counts": [int(c) for c in result.counts],
        "totals": [int(t) for t in result.totals],
        "nrefs": len(streams),
        "sentences": len(hyps),
    }


def chrf(
    hyps: Sequence[str],
    refs: Sequence[Sequence[str]],
    word_order: int = 0,
    *,
    hyp_name: str = "hypothesis",
    ref_names: Sequence[str] | None = None,
) -> dict:
    """Corpus chrF (0-100) with sacrebleu; ``word_order=2`` gives chrF++."""
    from sacrebleu.metrics import CHRF

    streams = _check_streams(hyps, refs, hyp_name, ref_names)
    if word_order < 0:
        raise SeqkitError(f"chrF word order must be >= 0, got {word_order}")
    metric = CHRF(word_order=word_order)
    result = metric.corpus_score(list(hyps), streams)
    return {
        "score": float(result.score),
        "signature": str(metric.get_signature()),
        "name": result.name,
        "char_order": int(result.char_order),
        "word_order": int(result.word_order),
        "beta": int(result.beta),
        "nrefs": len(streams),
        "sentences": len(hyps),
    }


# --------------------------------------------------------------------------- jiwer

# One aligned span: (op, ref_start, ref_end, hyp_start, hyp_end), op as in jiwer's
# AlignmentChunk.type: "equal", "substitute", "delete" or "insert".
_Chunk = tuple[str, int, int, int, int]

_OP_MARK = {"equal": " ", "substitute": "S", "delete": "D", "insert": "I"}


def _display_width(text: str) -> int:
    """Terminal columns taken by ``text`` (East Asian wide characters count twice)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _display_width(text))


def alignment_view(
    ref: Sequence[str], hyp: Sequence[str], chunks: Sequence[_Chunk], sep: str = " "
) -> str:
    """A three-line ``REF:`` / ``HYP:`` / operations view of one aligned utterance.

    Gaps are shown as ``*``; the third line marks each column with ``S``
    (substitution), ``D`` (deletion), ``I`` (insertion) or a blank (match).
    ``sep`` joins columns: ``" "`` for words, ``""`` for characters.
    """
    columns: list[tuple[str, str, str]] = []
    for op, rs, re_, hs, he in chunks:
        mark = _OP_MARK[op]
        if op in ("equal", "substitute"):
            columns += [(r, h, mark) for r, h in zip(ref[rs:re_], hyp[hs:he])]
        elif op == "delete":
            columns += [(r, "", mark) for r in ref[rs:re_]]
        else:  # insert
            columns += [("", h, mark) for h in hyp[hs:he]]
    ref_cells, hyp_cells, op_cells = [], [], []
    for r, h, mark in columns:
        width = max(_display_width(r), _display_width(h), 1)
        ref_cells.append(_pad(r or "*" * width, width))
        hyp_cells.append(_pad(h or "*" * width, width))
        op_cells.append(_pad(mark, width))
    return "\n".join(
        (prefix + sep.join(cells)).rstrip()
        for prefix, cells in (("REF: ", ref_cells), ("HYP: ", hyp_cells), ("     ", op_cells))
    )


def _edit_rate(
    refs: Sequence[str],
    hyps: Sequence[str],
    unit: str,
    worst: int,
    ref_name: str,
    hyp_name: str,
) -> dict:
    """Shared body of :func:`wer` (``unit="words"``) and :func:`cer` (``unit="chars"``)."""
    import jiwer

    _check_pair(refs, hyps, ref_name, hyp_name)
    if worst < 0:
        raise SeqkitError(f"worst must be >= 0, got {worst}")
    if unit == "words":
        # Words are str.split() tokens (jiwer alone would keep "a\tb" as one word).
        ref_in = [" ".join(r.split()) for r in refs]
        hyp_in = [" ".join(h.split()) for h in hyps]
        process, tokens = jiwer.process_words, str.split
    else:
        ref_in, hyp_in = list(refs), list(hyps)
        process, tokens = jiwer.process_characters, lambda s: list(s.strip())

    # jiwer (< 4) refuses empty references, so those lines are scored here, as sclite
    # does: every hypothesis token on them is an insertion.
    utts: list[tuple[list[str], list[str], list[_Chunk]]] = []
    for h in hyp_in:
        hyp_tokens = tokens(h)
        utts.append(([], hyp_tokens, [("insert", 0, 0, 0, len(hyp_tokens))] if hyp_tokens else []))
    scored = [i for i, r in enumerate(ref_in) if r.strip()]
    if scored:
        out = process([ref_in[i] for i in scored], [hyp_in[i] for i in scored])
        for k, i in enumerate(scored):
            chunks = [
                (c.type, c.ref_start_idx, c.ref_end_idx, c.hyp_start_idx, c.hyp_end_idx)
                for c in out.alignments[k]
            ]
            utts[i] = (list(out.references[k]), list(out.hypotheses[k]), chunks)

    totals = {"substitute": 0, "delete": 0, "insert": 0, "equal": 0}
    per_utt: list[dict[str, int]] = []
    for _, _, chunks in utts:
        counts = {"substitute": 0, "delete": 0, "insert": 0, "equal": 0}
        for op, rs, re_, hs, he in chunks:
            counts[op] += max(re_ - rs, he - hs)
        per_utt.append(counts)
        for op, n in counts.items():
            totals[op] += n
    n_ref = totals["equal"] + totals["substitute"] + totals["delete"]
    if n_ref == 0:
        raise DataError(f"{ref_name}: every reference line is empty; the error rate is undefined")
    errors = totals["substitute"] + totals["delete"] + totals["insert"]

    n_errors = [c["substitute"] + c["delete"] + c["insert"] for c in per_utt]
    ranked = sorted((i for i in range(len(utts)) if n_errors[i] > 0), key=lambda i: (-n_errors[i], i))
    sep = " " if unit == "words" else ""
    worst_list = [
        {
            "index": i,
            "errors": n_errors[i],
            "substitutions": per_utt[i]["substitute"],
            "deletions": per_utt[i]["delete"],
            "insertions": per_utt[i]["insert"],
            "ref": refs[i],
            "hyp": hyps[i],
            "alignment": alignment_view(*utts[i], sep=sep),
        }
        for i in ranked[:worst]
    ]
    return {
        "score": errors / n_ref,
        "errors": errors,
        "substitutions": totals["substitute"],
        "deletions": totals["delete"],
        "insertions": totals["insert"],
        "hits": totals["equal"],
        f"ref_{unit}": n_ref,
        f"hyp_{unit}": totals["equal"] + totals["substitute"] + totals["insert"],
        "sentences": len(refs),
        "empty_refs": len(refs) - len(scored),
        "worst": worst_list,
    }


def wer(
    refs: Sequence[str],
    hyps: Sequence[str],
    worst: int = 5,
    *,
    ref_name: str = "reference",
    hyp_name: str = "hypothesis",
) -> dict:
    """Corpus word error rate (a fraction) with jiwer: ``(S + D + I) / reference words``.

    Words are whitespace-separated tokens.  A reference line that is empty (or only
    whitespace) is scored like sclite does: each hypothesis word on it counts as an
    insertion.  Only if *every* reference line is empty is :class:`DataError` raised.
    ``worst`` lists up to that many utterances with the most errors, each with a
    REF/HYP/operations alignment view.  Keys: ``score``, ``substitutions``,
    ``deletions``, ``insertions``, ``hits``, ``ref_words``, ``hyp_words``, ``errors``,
    ``sentences``, ``empty_refs``, ``worst``.
    """
    return _edit_rate(refs, hyps, "words", worst, ref_name, hyp_name)


def cer(
    refs: Sequence[str],
    hyps: Sequence[str],
    worst: int = 5,
    *,
    ref_name: str = "reference",
    hyp_name: str = "hypothesis",
) -> dict:
    """Corpus character error rate (a fraction) with jiwer.

    Lines are stripped and every remaining character, spaces included, is a unit (as in
    ``jiwer.cer``).  Empty references are handled as in :func:`wer`.  Same keys as
    :func:`wer` with ``ref_chars`` / ``hyp_chars``.
    """
    return _edit_rate(refs, hyps, "chars", worst, ref_name, hyp_name)


# --------------------------------------------------------------------------- seqeval


def slot_f1(
    refs: Sequence[Sequence[str]],
    hyps: Sequence[Sequence[str]],
    *,
    ref_name: str = "reference",
    hyp_name: str = "hypothesis",
) -> dict:
    """Entity-level (slot) micro F1 over BIO tag sequences with seqeval (conlleval mode).

    Each hypothesis sequence must have as many tags as its reference, else
    :class:`DataError` names the 1-based line.  ``score`` is the micro-averaged F1 as
    a fraction; ``per_label`` maps each slot label to precision/recall/f1/support.
    With no slot in either side the scores are 0.
    """
    from seqeval.metrics import classification_report

    _check_pair(refs, hyps, ref_name, hyp_name)
    for i, (r, h) in enumerate(zip(refs, hyps), start=1):
        if len(r) != len(h):
            raise DataError(
                f"{len(h)} tags but the reference ({ref_name}:{i}) has {len(r)}", hyp_name, i
            )
    with warnings.catch_warnings():
        # zero-division warnings for labels never predicted / never in the reference
        warnings.filterwarnings("ignore", message=".*ill-defined.*")
        warnings.filterwarnings("ignore", category=RuntimeWarning)
        report = classification_report(
            [list(r) for r in refs], [list(h) for h in hyps], output_dict=True
        )
    micro = report["micro avg"]
    per_label = {
        label: {
            "precision": float(v["precision"]),
            "recall": float(v["recall"]),
            "f1": float(v["f1-score"]),
            "support": int(v["support"]),
        }
        for label, v in sorted(report.items())
        if not label.endswith(" avg")
    }
    return {
        "score": float(micro["f1-score"]),
        "precision": float(micro["precision"]),
        "recall": float(micro["recall"]),
        "support": int(micro["support"]),
        "sentences": len(refs),
        "per_label": per_label,
    }


# --------------------------------------------------------------------------- simple


def accuracy(
    refs: Sequence[str],
    hyps: Sequence[str],
    *,
    ref_name: str = "reference",
    hyp_name: str = "hypothesis",
) -> dict:
    """Fraction of lines whose hypothesis equals the reference (surrounding whitespace ignored)."""
    _check_pair(refs, hyps, ref_name, hyp_name)
    correct = sum(r.strip() == h.strip() for r, h in zip(refs, hyps))
    return {"score": correct / len(refs), "correct": correct, "total": len(refs)}


def perplexity(total_nll: float, n_tokens: int) -> dict:
    """Perplexity ``exp(total_nll / n_tokens)`` from a summed natural-log NLL."""
    if n_tokens <= 0:
        raise DataError(f"perplexity needs at least one token, got {n_tokens}")
    per_token = float(total_nll) / n_tokens
    try:
        score = math.exp(per_token)
    except OverflowError:
        score = math.inf
    return {"score": score, "nll_per_token": per_token, "tokens": int(n_tokens)}
