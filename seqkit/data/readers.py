"""Readers for the text corpora used by the recipes.

Common rules for every reader:

* files are decoded as strict UTF-8; bad bytes raise :class:`DataError` naming the
  file and the 1-based line that holds them (a leading UTF-8 BOM is ignored);
* lines are split on ``"\\n"`` only and a trailing ``"\\r"`` is removed, so CRLF files
  read exactly like LF files;
* every error names the file and, where there is one, the 1-based line;
* skippable problems (e.g. empty lines) are recorded in a :class:`Skips` when the
  caller passes one, and raise :class:`DataError` otherwise -- nothing is dropped
  silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError, Skips
from ..textio import read_lines
from .vocab import EOS

PathLike = str | Path


def _check_same_count(a: PathLike, na: int, b: PathLike, nb: int) -> None:
    if na != nb:
        longer = b if nb > na else a
        raise DataError(
            f"line counts differ: {a} has {na} lines but {b} has {nb}; the files must be line-aligned",
            longer,
            min(na, nb) + 1,
        )


@dataclass
class TaggedExample:
    """One utterance of a tagging/intent corpus.

    ``tags`` has one BIO tag per token (None without a ``seq.out`` file); ``intent``
    is None without a ``label`` file; ``line`` is the 1-based line in the files.
    """

    tokens: list[str]
    tags: list[str] | None
    intent: str | None
    line: int


def read_tagging(
    seq_in: PathLike,
    seq_out: PathLike | None = None,
    label: PathLike | None = None,
    skips: Skips | None = None,
) -> list[TaggedExample]:
    """Read the ATIS/SNIPS layout: ``seq.in`` (tokens), ``seq.out`` (BIO tags), ``label`` (intent).

    The files are line-aligned; tokens and tags are whitespace-split (SNIPS lines
    end with spaces) and must have equal counts.  A line empty in every file is
    skipped (reason ``"empty line"``) when ``skips`` is given, else an error; a line
    empty in some files but not others is always an error.
    """
    files: list[tuple[Path, list[str]]] = [(Path(seq_in), read_lines(seq_in))]
    if seq_out is not None:
        files.append((Path(seq_out), read_lines(seq_out)))
    if label is not None:
        files.append((Path(label), read_lines(label)))
    first_path, first_lines = files[0]
    for path, lines in files[1:]:
        _check_same_count(first_path, len(first_lines), path, len(lines))

    out_lines = files[1][1] if seq_out is not None else None
    label_lines = files[-1][1] if label is not None else None

    examples: list[TaggedExample] = []
    for i, in_line in enumerate(first_lines):
        lineno = i + 1
        tokens = in_line.split()
        tags = out_lines[i].split() if out_lines is not None else None
        intent = label_lines[i].strip() if label_lines is not None else None

        fields = [(Path(seq_in), bool(tokens))]
        if tags is not None:
            fields.append((Path(seq_out), bool(tags)))
        if intent is not None:
            fields.append((Path(label), bool(intent)))
        if not any(nonempty for _, nonempty in fields):
            if skips is None:
                raise DataError("empty line", seq_in, lineno)
            skips.add(seq_in, lineno, "empty line")
            continue
        if not all(nonempty for _, nonempty in fields):
            empty = [str(p) for p, nonempty in fields if not nonempty]
            full = [str(p) for p, nonempty in fields if nonempty]
            raise DataError(
                f"line is empty in {', '.join(empty)} but not in {', '.join(full)}",
                empty[0],
                lineno,
            )
        if tags is not None and len(tags) != len(tokens):
            raise DataError(
                f"{len(tags)} tags for {len(tokens)} tokens (in {seq_in}); "
                "seq.out must have one tag per token",
                seq_out,
                lineno,
            )
        examples.append(TaggedExample(tokens=tokens, tags=tags, intent=intent, line=lineno))
    return examples


def read_tsv_classification(
    path: PathLike,
    text_column: str | int = "sentence",
    label_column: str | int = "label",
    header: bool = True,
    skips: Skips | None = None,
) -> list[tuple[str, str, int]]:
    """Read a tab-separated classification file (GLUE SST-2: ``sentence\\tlabel`` with a header).

    Returns ``(text, label, line)`` triples.  Columns are named (looked up in the
    header) or 0-based ints.  With ``header=False`` string column names cannot be
    looked up, so they fall back to positions 0 (text) and 1 (label).  Fields are
    split on tabs with no quoting (GLUE files are unquoted).  Every row must have
    as many columns as the header (or, without a header, as the first row).
    Empty lines, and rows whose text or label is empty, are skipped (reason
    ``"empty line"`` / ``"empty text or label"``) when ``skips`` is given, else errors.
    """
    p = Path(path)
    lines = read_lines(p)
    start = 0
    n_cols: int | None = None
    if header:
        if not lines:
            raise DataError("empty file, expected a header line", p)
        cols = lines[0].split("\t")
        n_cols = len(cols)
        start = 1
        idx = []
        for col in (text_column, label_column):
            if isinstance(col, int):
                if not 0 <= col < n_cols:
                    raise DataError(f"column {col} out of range; header has {n_cols} columns: {cols}", p, 1)
                idx.append(col)
            elif col in cols:
                idx.append(cols.index(col))
            else:
                raise DataError(f"no column {col!r} in header; header columns are {cols}", p, 1)
        ti, li = idx
    else:
        ti = text_column if isinstance(text_column, int) else 0
        li = label_column if isinstance(label_column, int) else 1

    out: list[tuple[str, str, int]] = []
    for i in range(start, len(lines)):
        lineno = i + 1
        line = lines[i]
        if not line.strip():
            if skips is None:
                raise DataError("empty line", p, lineno)
            skips.add(p, lineno, "empty line")
            continue
        fields = line.split("\t")
        if n_cols is None:
            n_cols = len(fields)
            if max(ti, li) >= n_cols:
                raise DataError(
                    f"need column {max(ti, li)} but the row has {n_cols} tab-separated columns", p, lineno
                )
        if len(fields) != n_cols:
            raise DataError(f"expected {n_cols} tab-separated columns, found {len(fields)}", p, lineno)
        text, lab = fields[ti].strip(), fields[li].strip()
        if not text or not lab:
            if skips is None:
                raise DataError("empty text or label", p, lineno)
            skips.add(p, lineno, "empty text or label")
            continue
        out.append((text, lab, lineno))
    return out


def read_lm_stream(path: PathLike, add_eos: bool = True, eos: str = EOS) -> list[str]:
    """A corpus as one token stream (Mikolov PTB / WikiText convention).

    Each line contributes its whitespace tokens followed by ``eos`` (when
    ``add_eos``); blank lines contribute nothing.
    """
    stream: list[str] = []
    for line in read_lines(path):
        toks = line.split()
        if not toks:
            continue
        stream.extend(toks)
        if add_eos:
            stream.append(eos)
    return stream


def read_parallel(
    src_path: PathLike, tgt_path: PathLike, skips: Skips | None = None
) -> list[tuple[str, str, int]]:
    """Read line-aligned source/target files into ``(src, tgt, line)`` triples.

    Sides are stripped of surrounding whitespace.  A pair with an empty side is
    skipped (reason ``"empty source or target"``) when ``skips`` is given, else an error.
    """
    src, tgt = read_lines(src_path), read_lines(tgt_path)
    _check_same_count(src_path, len(src), tgt_path, len(tgt))
    out: list[tuple[str, str, int]] = []
    for i, (s, t) in enumerate(zip(src, tgt, strict=True)):
        lineno = i + 1
        s, t = s.strip(), t.strip()
        if not s or not t:
            which = src_path if not s else tgt_path
            if skips is None:
                raise DataError(f"empty source or target (the line in {which} is empty)", which, lineno)
            skips.add(which, lineno, "empty source or target")
            continue
        out.append((s, t, lineno))
    return out
