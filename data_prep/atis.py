"""Prepare ATIS (joint slot filling + intent detection) in the SlotGated-SLU layout.

Usage::

    python data_prep/atis.py --out DIR [--src PATH]      # or: python -m data_prep.atis
    python data_prep/atis.py --out DIR --dataset snips   # same loader for SNIPS

With ``--src`` a local copy (``train/dev[/test].{seq.in,seq.out,label}``) is read;
without it the files are downloaded from MiuLab/SlotGated-SLU at commit
61f0307c729b1fad479ef1de94aa5ac5dee601b0 (``valid`` becomes ``dev``) and their sentence
counts are checked (ATIS: train 4478, dev 500, test 893).  The data are validated
(strict UTF-8, parallel files, one BIO tag per token) and written normalized to
``DIR/{train,dev[,test]}.{seq.in,seq.out,label}`` with ``DIR/stats.json``.

Errors print ``data_prep: error: <msg>`` and exit with status 2.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make data_prep and seqkit importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data_prep._common import Fetch, run_main  # noqa: E402

DATASET = "atis"


def main(argv: Sequence[str] | None = None, *, fetch: Fetch | None = None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 2 error)."""
    return run_main(argv, default_dataset=DATASET, prog="data_prep/atis.py", fetch=fetch)


if __name__ == "__main__":
    sys.exit(main())
