"""Prepare YESNO (Kaldi's ``waves_yesno``) as JSONL manifests: a tiny smoke-test ASR corpus.

Usage::

    python data_prep/yesno.py --src ../shared/data/yesno --out data/yesno   # local copy
    python data_prep/yesno.py --out data/yesno                              # download
    python -m data_prep.yesno ... [--dev-files 6]

``--src DIR`` holds ``waves_yesno/*.wav`` (``DIR`` may also be the ``waves_yesno`` folder
itself): 8 kHz mono 16-bit PCM, one speaker saying eight words "yes"/"no" per file; the
transcript is the file name, ``1`` = ``YES``, ``0`` = ``NO``, e.g. ``0_1_1_0_0_0_1_1.wav`` ->
``NO YES YES NO NO NO YES YES``.  Without ``--src`` the OpenSLR archive (resource SLR1)
https://www.openslr.org/resources/1/waves_yesno.tar.gz is downloaded and extracted to
``OUT/raw/waves_yesno/`` (reused by later runs).  A ``.wav`` whose name is not ``0``/``1``
digits joined by ``_`` is an error naming the file, as is an unreadable one; other files
(the archive's README) are ignored.

Split: dev = the last ``--dev-files`` (default 6) files in sorted file-name order, train =
the rest.  The corpus has a single speaker (``speaker`` = ``"yesno"``), so the split is
**not** speaker-disjoint; it only separates recordings.

Outputs in ``OUT``: ``train.jsonl``, ``dev.jsonl`` (format of :mod:`seqkit.data.manifest`,
``id`` = file name without ``.wav``, absolute ``path``) and ``stats.json`` (utterances,
minutes, words, YES/NO counts, dev transcripts also in train).
Verified on the local copy (the 31 files starting with ``0_``; the ``1_*`` files are
withheld in this project): 31 files, 3.18 minutes, 248 words; train 25 files (2.58 min),
dev 6 (0.60 min).
Errors print ``data_prep: error: <msg>`` and exit with status 2.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make data_prep and seqkit importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data_prep._common import DEFAULT_TIMEOUT, Fetch  # noqa: E402
from data_prep._speech import (  # noqa: E402
    _stderr,
    audio_info,
    check_out,
    resolve_source,
    run_cli,
    split_stats,
    write_json,
)
from seqkit.data.manifest import Utterance, write_manifest  # noqa: E402
from seqkit.errors import DataError, SeqkitError  # noqa: E402

URL = "https://www.openslr.org/resources/1/waves_yesno.tar.gz"
SPEAKER = "yesno"
DEFAULT_DEV_FILES = 6
_NAME_RE = re.compile(r"^[01](?:_[01])*\.wav$")


def waves_dir(src: Path) -> Path:
    if (src / "waves_yesno").is_dir():
        return src / "waves_yesno"
    if src.is_dir() and any(src.glob("*.wav")):
        return src
    raise SeqkitError(f"no waves_yesno/ folder (and no .wav files) in {src}")


def scan(wav_dir: Path) -> list[Utterance]:
    """One utterance per ``.wav``, in sorted file-name order."""
    utts = []
    for p in sorted(wav_dir.iterdir(), key=lambda p: p.name):
        if p.suffix.lower() != ".wav":
            continue
        if not _NAME_RE.match(p.name):
            raise DataError("file name is not 0/1 labels joined by '_' (e.g. 0_1_1_0_0_0_1_1.wav)", p)
        info = audio_info(p)
        text = " ".join("YES" if b == "1" else "NO" for b in p.stem.split("_"))
        utts.append(Utterance(p.stem, str(p.resolve()), info.frames / info.samplerate, text, SPEAKER))
    if not utts:
        raise DataError("no .wav files", wav_dir)
    return utts


def prepare(out: str | Path, src: str | Path | None = None, dev_files: int = DEFAULT_DEV_FILES,
            fetch: Fetch | None = None, timeout: float = DEFAULT_TIMEOUT, log=None) -> dict:
    """Read (or download) YESNO, split, write ``out``; returns the stats."""
    out = check_out(out)
    root, source = resolve_source(src, URL, out / "raw" / "waves_yesno", fetch, timeout, log)
    utts = scan(waves_dir(root))
    if not 1 <= dev_files < len(utts):
        raise SeqkitError(f"--dev-files must be between 1 and {len(utts) - 1} "
                          f"({len(utts)} files), got {dev_files}")
    splits = {"train": utts[:-dev_files], "dev": utts[-dev_files:]}
    for name, us in splits.items():
        write_manifest(out / f"{name}.jsonl", us)
    train_texts = {u.text for u in splits["train"]}
    st: dict = {"dataset": "yesno", "source": source,
                "split_rule": f"dev = last {dev_files} files in sorted order (one speaker: not speaker-disjoint)",
                "splits": {}}
    for name, us in splits.items():
        s = split_stats(us)
        words = [w for u in us for w in u.text.split()]
        s["yes"], s["no"] = words.count("YES"), words.count("NO")
        if name != "train":
            s["transcripts_in_train"] = sum(u.text in train_texts for u in us)
        st["splits"][name] = s
    write_json(out / "stats.json", st)
    return st


def main(argv: Sequence[str] | None = None, *, fetch: Fetch | None = None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 2 error)."""
    p = argparse.ArgumentParser(prog="data_prep/yesno.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="data/yesno", help="output directory (default data/yesno)")
    p.add_argument("--src", help="local folder with waves_yesno/*.wav; default: download")
    p.add_argument("--dev-files", type=int, default=DEFAULT_DEV_FILES, metavar="N",
                   help=f"last N files (sorted) form dev (default {DEFAULT_DEV_FILES})")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="download timeout (s)")
    args = p.parse_args(argv)

    def body() -> None:
        st = prepare(args.out, args.src, args.dev_files, fetch=fetch, timeout=args.timeout, log=_stderr)
        for name, s in st["splits"].items():
            extra = f", {s['transcripts_in_train']} transcripts also in train" if name != "train" else ""
            print(f"{name}: {s['utterances']} utterances, {s['minutes']:.2f} min, {s['words']} words "
                  f"({s['yes']} YES / {s['no']} NO){extra} -> {args.out}/{name}.jsonl")

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
