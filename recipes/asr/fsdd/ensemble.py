"""Closed-vocabulary ensemble: the mean of several models' candidate log-likelihoods (a
product of experts), its transcripts and, against the references, its digit accuracy.

    python recipes/asr/fsdd/ensemble.py --scores exp/asr_fsdd_george{,_seed2,_seed3}/dev_closed.scores.tsv \
        --ref exp/asr_fsdd_george/dev.ref --out exp/asr_fsdd_george_ens

Writes ``OUT/dev_closed.scores.tsv`` (the mean table, which ``pseudo_label.py --scores`` reads),
``OUT/dev_closed.hyp`` and ``OUT/dev_metrics_closed.json`` (``sentence_accuracy``: the share of
utterances whose transcript equals the reference; the references are read for this figure only)
and ``balanced_accuracy``: the same for the labelling of the whole set in which every candidate
labels equally many utterances (``seqkit.search.balanced_assignment``): a transductive figure,
valid only where the classes are known to be balanced, as they are in FSDD.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from seqkit.errors import DataError, SeqkitError
from seqkit.metrics.io import read_text_lines
from seqkit.search import balanced_assignment
from seqkit.tasks.asr import read_candidate_scores, write_candidate_scores


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scores", nargs="+", required=True, help="score tables of the same utterances and candidates")
    p.add_argument("--ref", required=True, help="one reference transcript per utterance (dev.ref)")
    p.add_argument("--out", required=True, help="output folder")
    args = p.parse_args(argv)
    tables = [read_candidate_scores(path) for path in args.scores]
    ids, cands, _ = tables[0]
    for path, (other_ids, other_cands, _) in zip(args.scores[1:], tables[1:]):
        if other_ids != ids or other_cands != cands:
            raise DataError(f"other utterances or candidates than {args.scores[0]}", path)
    refs = [" ".join(r.split()) for r in read_text_lines(args.ref)]
    if len(refs) != len(ids):
        raise DataError(f"{len(refs)} references for the {len(ids)} utterances of {args.scores[0]}", args.ref)

    def accuracy(labels) -> float:  # (N,) candidate indices -> share of transcripts equal to the reference
        return sum(cands[k] == r for k, r in zip(labels.tolist(), refs)) / len(refs)

    mean = sum(t[2] for t in tables) / len(tables)  # (N, K)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_candidate_scores(out / "dev_closed.scores.tsv", ids, cands, mean)
    hyps = [cands[k] for k in mean.argmax(-1).tolist()]
    (out / "dev_closed.hyp").write_text("".join(h + "\n" for h in hyps), encoding="utf-8")
    metrics = {"sentence_accuracy": accuracy(mean.argmax(-1)), "utterances": len(ids), "models": args.scores,
               "single_model_accuracy": [accuracy(t[2].argmax(-1)) for t in tables],
               "balanced_accuracy": accuracy(balanced_assignment(mean))}
    (out / "dev_metrics_closed.json").write_text(json.dumps(metrics, indent=1) + "\n", encoding="utf-8")
    print(f"{out}: ensemble of {len(args.scores)}: accuracy {metrics['sentence_accuracy']:.4f} "
          f"(single models {', '.join(f'{a:.4f}' for a in metrics['single_model_accuracy'])}); "
          f"{metrics['balanced_accuracy']:.4f} with balanced assignment")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except SeqkitError as err:
        raise SystemExit(f"ensemble.py: {err}") from None
