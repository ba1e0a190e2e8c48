"""JSONL speech manifests: one utterance (or word segment) per line.

Every line is a JSON object with the keys

* ``id`` (str, unique in the file), ``path`` (str: the audio file; a relative path is
  relative to the manifest's directory, see below), ``duration`` (float seconds, of the segment when
  ``start``/``end`` are given), ``text`` (str, the transcript; may be empty only when
  ``allow_empty_text``), ``speaker`` (str);
* optional ``start`` / ``end`` (float seconds): a segment of the file (word segments of
  audio word2vec); absent means the whole file.

Any other key is kept (e.g. ``word``, ``source``).  This is the format ``data_prep/an4.py``,
``data_prep/fsdd.py`` and ``data_prep/yesno.py`` write, in the spirit of NeMo/ESPnet JSON
manifests.  Errors name the file and the line.

Audio paths must lie inside the manifest's folder (after joining a relative path to it and
normalising ``..``; the check is on the path as written, so a symlink the user placed there
is followed): a manifest from elsewhere cannot make a run read arbitrary files.  An absolute
path or one that climbs out is a :class:`DataError` unless the caller passes
``allow_outside=True`` (the speech tasks' ``data.allow_outside_paths: true``, which the
recipes set because their manifests point into the dataset's own folder).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from ..textio import read_lines

__all__ = ["Utterance", "read_manifest", "write_manifest"]

_REQUIRED = {"id": str, "path": str, "duration": (int, float), "text": str, "speaker": str}


@dataclass
class Utterance:
    id: str
    path: str  # resolved: absolute, or relative to the working directory
    duration: float
    text: str
    speaker: str
    start: float | None = None
    end: float | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self, relative_to: Path | None = None) -> dict:
        path = self.path
        if relative_to is not None:
            path = os.path.relpath(Path(self.path).resolve(), relative_to.resolve())
        d = {"id": self.id, "path": path, "duration": round(float(self.duration), 4),
             "text": self.text, "speaker": self.speaker}
        if self.start is not None:
            d["start"] = self.start
            d["end"] = self.end
        d.update(self.extra)
        return d


def read_manifest(path: str | Path, allow_empty_text: bool = False, allow_outside: bool = False) -> list[Utterance]:
    """Utterances of a JSONL manifest; :class:`DataError` (file:line) on any bad line.

    With ``allow_outside=False`` (the default) every audio path must lie inside the
    manifest's folder (see the module docstring).
    """
    p = Path(path)
    if not p.is_file():
        raise DataError("manifest not found", p)
    home = os.path.abspath(p.parent)
    out: list[Utterance] = []
    seen: dict[str, int] = {}
    for n, line in enumerate(read_lines(p), 1):
        if not line.strip():
            raise DataError("empty line (one JSON object per line expected)", p, n)
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"invalid JSON: {e.msg}", p, n) from None
        except (ValueError, RecursionError) as e:  # e.g. a huge integer literal, deep nesting
            raise DataError(f"invalid JSON: {type(e).__name__}", p, n) from None
        if not isinstance(obj, dict):
            raise DataError("a JSON object expected", p, n)
        for key, tp in _REQUIRED.items():
            if key not in obj:
                raise DataError(f"missing key {key!r}", p, n)
            if not isinstance(obj[key], tp) or isinstance(obj[key], bool):
                raise DataError(f"key {key!r} has a value of type {type(obj[key]).__name__}", p, n)
        if obj["id"] in seen:
            raise DataError(f"duplicate id {obj['id']!r} (first on line {seen[obj['id']]})", p, n)
        seen[obj["id"]] = n
        if not (math.isfinite(obj["duration"]) and obj["duration"] > 0):
            raise DataError(f"utterance {obj['id']}: duration must be a finite number > 0, got {obj['duration']}",
                            p, n)
        if not obj["text"].strip() and not allow_empty_text:
            raise DataError(f"utterance {obj['id']}: empty transcript", p, n)
        start, end = obj.get("start"), obj.get("end")
        if (start is None) != (end is None):
            raise DataError(f"utterance {obj['id']}: 'start' and 'end' go together", p, n)
        for key, v in (("start", start), ("end", end)):
            if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v)):
                raise DataError(f"utterance {obj['id']}: {key!r} must be a finite number of seconds, got {v!r}", p, n)
        if start is not None and not 0 <= start < end:
            raise DataError(f"utterance {obj['id']}: need 0 <= start < end, got {start}, {end}", p, n)
        audio = Path(obj["path"])
        if not audio.is_absolute():
            audio = p.parent / audio
        if not allow_outside:
            where = os.path.normpath(os.path.join(home, obj["path"]))
            if os.path.commonpath([home, where]) != home:
                raise DataError(
                    f"utterance {obj['id']}: audio path {obj['path']!r} lies outside the manifest's "
                    f"folder {home}; allow it explicitly (data.allow_outside_paths: true)", p, n)
        extra = {k: v for k, v in obj.items() if k not in _REQUIRED and k not in ("start", "end")}
        out.append(Utterance(obj["id"], str(audio), float(obj["duration"]), obj["text"],
                             obj["speaker"], start, end, extra))
    return out


def write_manifest(path: str | Path, utterances: Iterable[Utterance], relative: bool = False) -> int:
    """Write ``utterances`` as JSONL (atomically); with ``relative`` paths relative to the file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    n = 0
    with tmp.open("w", encoding="utf-8") as f:
        for u in utterances:
            f.write(json.dumps(u.to_dict(p.parent if relative else None), ensure_ascii=False) + "\n")
            n += 1
    os.replace(tmp, p)
    return n
