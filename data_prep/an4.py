"""Prepare AN4 (CMU census database) as JSONL speech manifests for ASR.

Usage::

    python data_prep/an4.py --src ../shared/data/an4 --out data/an4   # local copy
    python data_prep/an4.py --out data/an4                            # download
    python -m data_prep.an4 ...

``--src DIR`` is a copy of the repository github.com/cmusphinx/an4: the transcripts
``etc/an4_train.transcription`` (lines ``<s> U M N Y H SIX </s> (an255-fash-b)``) and the
audio ``wav/an4_clstk/<speaker>/<utt-id>.wav`` (16 kHz mono 16-bit PCM).  Without ``--src``
the GitHub tarball of cmusphinx/an4 at commit b567d132f43304e70a2b2eca6077f22255311812 is
downloaded and extracted to ``OUT/raw/an4-<commit>/`` (reused by later runs), then read the
same way.  If the source also holds the official test set (``wav/an4test_clstk/`` and
``etc/an4_test.transcription``; the download does, the local copy in this project does not)
``test.jsonl`` is written too.

Dev split: AN4 ships no dev set, so one is carved out of the training part **by speaker**
(dev and train speakers are disjoint).  Rule: sort the speaker ids (``f*`` = female sort
before ``m*`` = male), take ``N = --dev-speakers`` (default 8) evenly spaced ones, the
speakers at sorted positions ``floor((2i + 1) * S / (2N))`` for ``i = 0 .. N-1`` (``S``
speakers).  Because the list is sorted by gender prefix, the dev set gets about the
corpus's female share.  For AN4 (74 speakers, 21 female) the default gives 8 speakers, 2 of
them female.

Outputs in ``OUT``:

* ``train.jsonl``, ``dev.jsonl`` (``test.jsonl``): one utterance per line, the format of
  :mod:`seqkit.data.manifest` (``id`` = the AN4 utterance id, absolute ``path``,
  ``duration`` in seconds from the WAV header, ``text`` upper case as in the source with
  ``<s>``, ``</s>`` and the trailing ``(utt-id)`` removed, ``speaker``);
* ``train_text.txt`` / ``dev_text.txt``: the transcripts, one per line (word LMs:
  ``seqkit ngram``);
* ``train_chars.txt`` / ``dev_chars.txt``: the same as space-separated characters with
  ``|`` between words (a character RNN LM: ``recipes/asr/an4/char_lm.yaml``);
* ``stats.json``: per split utterances, speakers (female/male), hours/minutes, words,
  vocabulary; the dev speaker list; dev (test) word types never seen in train.

Nothing is dropped: a transcript line that does not parse, a duplicate id, an empty
transcript, a missing or unreadable WAV is an error naming the file (and line).
Verified on the local copy (training part only): 948 utterances, 74 speakers, 42.44 minutes;
with the default split train 844 utterances / 66 speakers / 37.58 min, dev 104 / 8 speakers
(ffmm fmjd mbmg mdxn mjda mmal mrjc2 mtcv) / 4.86 min; one dev word type never occurs in
train (SEVENTH).

Errors print ``data_prep: error: <msg>`` and exit with status 2.

This module also holds the small helpers shared with ``fsdd.py`` and ``yesno.py``
(tarball download/extraction, audio info, duration/word statistics).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make data_prep and seqkit importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from data_prep._common import DEFAULT_TIMEOUT, Fetch  # noqa: E402
from data_prep._speech import (  # noqa: E402
    Log,
    _stderr,
    audio_info,
    check_out,
    resolve_source,
    run_cli,
    split_stats,
    warn,
    write_json,
)
from seqkit.data.manifest import Utterance, write_manifest  # noqa: E402
from seqkit.errors import DataError, SeqkitError  # noqa: E402
from seqkit.textio import read_lines  # noqa: E402

REPO = "cmusphinx/an4"
COMMIT = "b567d132f43304e70a2b2eca6077f22255311812"
URL = f"https://github.com/{REPO}/archive/{COMMIT}.tar.gz"
DEFAULT_DEV_SPEAKERS = 8
# (transcription file, wav directory) relative to the source root
SPLIT_FILES = {
    "train": ("etc/an4_train.transcription", "wav/an4_clstk"),
    "test": ("etc/an4_test.transcription", "wav/an4test_clstk"),
}
EXPECTED = {"train": 948, "test": 130}

_LINE_RE = re.compile(r"^(?:<s>\s+)?(?P<text>.*?)\s*(?:</s>\s*)?\((?P<id>[^()\s]+)\)$")
_ID_RE = re.compile(r"^[A-Za-z0-9]+-(?P<spk>[A-Za-z0-9]+)-[A-Za-z0-9]+$")

def parse_transcription(path: str | Path) -> list[tuple[int, str, str, str]]:
    """``(line, utt_id, speaker, text)`` per non-blank line of an AN4 transcription file."""
    path = Path(path)
    rows = []
    seen: dict[str, int] = {}
    for n, line in enumerate(read_lines(path), 1):
        line = line.strip()
        if not line:
            continue
        m = _LINE_RE.match(line)
        if m is None:
            raise DataError(f"cannot parse {line!r} (expected '<s> WORDS </s> (utt-id)')", path, n)
        uid, text = m.group("id"), " ".join(m.group("text").split())
        mid = _ID_RE.match(uid)
        if mid is None:
            raise DataError(f"utterance id {uid!r} is not of the form <prefix>-<speaker>-<suffix>", path, n)
        if not text:
            raise DataError(f"utterance {uid}: empty transcript", path, n)
        if any(c in text for c in "<>()"):
            raise DataError(f"utterance {uid}: unexpected markup in transcript {text!r}", path, n)
        if uid in seen:
            raise DataError(f"duplicate utterance id {uid!r} (first on line {seen[uid]})", path, n)
        seen[uid] = n
        rows.append((n, uid, mid.group("spk"), text))
    if not rows:
        raise DataError("no utterances", path)
    return rows


def load_split(src: Path, split: str) -> list[Utterance]:
    """Utterances of ``split`` ("train" or "test"), each checked against its WAV file."""
    trans_rel, wav_rel = SPLIT_FILES[split]
    trans, wav_dir = src / trans_rel, src / wav_rel
    utts = []
    for n, uid, spk, text in parse_transcription(trans):
        wav = wav_dir / spk / f"{uid}.wav"
        if not wav.is_file():
            raise DataError(f"utterance {uid}: audio file not found: {wav}", trans, n)
        info = audio_info(wav, f"utterance {uid}, {trans}:{n}")
        utts.append(Utterance(uid, str(wav.resolve()), info.frames / info.samplerate, text, spk))
    listed = {Path(u.path).name for u in utts}
    unlisted = [p for p in wav_dir.glob("*/*.wav") if p.name not in listed]
    if unlisted:
        warn(f"{len(unlisted)} WAV files under {wav_dir} have no line in {trans} and are not "
             f"used (first: {sorted(unlisted)[0]})")
    want = EXPECTED.get(split)
    if want is not None and len(utts) != want:
        warn(f"{split}: {len(utts)} utterances, the AN4 release has {want}")
    return utts


def pick_dev_speakers(speakers: Iterable[str], n: int) -> list[str]:
    """``n`` evenly spaced speakers of the sorted list: positions ``floor((2i+1)S / 2n)``."""
    s = sorted(set(speakers))
    if not 1 <= n < len(s):
        raise SeqkitError(f"--dev-speakers must be between 1 and {len(s) - 1} (there are "
                          f"{len(s)} training speakers), got {n}")
    return [s[(2 * i + 1) * len(s) // (2 * n)] for i in range(n)]


def _genders(speakers: Iterable[str]) -> dict:
    s = sorted(set(speakers))
    return {"female": sum(x.startswith("f") for x in s), "male": sum(x.startswith("m") for x in s)}


def char_line(text: str) -> str:
    """A transcript as space-separated characters with ``|`` between words, the text of a
    character LM (``seqkit train`` with ``task: language_model`` reads whitespace tokens):
    ``"GO HOME"`` -> ``"G O | H O M E"``."""
    return " | ".join(" ".join(word) for word in text.split())


def prepare(out: str | Path, src: str | Path | None = None, dev_speakers: int = DEFAULT_DEV_SPEAKERS,
            fetch: Fetch | None = None, timeout: float = DEFAULT_TIMEOUT, log: Log | None = None) -> dict:
    """Read (or download) AN4, split off the dev speakers, write ``out``; returns the stats."""
    out = check_out(out)
    root, source = resolve_source(src, URL, out / "raw" / f"an4-{COMMIT}", fetch, timeout, log)
    all_train = load_split(root, "train")
    test = None
    have = [p for p in SPLIT_FILES["test"] if (root / p).exists()]
    if len(have) == 2:
        test = load_split(root, "test")
    elif have:
        miss = [p for p in SPLIT_FILES["test"] if p not in have]
        raise DataError(f"incomplete test set: {have[0]} exists but {miss[0]} does not", root)
    dev_spk = pick_dev_speakers((u.speaker for u in all_train), dev_speakers)
    dev_set = set(dev_spk)
    splits = {"train": [u for u in all_train if u.speaker not in dev_set],
              "dev": [u for u in all_train if u.speaker in dev_set]}
    if test is not None:
        splits["test"] = test
        overlap = sorted({u.speaker for u in test} & {u.speaker for u in all_train})
        if overlap:
            warn(f"test speakers also in the training part: {', '.join(overlap)}")
    for name, utts in splits.items():
        write_manifest(out / f"{name}.jsonl", utts)
    if test is None and (out / "test.jsonl").exists():
        (out / "test.jsonl").unlink()
        warn(f"removed {out / 'test.jsonl'} of an earlier run (this source has no test set)")
    for name in ("train", "dev"):
        texts = [u.text for u in splits[name]]
        (out / f"{name}_text.txt").write_text("".join(t + "\n" for t in texts), encoding="utf-8")
        (out / f"{name}_chars.txt").write_text("".join(char_line(t) + "\n" for t in texts), encoding="utf-8")
    st: dict = {"dataset": "an4", "source": source,
                "dev_rule": f"{dev_speakers} evenly spaced of the sorted training speakers",
                "dev_speakers": dev_spk, "splits": {}}
    for name, utts in splits.items():
        s = split_stats(utts, None if name == "train" else splits["train"])
        s.update(_genders(u.speaker for u in utts))
        st["splits"][name] = s
    write_json(out / "stats.json", st)
    return st


def main(argv: Sequence[str] | None = None, *, fetch: Fetch | None = None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 2 error)."""
    p = argparse.ArgumentParser(prog="data_prep/an4.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="data/an4", help="output directory (default data/an4)")
    p.add_argument("--src", help="local copy of cmusphinx/an4 (etc/, wav/); default: download")
    p.add_argument("--dev-speakers", type=int, default=DEFAULT_DEV_SPEAKERS, metavar="N",
                   help=f"number of training speakers held out as dev (default {DEFAULT_DEV_SPEAKERS})")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="download timeout (s)")
    args = p.parse_args(argv)

    def body() -> None:
        st = prepare(args.out, args.src, args.dev_speakers, fetch=fetch, timeout=args.timeout, log=_stderr)
        for name, s in st["splits"].items():
            print(f"{name}: {s['utterances']} utterances, {s['speakers']} speakers "
                  f"({s['female']} f / {s['male']} m), {s['minutes']:.2f} min, {s['words']} words, "
                  f"vocab {s['vocab']} -> {args.out}/{name}.jsonl")
        print(f"dev speakers: {' '.join(st['dev_speakers'])}")
        for name, s in st["splits"].items():
            if name != "train":
                unseen = " ".join(s["unseen_word_types"]) or "none"
                print(f"{name} words never seen in train: {len(s['unseen_word_types'])} types / "
                      f"{s['unseen_word_tokens']} tokens ({unseen})")

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
