"""Prepare Multi30k task 1 (English-German image-caption translation) for ``task: translation``.

Usage::

    python data_prep/multi30k.py --out data/multi30k --src ../shared/data/multi30k   # local copy
    python data_prep/multi30k.py --out data/multi30k                                  # download
    python -m data_prep.multi30k ...

``--src DIR`` holds the raw (cased, untokenised) files ``train.{en,de}`` and ``val.{en,de}``
(optionally gzipped, ``*.gz``), as in ``data/task1/raw`` of the official repository.
Without ``--src`` they are downloaded from github.com/multi30k/dataset at commit
a3d2e0d26b56f3846f66a952536ffed4e401d05a (``data/task1/raw/{train,val}.{en,de}.gz``).  The
test sets are not written (they are withheld in this project; a user who wants them can add
``--splits train val test_2016_flickr``).

Output ``DIR/{split}.{en,de}``: UTF-8, LF, one sentence per line, surrounding whitespace
stripped, runs of whitespace collapsed to one space; ``DIR/stats.json`` with per-split
counts (pairs, words per side, duplicated pairs, val sentences also in train).  Nothing is
dropped: a pair with an empty side is an error naming the file and line (Multi30k has none).
Verified counts: train 29,000 pairs (345,020 / 322,383 en / de words), val 1,014.

Errors print ``data_prep: error: <msg>`` (file and line where known) and exit with status 2.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import sys
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make data_prep and seqkit importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data_prep._common import DEFAULT_TIMEOUT, Fetch, urllib_fetch  # noqa: E402
from seqkit.errors import DataError, SeqkitError  # noqa: E402
from seqkit.textio import decode_lines  # noqa: E402

LANGS = ("en", "de")
COMMIT = "a3d2e0d26b56f3846f66a952536ffed4e401d05a"
BASE = f"https://raw.githubusercontent.com/multi30k/dataset/{COMMIT}/data/task1/raw"
EXPECTED = {"train": 29000, "val": 1014, "test_2016_flickr": 1000}
DEFAULT_SPLITS = ("train", "val")


def _norm(line: str) -> str:
    return " ".join(line.split())


def _maybe_gunzip(data: bytes, name: str) -> bytes:
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise DataError(f"corrupt gzip data: {e}", name) from None
    return data


def read_local(src: Path, split: str, lang: str) -> tuple[list[str], str]:
    for name in (f"{split}.{lang}", f"{split}.{lang}.gz"):
        p = src / name
        if p.is_file():
            return decode_lines(_maybe_gunzip(p.read_bytes(), str(p)), p), str(p)
    raise DataError(f"missing {split}.{lang} (or {split}.{lang}.gz)", src)


def read_remote(split: str, lang: str, fetch: Fetch, timeout: float) -> tuple[list[str], str]:
    url = f"{BASE}/{split}.{lang}.gz"
    try:
        data = fetch(url, timeout)
    except (OSError, ValueError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", None) or err
        raise SeqkitError(f"could not download {url}: {reason}; use --src PATH for a local copy") from None
    return decode_lines(_maybe_gunzip(data, url), url), url


def check_split(split: str, sides: dict[str, tuple[list[str], str]]) -> list[tuple[str, str]]:
    (en, en_name), (de, de_name) = sides["en"], sides["de"]
    if len(en) != len(de):
        raise DataError(f"{len(en)} lines but {de_name} has {len(de)}: sides must be line-aligned", en_name)
    pairs = []
    for i, (e, d) in enumerate(zip(en, de), start=1):
        e, d = _norm(e), _norm(d)
        if not e or not d:
            raise DataError("empty sentence (pairs must have text on both sides)", en_name if not e else de_name, i)
        pairs.append((e, d))
    want = EXPECTED.get(split)
    if want is not None and len(pairs) != want:
        print(f"data_prep: warning: {split}: {len(pairs)} pairs, the official release has {want}", file=sys.stderr)
    return pairs


def stats(pairs: dict[str, list[tuple[str, str]]]) -> dict:
    out: dict = {}
    train = set(pairs.get("train", []))
    train_sents = {lang: {p[k] for p in pairs.get("train", [])} for k, lang in enumerate(LANGS)}
    for split, ps in pairs.items():
        s = {"pairs": len(ps), "duplicated_pairs": len(ps) - len(set(ps))}
        for k, lang in enumerate(LANGS):
            s[f"words_{lang}"] = sum(len(p[k].split()) for p in ps)
        if split != "train":
            s["pairs_in_train"] = sum(p in train for p in ps)
            for k, lang in enumerate(LANGS):
                s[f"{lang}_sentences_in_train"] = sum(p[k] in train_sents[lang] for p in ps)
        out[split] = s
    return out


def prepare(out: str | Path, src: str | Path | None = None, splits: Sequence[str] = DEFAULT_SPLITS,
            fetch: Fetch | None = None, timeout: float = DEFAULT_TIMEOUT) -> dict:
    """Read (or download) ``splits``, check them and write ``out``; returns the stats."""
    out = Path(out)
    pairs: dict[str, list[tuple[str, str]]] = {}
    for split in splits:
        if src is not None:
            sides = {lang: read_local(Path(src), split, lang) for lang in LANGS}
        else:
            sides = {lang: read_remote(split, lang, fetch or urllib_fetch, timeout) for lang in LANGS}
        pairs[split] = check_split(split, sides)
    out.mkdir(parents=True, exist_ok=True)
    for split, ps in pairs.items():
        for k, lang in enumerate(LANGS):
            (out / f"{split}.{lang}").write_text("".join(p[k] + "\n" for p in ps), encoding="utf-8")
    st = stats(pairs)
    st["source"] = str(src) if src is not None else BASE
    (out / "stats.json").write_text(json.dumps(st, indent=2) + "\n", encoding="utf-8")
    return st


def main(argv: Sequence[str] | None = None, *, fetch: Fetch | None = None) -> int:
    p = argparse.ArgumentParser(prog="data_prep/multi30k.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="data/multi30k", help="output directory (default data/multi30k)")
    p.add_argument("--src", help="local directory with {split}.{en,de}[.gz]; default: download")
    p.add_argument("--splits", nargs="+", default=list(DEFAULT_SPLITS), help="default: train val")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    args = p.parse_args(argv)
    try:
        st = prepare(args.out, args.src, args.splits, fetch=fetch, timeout=args.timeout)
    except SeqkitError as e:
        print(f"data_prep: error: {e}", file=sys.stderr)
        return 2
    for split in args.splits:
        s = st[split]
        print(f"{split}: {s['pairs']} pairs, {s['words_en']} en / {s['words_de']} de words, "
              f"{s['duplicated_pairs']} duplicated pairs -> {args.out}/{split}.{{en,de}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
