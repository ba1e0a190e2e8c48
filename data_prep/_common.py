"""Shared helpers for the joint slot-filling / intent data loaders (ATIS, SNIPS, toy).

All three datasets use the layout of MiuLab/SlotGated-SLU: per split three parallel
files, one example per line:

* ``<split>.seq.in``  -- whitespace-separated tokens
* ``<split>.seq.out`` -- one BIO slot tag per token (``O``, ``B-x``, ``I-x``)
* ``<split>.label``   -- one intent label (multi-intent labels joined with ``#``)

This module reads and validates such files (strict UTF-8, equal line counts, equal
token/tag counts, well-formed BIO), writes them normalized (LF, single spaces, no
trailing spaces), computes ``stats.json`` and implements the download from the pinned
upstream commit.  It deliberately depends on nothing in :mod:`seqkit` except the
error classes, so it can be used before the rest of the toolkit is installed.

Network access goes through an injectable ``fetch(url, timeout) -> bytes`` callable so
the download path is testable offline.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import re
import sys
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from seqkit.errors import DataError, SeqkitError
from seqkit.textio import read_lines as _read_lines

KINDS = ("seq.in", "seq.out", "label")
REQUIRED_SPLITS = ("train", "dev")
OPTIONAL_SPLITS = ("test",)
ALL_SPLITS = REQUIRED_SPLITS + OPTIONAL_SPLITS

UPSTREAM_REPO = "MiuLab/SlotGated-SLU"
UPSTREAM_COMMIT = "61f0307c729b1fad479ef1de94aa5ac5dee601b0"
RAW_BASE = "https://raw.githubusercontent.com"
DEFAULT_TIMEOUT = 30.0

# split name here -> split directory name upstream
UPSTREAM_SPLIT_DIR = {"train": "train", "dev": "valid", "test": "test"}

_TAG_RE = re.compile(r"(?:[BI])-\S+")

Fetch = Callable[[str, float], bytes]


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class DatasetSpec:
    """What we know about one SlotGated-SLU dataset: where it lives and its verified sizes."""

    name: str  # "atis"
    title: str  # "ATIS"
    upstream_dir: str  # "data/atis"
    expected_sentences: dict[str, int] = field(default_factory=dict)
    repo: str = UPSTREAM_REPO
    commit: str = UPSTREAM_COMMIT


DATASETS: dict[str, DatasetSpec] = {
    "atis": DatasetSpec(
        name="atis",
        title="ATIS",
        upstream_dir="data/atis",
        expected_sentences={"train": 4478, "dev": 500, "test": 893},
    ),
    "snips": DatasetSpec(
        name="snips",
        title="SNIPS",
        upstream_dir="data/snips",
        expected_sentences={"train": 13084, "dev": 700, "test": 700},
    ),
}


def source_urls(spec: DatasetSpec) -> dict[tuple[str, str], str]:
    """``{(split, kind): url}`` of the raw files at the pinned commit, splits in order."""
    urls: dict[tuple[str, str], str] = {}
    for split in ALL_SPLITS:
        for kind in KINDS:
            urls[(split, kind)] = (
                f"{RAW_BASE}/{spec.repo}/{spec.commit}/"
                f"{spec.upstream_dir}/{UPSTREAM_SPLIT_DIR[split]}/{kind}"
            )
    return urls


def check_counts(spec: DatasetSpec, counts: dict[str, int]) -> list[str]:
    """Compare sentence counts per split with the verified ones; one warning per mismatch."""
    warnings = []
    for split, expected in spec.expected_sentences.items():
        if split not in counts:
            continue
        if counts[split] != expected:
            warnings.append(
                f"{spec.title} {split}: {counts[split]} sentences, expected {expected} "
                f"(upstream {spec.repo}@{spec.commit[:12]}); the download may be incomplete or changed"
            )
    return warnings


# --------------------------------------------------------------------------- reading


@dataclass
class Split:
    """One validated split: parallel lists of token lists, tag lists and intent labels."""

    name: str
    tokens: list[list[str]]
    tags: list[list[str]]
    intents: list[str]

    def __len__(self) -> int:
        return len(self.intents)


def read_lines(path: str | Path) -> list[str]:
    """Lines of a text file by seqkit's strict rules (:func:`seqkit.textio.read_lines`);
    blank lines at the very end of the file are ignored."""
    lines = _read_lines(path)
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def check_bio(tags: Sequence[str], path: str | Path, line: int) -> None:
    """Raise :class:`DataError` unless ``tags`` is well-formed BIO.

    Each tag is ``O``, ``B-x`` or ``I-x``; an ``I-x`` must follow ``B-x`` or ``I-x``.
    """
    prev = "O"
    for i, tag in enumerate(tags, 1):
        if tag != "O" and not _TAG_RE.fullmatch(tag):
            raise DataError(f"token {i}: bad tag {tag!r} (expected O, B-x or I-x)", path, line)
        if tag.startswith("I-") and (prev == "O" or prev[2:] != tag[2:]):
            raise DataError(
                f"token {i}: {tag} does not continue a {tag[2:]} span (previous tag {prev})",
                path,
                line,
            )
        prev = tag


def split_paths(directory: str | Path, split: str) -> dict[str, Path]:
    directory = Path(directory)
    return {kind: directory / f"{split}.{kind}" for kind in KINDS}


def load_split(directory: str | Path, split: str) -> Split:
    """Read and validate ``directory/<split>.{seq.in,seq.out,label}``."""
    paths = split_paths(directory, split)
    lines = {kind: read_lines(p) for kind, p in paths.items()}
    n_in = len(lines["seq.in"])
    for kind in ("seq.out", "label"):
        n = len(lines[kind])
        if n != n_in:
            raise DataError(
                f"{n} lines, but {paths['seq.in'].name} has {n_in}; the three files of a "
                "split must be parallel",
                paths[kind],
            )
    tokens, tags, intents = [], [], []
    for i, (s_in, s_out, label) in enumerate(
        zip(lines["seq.in"], lines["seq.out"], lines["label"], strict=True), 1
    ):
        tok = s_in.split()
        tag = s_out.split()
        if not tok:
            raise DataError("empty sentence", paths["seq.in"], i)
        if len(tag) != len(tok):
            raise DataError(
                f"{len(tag)} tags for {len(tok)} tokens in {paths['seq.in'].name} line {i}",
                paths["seq.out"],
                i,
            )
        check_bio(tag, paths["seq.out"], i)
        lab = label.split()
        if len(lab) != 1:
            what = "empty intent label" if not lab else f"intent label has spaces: {label.strip()!r}"
            raise DataError(what, paths["label"], i)
        tokens.append(tok)
        tags.append(tag)
        intents.append(lab[0])
    return Split(split, tokens, tags, intents)


def load_dir(directory: str | Path) -> dict[str, Split]:
    """Load train and dev (required) and test (if all three of its files exist)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise SeqkitError(f"source directory not found: {directory}")
    splits = {}
    for split in REQUIRED_SPLITS:
        missing = [p.name for p in split_paths(directory, split).values() if not p.is_file()]
        if missing:
            raise DataError(
                f"missing {', '.join(missing)} (expected "
                f"{', '.join(f'{s}.{k}' for s in REQUIRED_SPLITS for k in KINDS)})",
                directory,
            )
        splits[split] = load_split(directory, split)
    for split in OPTIONAL_SPLITS:
        present = [p.is_file() for p in split_paths(directory, split).values()]
        if all(present):
            splits[split] = load_split(directory, split)
        elif any(present):
            missing = [p.name for p in split_paths(directory, split).values() if not p.is_file()]
            raise DataError(f"incomplete {split} split: missing {', '.join(missing)}", directory)
    return splits


