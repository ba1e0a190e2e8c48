"""Prepare the Free Spoken Digit Dataset (FSDD) as JSONL manifests, with leave-one-speaker-out
folds and synthetic connected-digit utterances.

Usage::

    python data_prep/fsdd.py --src ../shared/data/fsdd --out data/fsdd   # local copy
    python data_prep/fsdd.py --out data/fsdd                             # download
    python -m data_prep.fsdd ... [--connected-train 1500 --connected-dev 300 --seed 0]

``--src DIR`` is a copy of github.com/Jakobovski/free-spoken-digit-dataset holding
``recordings/{digit}_{speaker}_{index}.wav`` (8 kHz mono 16-bit PCM; ``DIR`` may also be the
``recordings`` folder itself).  Without ``--src`` the GitHub tarball at commit
26eb9aaf76e81b692f806f9140c2d2777410d7a1 is downloaded and extracted to
``OUT/raw/free-spoken-digit-dataset-<commit>/`` (reused by later runs).  The transcript is
the digit of the file name as an upper-case word (``ZERO`` ... ``NINE``).  A ``.wav`` file
whose name does not match the pattern, or an unreadable one, is an error naming the file;
other files (README, ...) are ignored.

Outputs in ``OUT``:

* ``all.jsonl``: every recording (``id`` = file name without ``.wav``, absolute ``path``);
* for each speaker ``S`` a leave-one-speaker-out fold ``heldout_S/``: ``train.jsonl`` (all
  other speakers), ``dev.jsonl`` (speaker ``S``), ``stats.json``;
* connected digits per fold: ``heldout_S/connected_train.jsonl`` (``--connected-train``
  utterances, default 1500, from the fold's training speakers) and
  ``heldout_S/connected_dev.jsonl`` (``--connected-dev``, default 300, from ``S``), audio in
  ``heldout_S/connected_wav/*.wav`` (16-bit PCM at the recordings' rate, 8 kHz).  Each
  utterance takes ONE random speaker of its side and 2-5 distinct random recordings of that
  speaker, joined with random gaps of digital silence of 0.05-0.3 s between them (none
  before the first or after the last); text e.g. ``THREE ONE FOUR``.  Extra manifest keys
  ``parts`` (the recording ids) and ``gaps`` (seconds), so ``duration`` = sum of the parts'
  durations + sum of the gaps.  Deterministic for a given ``--seed``: each fold and side
  draws from its own generator seeded by (seed, crc32(held-out speaker), side), so a fold's
  data does not depend on which other speakers exist.  ``0`` turns a side off;
* ``aw2v/train.jsonl`` / ``aw2v/dev.jsonl``: the audio word2vec split (every recording is one
  word): dev = ``--aw2v-dev-speakers`` (default nicolas, yweweler), train = the others; not
  written (noted in ``stats.json``) when those speakers are absent;
* ``stats.json``: counts of ``all`` (utterances, speakers, minutes, per speaker and per
  digit) and a summary of every fold.

Verified on the local copy (4 of the 6 speakers): 2,000 recordings, 13.85 minutes
(george 3.68, jackson 4.30, nicolas 2.91, yweweler 2.95); with the defaults the four folds
hold 4 x 1,800 connected WAVs (about 227 MB, about 25 s to write).
Errors print ``data_prep: error: <msg>`` and exit with status 2.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make data_prep and seqkit importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from data_prep._common import DEFAULT_TIMEOUT, Fetch  # noqa: E402
from data_prep._speech import (  # noqa: E402
    _stderr,
    audio_info,
    check_out,
    resolve_source,
    run_cli,
    split_stats,
    write_json,
)
from seqkit.data.manifest import Utterance, write_manifest  # noqa: E402
from seqkit.errors import DataError, SeqkitError  # noqa: E402

REPO = "Jakobovski/free-spoken-digit-dataset"
COMMIT = "26eb9aaf76e81b692f806f9140c2d2777410d7a1"
URL = f"https://github.com/{REPO}/archive/{COMMIT}.tar.gz"
WORDS = ("ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE")
# audio word2vec: segments of these speakers are the unseen-speaker dev set (French and German
# accents; training keeps the Greek-accented and the US speaker)
AW2V_DEV_SPEAKERS = ("nicolas", "yweweler")
MIN_DIGITS, MAX_DIGITS = 2, 5
MIN_GAP, MAX_GAP = 0.05, 0.3

_NAME_RE = re.compile(r"^(?P<digit>[0-9])_(?P<spk>[A-Za-z0-9]+)_(?P<idx>[0-9]+)\.wav$")


def recordings_dir(src: Path) -> Path:
    if (src / "recordings").is_dir():
        return src / "recordings"
    if src.is_dir() and any(src.glob("*.wav")):
        return src
    raise SeqkitError(f"no recordings/ folder (and no .wav files) in {src}")


def scan(rec_dir: Path) -> tuple[list[Utterance], list[int]]:
    """One utterance per recording, sorted by (speaker, digit, index), and the sample rates seen."""
    keyed = []
    rates = set()
    ignored = 0
    for p in rec_dir.iterdir():
        if p.suffix.lower() != ".wav":
            if p.is_file() and not p.name.startswith("."):
                ignored += 1
            continue
        m = _NAME_RE.match(p.name)
        if m is None:
            raise DataError("file name does not match {digit}_{speaker}_{index}.wav", p)
        info = audio_info(p)
        if info.channels != 1:
            raise DataError(f"{info.channels} channels, mono expected", p)
        rates.add(info.samplerate)
        u = Utterance(p.stem, str(p.resolve()), info.frames / info.samplerate,
                      WORDS[int(m["digit"])], m["spk"])
        keyed.append(((m["spk"], int(m["digit"]), int(m["idx"])), u))
    if not keyed:
        raise DataError("no recordings", rec_dir)
    if ignored:
        _stderr(f"ignored {ignored} non-.wav files in {rec_dir}")
    keyed.sort(key=lambda t: t[0])
    return [u for _, u in keyed], sorted(rates)


def load_audio(utts: Sequence[Utterance]) -> tuple[dict[str, np.ndarray], int]:
    """int16 samples of every recording (they are small) and the common sample rate."""
    audio, rate = {}, None
    for u in utts:
        try:
            x, sr = sf.read(u.path, dtype="int16")
        except (RuntimeError, OSError) as e:
            raise DataError(f"not a readable audio file: {e}", u.path) from None
        if rate is None:
            rate = sr
        elif sr != rate:
            raise DataError(f"sample rate {sr} Hz, but other recordings have {rate} Hz; "
                            "connected digits need one rate", u.path)
        audio[u.id] = x
    return audio, rate


def make_connected(utts: Sequence[Utterance], n: int, rng: np.random.Generator,
                   audio: dict[str, np.ndarray], rate: int, wav_dir: Path, prefix: str) -> list[Utterance]:
    """``n`` connected-digit utterances from ``utts`` (one speaker per utterance)."""
    by_spk: dict[str, list[Utterance]] = {}
    for u in utts:
        by_spk.setdefault(u.speaker, []).append(u)
    speakers = sorted(by_spk)
    lo, hi = round(MIN_GAP * rate), round(MAX_GAP * rate)
    out = []
    width = max(5, len(str(n)))
    for i in range(n):
        spk = speakers[int(rng.integers(len(speakers)))]
        pool = by_spk[spk]
        k = int(rng.integers(MIN_DIGITS, MAX_DIGITS + 1))
        picks = rng.choice(len(pool), size=k, replace=k > len(pool))
        gaps = rng.integers(lo, hi + 1, size=k - 1)
        pieces = []
        for j, idx in enumerate(picks):
            if j:
                pieces.append(np.zeros(int(gaps[j - 1]), dtype=np.int16))
            pieces.append(audio[pool[idx].id])
        x = np.concatenate(pieces)
        uid = f"{prefix}-{i + 1:0{width}d}"
        path = wav_dir / f"{uid}.wav"
        sf.write(str(path), x, rate, subtype="PCM_16")
        out.append(Utterance(uid, str(path.resolve()), len(x) / rate,
                             " ".join(pool[idx].text for idx in picks), spk,
                             extra={"parts": [pool[idx].id for idx in picks],
                                    "gaps": [int(g) / rate for g in gaps]}))
    return out


def _seq_stats(utts: Sequence[Utterance]) -> dict:
    st = split_stats(utts)
    for key in ("vocab", "max_words"):
        st.pop(key)
    return st


def prepare(out: str | Path, src: str | Path | None = None, connected_train: int = 1500,
            connected_dev: int = 300, seed: int = 0, fetch: Fetch | None = None,
            timeout: float = DEFAULT_TIMEOUT, log=None,
            aw2v_dev: Sequence[str] = AW2V_DEV_SPEAKERS) -> dict:
    """Read (or download) FSDD, write ``all.jsonl``, the folds and ``stats.json``; returns the stats."""
    if connected_train < 0 or connected_dev < 0 or seed < 0:
        raise SeqkitError("--connected-train, --connected-dev and --seed must be >= 0")
    out = check_out(out)
    root, source = resolve_source(src, URL, out / "raw" / f"free-spoken-digit-dataset-{COMMIT}", fetch, timeout,
                                  log)
    utts, rates = scan(recordings_dir(root))
    speakers = sorted({u.speaker for u in utts})
    if len(speakers) < 2:
        raise DataError(f"only one speaker ({speakers[0]}): leave-one-speaker-out needs two or more",
                        recordings_dir(root))
    write_manifest(out / "all.jsonl", utts)
    audio, rate = load_audio(utts) if connected_train or connected_dev else ({}, 0)
    st_all = _seq_stats(utts)
    st_all["sample_rates"] = rates
    st_all["per_speaker"] = {s: _seq_stats([u for u in utts if u.speaker == s]) for s in speakers}
    st_all["per_digit"] = {w: sum(u.text == w for u in utts) for w in WORDS}
    st: dict = {"dataset": "fsdd", "source": source, "seed": seed, "all": st_all, "folds": {}}
    for spk in speakers:
        fold = out / f"heldout_{spk}"
        fold.mkdir(exist_ok=True)
        train = [u for u in utts if u.speaker != spk]
        dev = [u for u in utts if u.speaker == spk]
        write_manifest(fold / "train.jsonl", train)
        write_manifest(fold / "dev.jsonl", dev)
        fst: dict = {"heldout_speaker": spk, "train_speakers": sorted({u.speaker for u in train}),
                     "train": _seq_stats(train), "dev": _seq_stats(dev)}
        wav_dir = fold / "connected_wav"
        if wav_dir.exists():
            shutil.rmtree(wav_dir)  # files of an earlier run
        for name in ("connected_train.jsonl", "connected_dev.jsonl"):
            (fold / name).unlink(missing_ok=True)
        if connected_train or connected_dev:
            wav_dir.mkdir()
            fold_key = zlib.crc32(spk.encode("utf-8"))
            for side, pool, n in (("train", train, connected_train), ("dev", dev, connected_dev)):
                if not n:
                    continue
                rng = np.random.default_rng([seed, fold_key, int(side == "dev")])
                conn = make_connected(pool, n, rng, audio, rate, wav_dir, f"conn-{spk}-out-{side}")
                write_manifest(fold / f"connected_{side}.jsonl", conn)
                fst[f"connected_{side}"] = _seq_stats(conn)
        write_json(fold / "stats.json", fst)
        st["folds"][f"heldout_{spk}"] = fst
    _write_aw2v_split(out, utts, speakers, aw2v_dev, st)
    write_json(out / "stats.json", st)
    return st


def _write_aw2v_split(out: Path, utts: Sequence[Utterance], speakers: list[str], dev_speakers: Sequence[str],
                      st: dict) -> None:
    """``OUT/aw2v/{train,dev}.jsonl``: the audio word2vec split, ``dev_speakers`` unseen in training."""
    missing = sorted(set(dev_speakers) - set(speakers))
    if not dev_speakers or missing or set(dev_speakers) >= set(speakers):
        st["aw2v"] = {"written": False, "reason": f"dev speakers {list(dev_speakers)} missing {missing} "
                                                  f"or leaving no training speaker (have {speakers})"}
        return
    train = [u for u in utts if u.speaker not in dev_speakers]
    dev = [u for u in utts if u.speaker in dev_speakers]
    write_manifest(out / "aw2v" / "train.jsonl", train)
    write_manifest(out / "aw2v" / "dev.jsonl", dev)
    st["aw2v"] = {"written": True, "dev_speakers": sorted(dev_speakers), "train": _seq_stats(train),
                  "dev": _seq_stats(dev)}


def main(argv: Sequence[str] | None = None, *, fetch: Fetch | None = None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 2 error)."""
    p = argparse.ArgumentParser(prog="data_prep/fsdd.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="data/fsdd", help="output directory (default data/fsdd)")
    p.add_argument("--src", help="local copy with recordings/*.wav; default: download")
    p.add_argument("--connected-train", type=int, default=1500, metavar="N",
                   help="connected-digit training utterances per fold (default 1500; 0: none)")
    p.add_argument("--connected-dev", type=int, default=300, metavar="N",
                   help="connected-digit dev utterances per fold (default 300; 0: none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the connected-digit generator")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="download timeout (s)")
    p.add_argument("--aw2v-dev-speakers", default=",".join(AW2V_DEV_SPEAKERS), metavar="A,B",
                   help="speakers of the audio word2vec dev split aw2v/dev.jsonl (the others train; "
                        f"default {','.join(AW2V_DEV_SPEAKERS)})")
    args = p.parse_args(argv)

    def body() -> None:
        st = prepare(args.out, args.src, args.connected_train, args.connected_dev, args.seed,
                     fetch=fetch, timeout=args.timeout, log=_stderr,
                     aw2v_dev=[x for x in args.aw2v_dev_speakers.split(",") if x])
        a = st["all"]
        per = ", ".join(f"{s} {v['utterances']} / {v['minutes']:.2f} min" for s, v in a["per_speaker"].items())
        print(f"all: {a['utterances']} recordings, {a['speakers']} speakers, {a['minutes']:.2f} min "
              f"({per}) -> {args.out}/all.jsonl")
        for name, f in st["folds"].items():
            line = (f"{name}: train {f['train']['utterances']} ({f['train']['minutes']:.2f} min), "
                    f"dev {f['dev']['utterances']} ({f['dev']['minutes']:.2f} min)")
            for side in ("train", "dev"):
                c = f.get(f"connected_{side}")
                if c:
                    line += f"; connected {side} {c['utterances']} ({c['minutes']:.2f} min, {c['words']} digits)"
            print(line)

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
