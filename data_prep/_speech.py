"""Helpers shared by the speech data preparation scripts (``an4.py``, ``fsdd.py``, ``yesno.py``):
pinned tarball download with safe extraction, audio checks, split statistics, JSON output, the
``--src`` / download source choice and the CLI error convention (``data_prep: error: <msg>``,
exit status 2)."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import json
import shutil
import sys
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import soundfile as sf

from data_prep._common import DEFAULT_TIMEOUT, Fetch, urllib_fetch
from seqkit.data.manifest import Utterance
from seqkit.errors import DataError, SeqkitError

Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def warn(msg: str) -> None:
    print(f"data_prep: warning: {msg}", file=sys.stderr)


# --------------------------------------------------------------------------- shared helpers


def _safe_members(tar: tarfile.TarFile, name: str) -> list[tarfile.TarInfo]:
    """Members to extract: regular files and directories with relative paths inside the
    archive root (links, devices and ``..`` paths are refused)."""
    members = []
    for m in tar.getmembers():
        parts = Path(m.name).parts
        if m.name.startswith(("/", "\\")) or ".." in parts:
            raise DataError(f"unsafe path in archive: {m.name!r}", name)
        if m.isfile() or m.isdir():
            members.append(m)
        elif m.issym() or m.islnk():
            continue  # not needed by any of the datasets; never followed
        else:
            raise DataError(f"unexpected member type in archive: {m.name!r}", name)
    return members


def download_tarball(url: str, dest: str | Path, fetch: Fetch | None = None,
                     timeout: float = DEFAULT_TIMEOUT, log: Log | None = None) -> dict:
    """Download the ``.tar.gz`` at ``url`` and extract it as directory ``dest``.

    When the archive has a single top-level directory (GitHub and OpenSLR tarballs do)
    that directory becomes ``dest``.  An existing ``dest`` is reused without downloading.
    Returns ``{"kind": "download", "url", "sha256", "bytes", "dir"}`` (also kept in
    ``dest.json`` next to ``dest``).
    """
    dest = Path(dest)
    info_file = dest.with_name(dest.name + ".json")
    if dest.is_dir() and info_file.is_file():
        if log:
            log(f"using the earlier download in {dest}")
        return json.loads(info_file.read_text(encoding="utf-8"))
    if log:
        log(f"downloading {url}")
    try:
        data = (fetch or urllib_fetch)(url, timeout)
    except (OSError, ValueError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", None) or err
        raise SeqkitError(f"could not download {url}: {reason}; use --src PATH for a local copy") from None
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
                members = _safe_members(tar, url)
                tar.extractall(tmp, members=members, filter="data")
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
            raise DataError(f"not a valid tar archive: {e}", url) from None
        top = list(tmp.iterdir())
        root = top[0] if len(top) == 1 and top[0].is_dir() else tmp
        if dest.exists():
            shutil.rmtree(dest)
        root.rename(dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    info = {"kind": "download", "url": url, "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data), "dir": str(dest.resolve())}
    info_file.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


def audio_info(path: str | Path, where: str = ""):
    """``soundfile.info`` of ``path``; :class:`DataError` naming the file when it is missing,
    unreadable or empty.  ``where`` is added to the message (e.g. the transcript line)."""
    p = Path(path)
    suffix = f" ({where})" if where else ""
    if not p.is_file():
        raise DataError(f"audio file not found{suffix}", p)
    try:
        info = sf.info(str(p))
    except (RuntimeError, OSError) as e:  # soundfile.LibsndfileError is a RuntimeError
        raise DataError(f"not a readable audio file: {e}{suffix}", p) from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise DataError(f"audio file has no samples{suffix}", p)
    return info


def split_stats(utts: Sequence[Utterance], train: Sequence[Utterance] | None = None) -> dict:
    """Counts of one split; with ``train`` also the words of this split never seen in it."""
    secs = sum(u.duration for u in utts)
    words = [w for u in utts for w in u.text.split()]
    speakers = sorted({u.speaker for u in utts})
    st = {
        "utterances": len(utts),
        "speakers": len(speakers),
        "hours": round(secs / 3600, 4),
        "minutes": round(secs / 60, 2),
        "min_duration": round(min((u.duration for u in utts), default=0.0), 3),
        "max_duration": round(max((u.duration for u in utts), default=0.0), 3),
        "mean_duration": round(secs / len(utts), 3) if utts else 0.0,
        "words": len(words),
        "vocab": len(set(words)),
        "max_words": max((len(u.text.split()) for u in utts), default=0),
    }
    if train is not None:
        seen = {w for u in train for w in u.text.split()}
        unseen = sorted({w for w in words if w not in seen})
        st["unseen_word_types"] = unseen
        st["unseen_word_tokens"] = sum(1 for w in words if w not in seen)
    return st


def check_out(out: str | Path) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SeqkitError(f"--out exists and is not a directory: {out}")
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def run_cli(body: Callable[[], None]) -> int:
    """Run ``body``; user errors print ``data_prep: error: <msg>`` and give status 2."""
    try:
        body()
    except (SeqkitError, OSError) as e:  # OSError: e.g. --out not writable, disk full
        print(f"data_prep: error: {e}", file=sys.stderr)
        return 2
    return 0


# --------------------------------------------------------------------------- AN4


def resolve_source(src: str | Path | None, url: str, dest: Path, fetch: Fetch | None, timeout: float,
                   log: Log | None) -> tuple[Path, dict]:
    """(root directory, source record): the ``--src`` folder, or ``url`` downloaded to ``dest``."""
    if src is None:
        source = download_tarball(url, dest, fetch, timeout, log)
        return Path(source["dir"]), source
    root = Path(src)
    if not root.is_dir():
        raise SeqkitError(f"--src is not a directory: {root}")
    return root, {"kind": "local", "path": str(root.resolve())}
