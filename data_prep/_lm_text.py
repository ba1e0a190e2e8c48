"""Shared loader for the word-level language-modelling corpora (PTB, WikiText-2).

Both come as plain, already tokenised UTF-8 text, one sentence (PTB) or paragraph
(WikiText) per line.  This module reads a local copy (``--src DIR``) or downloads the files
from a pinned upstream commit, checks them (strict UTF-8, line/token counts and sha256 of
the known files; a mismatch is a warning), and writes them normalised to ``--out DIR`` as
``train.txt``, ``valid.txt`` (and ``test.txt`` when present): LF line ends, tokens joined by
single spaces, no leading/trailing spaces.  Blank lines are kept (as empty lines): the LM
task gives every line, blank or not, one ``<eos>``, which reproduces the published token
counts.  Counts go to ``stats.json`` and are printed.

Network access goes through an injectable ``fetch(url, timeout) -> bytes`` callable so the
download path is testable offline.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from data_prep._common import DEFAULT_TIMEOUT, Fetch, urllib_fetch
from seqkit.errors import DataError, SeqkitError
from seqkit.textio import decode_lines, read_bytes

SPLITS = ("train", "valid", "test")
REQUIRED = ("train", "valid")


@dataclass(frozen=True)
class TextSpec:
    """One corpus: where its files live upstream and locally, and their verified sizes."""

    name: str
    title: str
    urls: dict[str, str]  # split -> pinned download URL
    src_names: dict[str, tuple[str, ...]]  # split -> accepted file names in --src
    expected: dict[str, tuple[int, int]] = field(default_factory=dict)  # split -> (lines, tokens)
    sha256: dict[str, str] = field(default_factory=dict)  # split -> sha256 of the raw file


def _norm_lines(data: bytes, name: str) -> list[str]:
    return [" ".join(line.split()) for line in decode_lines(data, name)]


def split_stats(lines: list[str], train_vocab: set[str] | None) -> dict:
    counts = Counter(t for line in lines for t in line.split())
    tokens = sum(counts.values())
    st = {
        "lines": len(lines),
        "blank_lines": sum(not ln for ln in lines),
        "tokens": tokens,
        "tokens_with_eos": tokens + len(lines),
        "vocab": len(counts),
    }
    if train_vocab is not None:
        oov = sum(n for w, n in counts.items() if w not in train_vocab)
        st.update(oov_tokens=oov, oov_rate=oov / max(1, tokens))
    return st


def prepare(
    spec: TextSpec,
    out: str | Path,
    src: str | Path | None = None,
    fetch: Fetch | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    log: Callable[[str], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> dict:
    """Read or download ``spec``, check it, write the normalised splits; returns the stats."""
    log = log or (lambda s: None)
    warn = warn or (lambda s: None)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SeqkitError(f"--out exists and is not a directory: {out}")
    raw: dict[str, tuple[bytes, str]] = {}
    if src is None:
        fetch = urllib_fetch if fetch is None else fetch
        for split, url in spec.urls.items():
            log(f"downloading {url}")
            try:
                raw[split] = (fetch(url, timeout), url)
            except Exception as err:  # URLError/HTTPError/timeouts/IncompleteRead
                if split in REQUIRED:
                    reason = getattr(err, "reason", None) or err
                    raise SeqkitError(
                        f"could not download {url}: {reason}; use --src PATH for a local copy"
                    ) from None
                warn(f"could not download the optional {split} split from {url}")
        source: dict = {"kind": "download", "urls": {s: u for s, (_, u) in raw.items()}}
    else:
        src = Path(src)
        if not src.is_dir():
            raise SeqkitError(f"--src is not a directory: {src}")
        for split in SPLITS:
            found = [src / n for n in spec.src_names[split] if (src / n).is_file()]
            if not found:
                if split in REQUIRED:
                    names = " or ".join(spec.src_names[split])
                    raise DataError(f"no {split} file ({names})", src)
                continue
            raw[split] = (read_bytes(found[0]), str(found[0]))
        source = {
            "kind": "local",
            "files": {s: str(Path(p).resolve()) for s, (_, p) in raw.items()},
        }
    out.mkdir(parents=True, exist_ok=True)
    stats: dict = {"dataset": spec.name, "source": source, "splits": {}}
    lines_by_split = {s: _norm_lines(data, name) for s, (data, name) in raw.items()}
    train_vocab = {t for line in lines_by_split["train"] for t in line.split()}
    for split, lines in lines_by_split.items():
        data, name = raw[split]
        digest = hashlib.sha256(data).hexdigest()
        if split in spec.sha256 and digest != spec.sha256[split]:
            warn(
                f"{name}: sha256 {digest[:12]}... differs from the known "
                f"{spec.sha256[split][:12]}... (a different version of {spec.title}?)"
            )
        st = split_stats(lines, None if split == "train" else train_vocab)
        st["sha256"] = digest
        if split in spec.expected and (st["lines"], st["tokens"]) != spec.expected[split]:
            exp_lines, exp_tokens = spec.expected[split]
            warn(
                f"{spec.title} {split}: {st['lines']} lines / {st['tokens']} tokens, expected "
                f"{exp_lines} / {exp_tokens}"
            )
        (out / f"{split}.txt").write_text("".join(ln + "\n" for ln in lines), encoding="utf-8")
        stats["splits"][split] = st
    (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    return stats


def summary(spec: TextSpec, stats: dict, out: str | Path) -> str:
    parts = []
    for split, st in stats["splits"].items():
        part = (
            f"{split} {st['lines']} lines / {st['tokens']} tokens "
            f"({st['tokens_with_eos']} with <eos>) / vocab {st['vocab']}"
        )
        if "oov_tokens" in st:
            part += f" / {st['oov_tokens']} OOV vs train ({st['oov_rate']:.2%})"
        parts.append(part)
    return (
        f"{spec.title}: " + "; ".join(parts) + f". Wrote normalised text and stats.json to {out}."
    )


def run_main(
    spec: TextSpec, argv: Sequence[str] | None, prog: str, fetch: Fetch | None = None
) -> int:
    """Shared ``main`` of ``data_prep/ptb.py`` and ``data_prep/wikitext2.py``."""
    p = argparse.ArgumentParser(
        prog=prog,
        description=f"Prepare {spec.title} for word-level language modelling: check it and "
        "write normalised train/valid(/test).txt and stats.json.  Without --src the files "
        "are downloaded from: " + ", ".join(spec.urls.values()),
    )
    p.add_argument("--out", required=True, help="output directory, e.g. data/" + spec.name)
    p.add_argument(
        "--src",
        help="local directory holding the text files: "
        + "; ".join(f"{s}: {' or '.join(n)}" for s, n in spec.src_names.items()),
    )
    p.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, help="download timeout in seconds"
    )
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    try:
        stats = prepare(
            spec,
            args.out,
            src=args.src,
            fetch=fetch,
            timeout=args.timeout,
            log=lambda m: print(m, file=sys.stderr),
            warn=lambda m: print(f"data_prep: warning: {m}", file=sys.stderr),
        )
    except SeqkitError as e:
        print(f"data_prep: error: {e}", file=sys.stderr)
        return 2
    print(summary(spec, stats, args.out))
    return 0
