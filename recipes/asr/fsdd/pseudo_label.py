"""Self-training manifest: the training manifest plus the held-out speaker's recordings labelled
with a first model's transcripts (transductive, unsupervised speaker adaptation: the held-out
speaker's reference transcripts are never read).

    python recipes/asr/fsdd/pseudo_label.py --train data/fsdd/heldout_george/train.jsonl \
        --dev data/fsdd/heldout_george/dev.jsonl --hyp exp/asr_fsdd_george/dev.hyp \
        --out exp/asr_fsdd_george/self_train.jsonl

``--hyp`` holds one transcript per line of ``--dev`` (what ``seqkit evaluate`` writes as
``dev.hyp``); an empty transcript is skipped and counted.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from seqkit.data.manifest import read_manifest, write_manifest
from seqkit.errors import DataError, SeqkitError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", required=True, help="labelled training manifest (JSONL)")
    p.add_argument("--dev", required=True, help="manifest of the recordings to pseudo-label")
    p.add_argument("--hyp", required=True, help="one transcript per --dev line")
    p.add_argument("--out", required=True, help="combined manifest to write")
    args = p.parse_args(argv)
    train = read_manifest(args.train, allow_outside=True)
    dev = read_manifest(args.dev, allow_outside=True)
    hyps = Path(args.hyp).read_text(encoding="utf-8").splitlines()
    if len(hyps) != len(dev):
        raise DataError(f"{len(hyps)} transcripts for the {len(dev)} utterances of {args.dev}", args.hyp)
    pseudo = [dataclasses.replace(u, id=f"pseudo_{u.id}", text=h.strip())
              for u, h in zip(dev, hyps) if h.strip()]
    skipped = len(dev) - len(pseudo)
    n = write_manifest(args.out, [*train, *pseudo])
    print(f"{args.out}: {len(train)} labelled + {len(pseudo)} pseudo-labelled utterances ({n} in all); "
          f"{skipped} empty transcripts skipped")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except SeqkitError as err:
        raise SystemExit(f"pseudo_label.py: {err}") from None
