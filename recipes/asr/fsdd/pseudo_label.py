"""Self-training manifest: the training manifest plus the held-out speaker's recordings labelled
with a first model's transcripts (transductive, unsupervised speaker adaptation: the held-out
speaker's reference transcripts are never read).

    python recipes/asr/fsdd/pseudo_label.py --train data/fsdd/heldout_george/train.jsonl \
        --dev data/fsdd/heldout_george/dev.jsonl --scores exp/asr_fsdd_george/dev_closed.scores.tsv \
        --keep 0.6 --out exp/asr_fsdd_george_st/self_train.jsonl

The labels come from ``--hyp`` (one transcript per line of ``--dev``, what ``seqkit evaluate``
writes as ``dev.hyp``; an empty transcript is skipped and counted) or from ``--scores`` (the
closed-vocabulary score table that ``seqkit evaluate ... decode.method=ctc_closed`` writes as
``dev.scores.tsv``, or an ensemble's from ``ensemble.py``): each recording gets its best
candidate.  With scores, ``--keep F`` keeps only the share F of each candidate's recordings
with the largest margin between the best and the second-best log-likelihood: class-balanced
self-training (Zou et al. 2018, "Unsupervised Domain Adaptation for Semantic Segmentation via
Class-Balanced Self-Training"), so that neither a digit the model over-predicts nor its least
certain labels dominate the next round.  ``--balanced`` labels the recordings jointly instead of
one by one: the labelling of highest total log-likelihood in which every candidate labels the same
number of recordings (``seqkit.search.balanced_assignment``; FSDD speakers say each digit equally
often), and the margin is then the assigned candidate's score minus the best other one's.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections import Counter
from pathlib import Path

import torch

from seqkit.data.manifest import read_manifest, write_manifest
from seqkit.errors import DataError, SeqkitError
from seqkit.search import balanced_assignment
from seqkit.tasks.asr import read_candidate_scores


def select(labels: list[int], margins: list[float], keep: float) -> list[bool]:
    """Per label, the ``ceil(keep * n)`` of its ``n`` items with the largest margins."""
    chosen = [False] * len(labels)
    for label in set(labels):
        items = sorted((i for i, lab in enumerate(labels) if lab == label), key=lambda i: -margins[i])
        for i in items[: math.ceil(keep * len(items))]:
            chosen[i] = True
    return chosen


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", required=True, help="labelled training manifest (JSONL)")
    p.add_argument("--dev", required=True, help="manifest of the recordings to pseudo-label")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--hyp", help="one transcript per --dev line")
    src.add_argument("--scores", help="closed-vocabulary score table (TSV) of the --dev recordings")
    p.add_argument("--keep", type=float, default=1.0,
                   help="with --scores: share of each candidate's recordings kept, by margin (default 1: all)")
    p.add_argument("--balanced", action="store_true",
                   help="with --scores: label jointly, each candidate the same number of recordings")
    p.add_argument("--out", required=True, help="combined manifest to write")
    args = p.parse_args(argv)
    if not 0 < args.keep <= 1:
        p.error(f"--keep must be in (0, 1], got {args.keep}")
    if args.hyp is not None and (args.keep < 1 or args.balanced):
        p.error("--keep and --balanced need --scores")
    train = read_manifest(args.train, allow_outside=True)
    dev = read_manifest(args.dev, allow_outside=True)
    if args.hyp is not None:
        hyps = Path(args.hyp).read_text(encoding="utf-8").splitlines()
        if len(hyps) != len(dev):
            raise DataError(f"{len(hyps)} transcripts for the {len(dev)} utterances of {args.dev}", args.hyp)
        chosen = [bool(h.strip()) for h in hyps]
        why = "empty transcripts"
    else:
        ids, cands, scores = read_candidate_scores(args.scores)
        for line, (i, u) in enumerate(zip(ids, dev), 2):
            if i != u.id:
                raise DataError(f"utterance {i!r} where {args.dev} has {u.id!r} (the tables must follow the "
                                "manifest's order)", args.scores, line)
        if len(ids) != len(dev):
            raise DataError(f"{len(ids)} rows for the {len(dev)} utterances of {args.dev}", args.scores)
        if args.balanced:
            assigned = balanced_assignment(scores)  # (N,)
        else:
            assigned = scores.argmax(dim=1)
        mine = scores.gather(1, assigned[:, None]).squeeze(1)  # (N,)
        others = scores.scatter(1, assigned[:, None], float("-inf")).amax(dim=1)  # (N,); -inf with one candidate
        labels = assigned.tolist()
        margins = mine - others  # (N,); inf with a single candidate
        # NaN where every candidate is -inf (the input too short for all): the least certain
        margins = torch.where(margins.isnan(), float("-inf"), margins).tolist()
        hyps = [cands[k] for k in labels]
        chosen = select(labels, margins, args.keep)
        why = f"below the margin of the best {args.keep:g} of their label"
        counts = Counter(h for h, c in zip(hyps, chosen) if c)
        print("kept per label: " + ", ".join(f"{c} {counts[c]}/{hyps.count(c)}" for c in cands))
    pseudo = [dataclasses.replace(u, id=f"pseudo_{u.id}", text=h.strip())
              for u, h, c in zip(dev, hyps, chosen) if c]
    skipped = len(dev) - len(pseudo)
    n = write_manifest(args.out, [*train, *pseudo])
    print(f"{args.out}: {len(train)} labelled + {len(pseudo)} pseudo-labelled utterances ({n} in all); "
          f"{skipped} {why} skipped")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except SeqkitError as err:
        raise SystemExit(f"pseudo_label.py: {err}") from None
