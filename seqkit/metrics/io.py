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

__all__ = ["read_tag_lines", "read_text_lines"]


def read_text_lines(path: str | Path) -> list[str]:
    """All lines of a UTF-8 text file, without ``"\\n"`` / ``"\\r\\n"``."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise DataError("no such file", p) from None
    except IsADirectoryError:
        raise DataError("is a directory, expected a text file", p) from None
    except OSError as e:
        raise DataError(f"cannot read: {e.strerror}", p) from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not data:
        raise DataError("file is empty", p)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(
            f"not valid UTF-8 (bytes {data[e.start:e.end]!r}: {e.reason})", p, line
        ) from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def read_tag_lines(path: str | Path) -> list[list[str]]:
    """One whitespace-separated tag sequence per line (e.g. BIO slot tags)."""
    return [line.split() for line in read_text_lines(path)]
