"""Prepare WikiText-2 (v1, tokenised ``wiki.*.tokens``; Merity et al. 2016) for word-level LM.

    python data_prep/wikitext2.py --out data/wikitext2 [--src DIR]   # or: python -m data_prep.wikitext2

``--src DIR`` reads ``wiki.{train,valid,test}.tokens`` (the official zip's names) or
``train.txt``/``valid.txt``/``test.txt`` (pytorch/examples' names) from a local copy; the
test file is optional.  Without ``--src`` the files are downloaded from pytorch/examples at
commit 77f55b912142e11fcfdf5b530231fb9c52f181e8 (``word_language_model/data/wikitext-2``).
Writes ``train.txt``, ``valid.txt`` (``test.txt``) and ``stats.json``; blank lines are kept.
Verified counts: train 36,718 lines / 2,051,910 tokens (2,088,628 with one ``<eos>`` per
line), valid 3,760 / 213,886 (217,646), test 4,358 / 241,211 (245,569); vocabulary 33,278
with ``<eos>``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make data_prep and seqkit importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data_prep._common import Fetch  # noqa: E402
from data_prep._lm_text import TextSpec, run_main  # noqa: E402

_BASE = (
    "https://raw.githubusercontent.com/pytorch/examples/"
    "77f55b912142e11fcfdf5b530231fb9c52f181e8/word_language_model/data/wikitext-2"
)

SPEC = TextSpec(
    name="wikitext2",
    title="WikiText-2",
    urls={s: f"{_BASE}/{s}.txt" for s in ("train", "valid", "test")},
    src_names={s: (f"wiki.{s}.tokens", f"{s}.txt") for s in ("train", "valid", "test")},
    expected={"train": (36718, 2051910), "valid": (3760, 213886), "test": (4358, 241211)},
    sha256={
        "train": "9e9fa1ad55b1c2c95b08e37dd8e653f638fac2c6de904b79e813611eefbc985f",
        "valid": "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8",
    },
)


def main(argv: Sequence[str] | None = None, *, fetch: Fetch | None = None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 2 error)."""
    return run_main(SPEC, argv, prog="data_prep/wikitext2.py", fetch=fetch)


if __name__ == "__main__":
    sys.exit(main())
