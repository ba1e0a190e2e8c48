"""User-facing errors.

Every error a user can cause (bad data, bad config, bad arguments) is raised as a
:class:`SeqkitError`.  The CLI prints its message (no traceback) and exits with
status 2.  Messages name the file and line (or utterance) where possible.
"""

from __future__ import annotations

from pathlib import Path


class SeqkitError(Exception):
    """An error caused by user input; printed without a traceback by the CLI."""


class ConfigError(SeqkitError):
    """A bad configuration: unknown key, wrong type, missing file."""


class DataError(SeqkitError):
    """Bad input data.  ``str(err)`` is ``"path:line: message"`` when known."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.path = None if path is None else str(path)
        self.line = line
        self.reason = message
        where = ""
        if self.path is not None:
            where = self.path if line is None else f"{self.path}:{line}"
            where += ": "
        super().__init__(where + message)


class Skips:
    """Collects items skipped under a documented skip policy, so that none is dropped silently.

    ``add(path, line, reason)`` records one; ``summary()`` gives a one-line report that
    callers print at the end of a run.
    """

    def __init__(self) -> None:
        self.items: list[tuple[str, int | None, str]] = []

    def add(self, path: str | Path, line: int | None, reason: str) -> None:
        self.items.append((str(path), line, reason))

    def __len__(self) -> int:
        return len(self.items)

    def summary(self, limit: int = 5) -> str:
        if not self.items:
            return "skipped 0 items"
        by_reason: dict[str, int] = {}
        for _, _, reason in self.items:
            by_reason[reason] = by_reason.get(reason, 0) + 1
        parts = ", ".join(f"{n} {r}" for r, n in sorted(by_reason.items()))
        first = "; ".join(
            f"{p}:{ln}" if ln is not None else p for p, ln, _ in self.items[:limit]
        )
        more = "" if len(self.items) <= limit else f" (+{len(self.items) - limit} more)"
        return f"skipped {len(self.items)} items ({parts}): {first}{more}"
