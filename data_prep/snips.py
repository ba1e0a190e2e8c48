"""Prepare SNIPS (joint slot filling + intent detection) in the SlotGated-SLU layout.

A thin wrapper around the ATIS loader (see ``data_prep/atis.py``) with ``--dataset snips``
as the default::

    python data_prep/snips.py --out DIR [--src PATH]     # or: python -m data_prep.snips

Without ``--src`` the files are downloaded from MiuLab/SlotGated-SLU at commit
61f0307c729b1fad479ef1de94aa5ac5dee601b0 (``data/snips``; counts 13084 / 700 / 700).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make data_prep and seqkit importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data_prep._common import Fetch, run_main  # noqa: E402

DATASET = "snips"


def main(argv: Sequence[str] | None = None, *, fetch: Fetch | None = None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 2 error)."""
    return run_main(argv, default_dataset=DATASET, prog="data_prep/snips.py", fetch=fetch)


if __name__ == "__main__":
    sys.exit(main())