# --------------------------------------------------------------------------- writing


def write_split(directory: str | Path, split: Split) -> None:
    """Write ``split`` normalized: UTF-8, LF, tokens joined by single spaces."""
    paths = split_paths(directory, split.name)
    columns = {
        "seq.in": [" ".join(t) for t in split.tokens],
        "seq.out": [" ".join(t) for t in split.tags],
        "label": split.intents,
    }
    for kind, rows in columns.items():
        text = "".join(r + "\n" for r in rows)
        paths[kind].write_bytes(text.encode("utf-8"))


def split_stats(split: Split) -> dict:
    tag_set = {t for tags in split.tags for t in tags}
    sentences = [" ".join(t) for t in split.tokens]
    return {
        "sentences": len(split),
        "tokens": sum(len(t) for t in split.tokens),
        "vocab": len({w for t in split.tokens for w in t}),
        "slot_tags": len(tag_set),
        "slot_types": len({t[2:] for t in tag_set if t != "O"}),
        "intents": len(set(split.intents)),
        "multi_intents": len({i for i in split.intents if "#" in i}),
        "max_len": max((len(t) for t in split.tokens), default=0),
        "duplicate_sentences": len(sentences) - len(set(sentences)),
    }


def compute_stats(splits: dict[str, Split]) -> dict:
    """Per-split counts, plus for each non-train split what train never shows."""
    out: dict = {}
    train = splits.get("train")
    train_tags = {t for tags in train.tags for t in tags} if train else set()
    train_intents = set(train.intents) if train else set()
    train_vocab = {w for t in train.tokens for w in t} if train else set()
    train_sents = {" ".join(t) for t in train.tokens} if train else set()
    for name, split in splits.items():
        st = split_stats(split)
        if train is not None and name != "train":
            tags = {t for tags in split.tags for t in tags}
            n_tok = st["tokens"]
            oov = sum(1 for t in split.tokens for w in t if w not in train_vocab)
            st["unseen_slot_tags"] = sorted(tags - train_tags)
            st["unseen_intents"] = sorted(set(split.intents) - train_intents)
            st["oov_tokens"] = oov
            st["oov_rate"] = round(oov / n_tok, 4) if n_tok else 0.0
            st["sentences_in_train"] = sum(1 for t in split.tokens if " ".join(t) in train_sents)
        out[name] = st
    return out


