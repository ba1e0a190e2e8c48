"""Reading UTF-8 text lines strictly, with errors that name the file and line.

Torch-free, so that light commands (``seqkit score``) and ``data_prep`` scripts can use it
without importing torch.  Rules: strict UTF-8 (bad bytes raise :class:`DataError` naming
the 1-based line that holds them); a leading UTF-8 BOM is dropped; lines split on ``"\\n"``
with a trailing ``"\\r"`` removed (CRLF reads like LF); a final newline does not add an
empty line.
"""

from __future__ import annotations

from pathlib import Path

from .errors import DataError


def decode_lines(data: bytes, name: str | Path) -> list[str]:
    """Split ``data`` into lines by the rules above; ``name`` is used in error messages."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        bad = data[e.start : e.end]
        raise DataError(f"not valid UTF-8 (bytes {bad!r}: {e.reason})", name, line) from None
    if not text:
        return []
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def read_bytes(path: str | Path) -> bytes:
    """File contents, or a :class:`DataError` naming the file."""
    p = Path(path)
    try:
        return p.read_bytes()
    except FileNotFoundError:
        raise DataError("no such file", p) from None
    except IsADirectoryError:
        raise DataError("is a directory, expected a text file", p) from None
    except OSError as e:
        raise DataError(f"cannot read: {e.strerror or e}", p) from None


def read_lines(path: str | Path) -> list[str]:
    """All lines of a UTF-8 text file (see the module rules)."""
    return decode_lines(read_bytes(path), path)
