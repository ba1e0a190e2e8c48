"""Reading the text files that ``seqkit score`` compares.

Rules (the same as :mod:`seqkit.data.readers`, without importing torch):

* strict UTF-8; bad bytes raise :class:`DataError` naming the file and the 1-based
  line that holds them; a leading UTF-8 BOM is ignored;
* one item per line, split on ``"\\n"``; a trailing ``"\\r"`` is removed, so CRLF files
  score exactly like LF files; a final newline does not add an empty line;
* an empty file is an error (a score over nothing is meaningless).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from ..textio import read_lines

__all__ = ["read_tag_lines", "read_text_lines"]


def read_text_lines(path: str | Path) -> list[str]:
    """All lines of a UTF-8 text file, without ``"\\n"`` / ``"\\r\\n"``; empty file -> error."""
    lines = read_lines(path)
    if not lines:
        raise DataError("file is empty", Path(path))
    return lines


def read_tag_lines(path: str | Path) -> list[list[str]]:
    """One whitespace-separated tag sequence per line (e.g. BIO slot tags)."""
    return [line.split() for line in read_text_lines(path)]
