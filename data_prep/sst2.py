"""Prepare SST-2 (GLUE binary sentiment) for the ``text_classification`` task.

Usage::

    python data_prep/sst2.py --out data/sst2 --src ../shared/data/sst2   # local GLUE-format copy
    python data_prep/sst2.py --out data/sst2                             # download (Hugging Face)
    python -m data_prep.sst2 ...

``--src`` is a directory with GLUE's ``train.tsv`` and ``dev.tsv`` (header ``sentence<TAB>label``,
labels 0/1; GLUE lines end with a space before the tab).  Without ``--src`` the splits are
loaded with the Hugging Face ``datasets`` library (``glue``/``sst2``, falling back to
``stanfordnlp/sst2``; both hold the same 67,349 train / 872 validation rows).  The GLUE test
split has no labels and is not written.

Output ``DIR/{train,dev}.tsv``: UTF-8, LF, header ``sentence<TAB>label``, the sentence with
surrounding whitespace stripped and single spaces between tokens, label ``negative`` or
``positive`` (GLUE 0 / 1).  ``DIR/stats.json`` holds per-split counts (rows, labels, tokens,
duplicated texts, texts with conflicting labels, dev sentences seen in train) and what was
dropped.  Duplicates are kept (the train set is every phrase of the parse trees, so common
phrases repeat).  Texts that occur with both labels (5 phrases in GLUE train) are kept by
default, ``--conflicts drop`` removes every row of such a text; either way they are counted
and reported.

Errors print ``data_prep: error: <msg>`` (file and line where known) and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make data_prep and seqkit importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from seqkit.errors import DataError, SeqkitError  # noqa: E402
from seqkit.textio import read_lines  # noqa: E402

SPLITS = ("train", "dev")
LABEL_NAMES = {"0": "negative", "1": "positive"}
EXPECTED = {"train": 67349, "dev": 872}
HF_SOURCES = (("glue", "sst2"), ("stanfordnlp/sst2", None))
HF_SPLIT = {"train": "train", "dev": "validation"}

Rows = list[tuple[str, str]]  # (normalized sentence, label name)
# load_hf(split) -> [(sentence, int label)]; injectable so the download path is testable offline
HFLoader = Callable[[str], list[tuple[str, int]]]


def _label(raw: str, path: str | Path, line: int) -> str:
    lab = raw.strip()
    if lab in LABEL_NAMES:
        return LABEL_NAMES[lab]
    if lab in LABEL_NAMES.values():
        return lab
    raise DataError(f"bad label {lab!r} (expected 0/1 or negative/positive)", path, line)


def read_glue_tsv(path: str | Path) -> Rows:
    """Read a GLUE SST-2 ``sentence<TAB>label`` file with its header; strict, line-numbered."""
    path = Path(path)
    if not path.is_file():
        raise DataError("no such file", path)
    lines = read_lines(path)
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise DataError("empty file, expected the header 'sentence<TAB>label'", path)
    header = [c.strip() for c in lines[0].split("\t")]
    if "sentence" not in header or "label" not in header:
        raise DataError(f"header must name columns 'sentence' and 'label', got {header}", path, 1)
    ti, li = header.index("sentence"), header.index("label")
    rows: Rows = []
    for i, line in enumerate(lines[1:], 2):
        fields = line.split("\t")
        if len(fields) != len(header):
            raise DataError(
                f"expected {len(header)} tab-separated columns, found {len(fields)}", path, i
            )
        text = " ".join(fields[ti].split())
        if not text:
            raise DataError("empty sentence", path, i)
        rows.append((text, _label(fields[li], path, i)))
    return rows


def hf_loader(split: str) -> list[tuple[str, int]]:
    """One split from the Hugging Face hub (``glue``/``sst2``, else ``stanfordnlp/sst2``)."""
    try:
        from datasets import load_dataset
    except ImportError as err:  # pragma: no cover - datasets is a dependency
        raise SeqkitError(
            f"the download needs the 'datasets' package ({err}); use --src PATH"
        ) from None
    errors = []
    for name, config in HF_SOURCES:
        try:
            ds = load_dataset(name, config, split=HF_SPLIT[split])
        except Exception as err:  # network, hub or cache problems: try the next source
            errors.append(f"{name}{'/' + config if config else ''}: {err}")
            continue
        return [(str(r["sentence"]), int(r["label"])) for r in ds]
    raise SeqkitError(
        "could not load SST-2 from the Hugging Face hub (" + "; ".join(errors) + "); use --src PATH"
    )


def rows_from_hf(records: list[tuple[str, int]], split: str) -> Rows:
    rows: Rows = []
    for i, (text, lab) in enumerate(records, 1):
        text = " ".join(text.split())
        if not text:
            raise DataError("empty sentence", f"<hf {split}>", i)
        rows.append((text, _label(str(lab), f"<hf {split}>", i)))
    return rows


def conflicting_texts(rows: Rows) -> set[str]:
    labels: dict[str, set[str]] = defaultdict(set)
    for text, lab in rows:
        labels[text].add(lab)
    return {t for t, labs in labels.items() if len(labs) > 1}


def split_stats(rows: Rows) -> dict:
    counts = Counter(t for t, _ in rows)
    return {
        "rows": len(rows),
        "labels": dict(sorted(Counter(lab for _, lab in rows).items())),
        "tokens": sum(len(t.split()) for t, _ in rows),
        "max_tokens": max((len(t.split()) for t, _ in rows), default=0),
        "duplicate_rows": len(rows) - len(counts),  # rows repeating an earlier text
        "duplicated_texts": sum(1 for n in counts.values() if n > 1),
        "conflicting_texts": len(conflicting_texts(rows)),
    }


def write_tsv(path: Path, rows: Rows) -> None:
    text = "sentence\tlabel\n" + "".join(f"{t}\t{lab}\n" for t, lab in rows)
    path.write_bytes(text.encode("utf-8"))


def prepare(
    out: str | Path,
    src: str | Path | None = None,
    conflicts: str = "keep",
    load_hf: HFLoader | None = None,
    warn: Callable[[str], None] | None = None,
) -> dict:
    """Read ``src`` (or download), write ``out/{train,dev}.tsv`` and ``stats.json``; return the stats."""
    if conflicts not in ("keep", "drop"):
        raise SeqkitError(f"--conflicts must be keep or drop, got {conflicts!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SeqkitError(f"--out exists and is not a directory: {out}")
    splits: dict[str, Rows] = {}
    if src is not None:
        src = Path(src)
        if not src.is_dir():
            raise SeqkitError(f"source directory not found: {src}")
        for split in SPLITS:
            splits[split] = read_glue_tsv(src / f"{split}.tsv")
        source = {"kind": "local", "path": str(src.resolve())}
    else:
        load = hf_loader if load_hf is None else load_hf
        for split in SPLITS:
            splits[split] = rows_from_hf(load(split), split)
        source = {
            "kind": "huggingface",
            "datasets": [n + (f"/{c}" if c else "") for n, c in HF_SOURCES],
        }
    stats: dict = {"dataset": "sst2", "source": source, "conflicts": conflicts, "splits": {}}
    for split, rows in splits.items():
        if EXPECTED.get(split) not in (None, len(rows)) and warn:
            warn(f"SST-2 {split}: {len(rows)} rows, expected {EXPECTED[split]} (GLUE release)")
        st = split_stats(rows)
        bad = conflicting_texts(rows)
        st["conflicting_examples"] = sorted(bad)[:10]
        st["dropped_conflicting_rows"] = 0
        if conflicts == "drop" and bad:
            kept = [r for r in rows if r[0] not in bad]
            st["dropped_conflicting_rows"] = len(rows) - len(kept)
            splits[split] = kept
            st["rows_written"] = len(kept)
        else:
            st["rows_written"] = len(rows)
        stats["splits"][split] = st
    train_texts = {t for t, _ in splits["train"]}
    stats["splits"]["dev"]["in_train"] = sum(t in train_texts for t, _ in splits["dev"])
    out.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        write_tsv(out / f"{split}.tsv", rows)
    (out / "stats.json").write_text(
        json.dumps(stats, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return stats


def summary(stats: dict, out: str | Path) -> str:
    src = stats["source"]
    where = f"local copy {src['path']}" if src["kind"] == "local" else "the Hugging Face hub"
    parts = []
    for name, st in stats["splits"].items():
        labs = ", ".join(f"{k} {v}" for k, v in st["labels"].items())
        part = (
            f"{name} {st['rows']} rows ({labs}), {st['tokens']} tokens, {st['duplicate_rows']} "
            f"duplicate rows ({st['duplicated_texts']} texts), {st['conflicting_texts']} texts with "
            f"conflicting labels"
        )
        if st["conflicting_texts"]:
            part += f" ({', '.join(repr(t) for t in st['conflicting_examples'])})"
            part += (
                f" dropped: {st['dropped_conflicting_rows']} rows"
                if stats["conflicts"] == "drop"
                else " kept"
            )
        parts.append(part)
    text = f"SST-2 from {where}: " + "; ".join(parts) + "."
    text += f" dev sentences found verbatim in train: {stats['splits']['dev']['in_train']}."
    return text + f" Wrote train.tsv, dev.tsv and stats.json to {out}."


def main(argv: Sequence[str] | None = None, *, load_hf: HFLoader | None = None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 2 error)."""
    p = argparse.ArgumentParser(
        prog="data_prep/sst2.py",
        description="Prepare SST-2 (GLUE): write normalized train.tsv / dev.tsv and stats.json.",
    )
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--src", help="local directory with GLUE train.tsv and dev.tsv; no download")
    p.add_argument(
        "--conflicts",
        choices=("keep", "drop"),
        default="keep",
        help="texts that occur with both labels: keep their rows (default) or drop them all",
    )
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2

    def warn(msg: str) -> None:
        print(f"data_prep: warning: {msg}", file=sys.stderr)

    try:
        stats = prepare(
            args.out, src=args.src, conflicts=args.conflicts, load_hf=load_hf, warn=warn
        )
    except (SeqkitError, OSError) as err:
        print(f"data_prep: error: {err}", file=sys.stderr)
        return 2
    print(summary(stats, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
