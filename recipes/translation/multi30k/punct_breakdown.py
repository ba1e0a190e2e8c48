"""BLEU of the sentences whose source ends without final punctuation, against the rest.

Usage (from the repository root, after ``seqkit evaluate`` wrote ``OUTPUT_DIR/dev.hyp``)::

    python recipes/translation/multi30k/punct_breakdown.py --src data/multi30k/val.de \
        --ref data/multi30k/val.en --hyp exp/mt_de_en/dev.hyp

Prints, per group, the number of sentences, sacreBLEU and how many outputs are over-long
(more than 1.5 x the reference words + 3: the repeating, degenerate outputs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from seqkit.errors import SeqkitError  # noqa: E402
from seqkit.metrics import bleu  # noqa: E402
from seqkit.metrics.io import read_text_lines  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--src", required=True)
    p.add_argument("--ref", required=True)
    p.add_argument("--hyp", required=True)
    args = p.parse_args(argv)
    try:
        src, ref, hyp = (read_text_lines(f) for f in (args.src, args.ref, args.hyp))
    except SeqkitError as e:
        print(f"punct_breakdown: error: {e}", file=sys.stderr)
        return 2
    if not len(src) == len(ref) == len(hyp):
        print(f"punct_breakdown: error: line counts differ: {args.src} {len(src)}, {args.ref} {len(ref)}, "
              f"{args.hyp} {len(hyp)}", file=sys.stderr)
        return 2
    bare = [not s.rstrip().endswith((".", "!", "?")) for s in src]
    print("group\tsentences\tBLEU\tover-long outputs")
    for name, want in (("no final punctuation", True), ("final punctuation", False)):
        idx = [i for i, b in enumerate(bare) if b == want]
        if not idx:
            continue
        score = bleu([hyp[i] for i in idx], [[ref[i] for i in idx]])["score"]
        long = sum(len(hyp[i].split()) > 1.5 * len(ref[i].split()) + 3 for i in idx)
        print(f"{name}\t{len(idx)}\t{score:.2f}\t{long}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