# --------------------------------------------------------------------------- download


def urllib_fetch(url: str, timeout: float) -> bytes:
    req = urllib.request.Request(url, headers={"User-Agent": "seqkit-data-prep"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.read()


def download(
    spec: DatasetSpec,
    dest: str | Path,
    fetch: Fetch | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    log: Callable[[str], None] | None = None,
) -> dict[str, dict]:
    """Download all raw files of ``spec`` into ``dest`` (named ``<split>.<kind>``).

    Returns ``{filename: {"url": ..., "sha256": ..., "bytes": ...}}``.  Network failures
    become a :class:`SeqkitError` that points the user to ``--src``.
    """
    fetch = urllib_fetch if fetch is None else fetch
    dest = Path(dest)
    manifest: dict[str, dict] = {}
    for (split, kind), url in source_urls(spec).items():
        if log:
            log(f"downloading {url}")
        try:
            data = fetch(url, timeout)
        except (OSError, ValueError, http.client.HTTPException) as err:
            # URLError, HTTPError and timeouts are OSErrors; IncompleteRead is an HTTPException
            reason = getattr(err, "reason", None) or err
            raise SeqkitError(
                f"could not download {url}: {reason}; use --src PATH for a local copy"
            ) from None
        name = f"{split}.{kind}"
        dest.mkdir(parents=True, exist_ok=True)
        (dest / name).write_bytes(data)
        manifest[name] = {
            "url": url,
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
        }
    return manifest


# --------------------------------------------------------------------------- pipeline


def prepare(
    spec: DatasetSpec,
    out: str | Path,
    src: str | Path | None = None,
    fetch: Fetch | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    log: Callable[[str], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> dict:
    """Read (``src``) or download the dataset, validate it, write it normalized to ``out``.

    Returns the ``stats.json`` content.  Downloads keep the raw files in ``out/raw/``.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SeqkitError(f"--out exists and is not a directory: {out}")
    out.mkdir(parents=True, exist_ok=True)
    if src is None:
        raw = out / "raw"
        manifest = download(spec, raw, fetch=fetch, timeout=timeout, log=log)
        splits = load_dir(raw)
        source = {
            "kind": "download",
            "repo": spec.repo,
            "commit": spec.commit,
            "raw_dir": "raw",
            "files": manifest,
        }
        for msg in check_counts(spec, {k: len(v) for k, v in splits.items()}):
            if warn:
                warn(msg)
    else:
        splits = load_dir(src)
        source = {"kind": "local", "path": str(Path(src).resolve())}
    for split in splits.values():
        write_split(out, split)
    stats = {"dataset": spec.name, "source": source, "splits": compute_stats(splits)}
    (out / "stats.json").write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n")
    return stats


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def summary(spec: DatasetSpec, stats: dict, out: str | Path) -> str:
    parts = []
    for name, st in stats["splits"].items():
        parts.append(
            f"{name} {st['sentences']} sentences / {st['tokens']} tokens / "
            f"{st['slot_tags']} slot tags / {st['intents']} intents"
        )
    src = stats["source"]
    where = (
        f"local copy {src['path']}"
        if src["kind"] == "local"
        else f"{src['repo']}@{src['commit'][:12]}"
    )
    text = f"{spec.title} from {where}: " + "; ".join(parts) + "."
    for name, st in stats["splits"].items():
        if name == "train":
            continue
        tags, intents = st["unseen_slot_tags"], st["unseen_intents"]
        seen = "none" if not (tags or intents) else ", ".join(tags + intents)
        text += (
            f" {name}: {_plural(len(tags), 'slot tag')} and {_plural(len(intents), 'intent')} "
            f"unseen in train ({seen}), OOV token rate {st['oov_rate']:.1%}."
        )
    text += f" Wrote normalized files and stats.json to {out}."
    return text


def build_parser(prog: str, default_dataset: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Prepare a joint slot-filling / intent dataset (SlotGated-SLU layout): validate "
            "it and write normalized train/dev[/test].{seq.in,seq.out,label} and stats.json. "
            f"Without --src the files are downloaded from {UPSTREAM_REPO} at commit "
            f"{UPSTREAM_COMMIT}."
        ),
    )
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument(
        "--src",
        help="local directory with train/dev(/test).{seq.in,seq.out,label}; no download",
    )
    p.add_argument("--dataset", choices=sorted(DATASETS), default=default_dataset)
    p.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, help="download timeout in seconds"
    )
    return p


def run_main(
    argv: Sequence[str] | None, default_dataset: str, prog: str, fetch: Fetch | None = None
) -> int:
    """Shared ``main`` of the loader scripts; returns the exit status."""
    parser = build_parser(prog, default_dataset)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or bad usage (2)
        return exc.code if isinstance(exc.code, int) else 2
    spec = DATASETS[args.dataset]

    def warn(msg: str) -> None:
        print(f"data_prep: warning: {msg}", file=sys.stderr)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr)

    try:
        stats = prepare(
            spec, args.out, src=args.src, fetch=fetch, timeout=args.timeout, log=log, warn=warn
        )
    except SeqkitError as err:
        print(f"data_prep: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # e.g. --out not writable
        print(f"data_prep: error: {err}", file=sys.stderr)
        return 2
    print(summary(spec, stats, args.out))
    return 0


__all__ = [
    "DATASETS",
    "DatasetSpec",
    "Split",
    "check_bio",
    "check_counts",
    "compute_stats",
    "download",
    "load_dir",
    "load_split",
    "prepare",
    "read_lines",
    "run_main",
    "source_urls",
    "summary",
    "urllib_fetch",
    "write_split",
]
