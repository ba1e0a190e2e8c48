"""Tests for the speech data preparation scripts: data_prep/an4.py, fsdd.py, yesno.py.

Fast and offline, and independent of ../shared: AN4 runs on the six real utterances shipped
in tests/data/an4_tiny; FSDD and YESNO run on short synthetic tones written to tmp_path; the
download paths get a fake ``fetch`` that returns a tar.gz built in memory.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from data_prep import an4, fsdd, yesno  # noqa: E402
from seqkit.data.manifest import read_manifest  # noqa: E402
from seqkit.errors import DataError, SeqkitError  # noqa: E402

AN4_TINY = ROOT / "tests" / "data" / "an4_tiny"
AN4_TEXTS = {
    "an253-fash-b": "GO",
    "cen2-fash-b": "A M Y",
    "an2-mblw-b": "Z EIGHT OH TWO",
    "an5-mblw-b": "REPEAT",
    "an129-mcen-b": "ENTER SIXTY",
    "an130-mcen-b": "HELP",
}


def tar_gz(files: dict[str, bytes]) -> bytes:
    """An in-memory .tar.gz with ``files`` ({archive path: content})."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class FakeFetch:
    def __init__(self, data: bytes | Exception):
        self.data = data
        self.urls: list[str] = []

    def __call__(self, url: str, timeout: float) -> bytes:
        self.urls.append(url)
        if isinstance(self.data, Exception):
            raise self.data
        return self.data


def tone(seconds: float, freq: float = 440.0, rate: int = 8000) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.3 * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def an4_copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(AN4_TINY, tmp_path / "an4"))


# --------------------------------------------------------------------------- AN4


def test_an4_tiny_prepare(tmp_path, capsys):
    out = tmp_path / "out"
    rc = an4.main(["--src", str(AN4_TINY), "--out", str(out), "--dev-speakers", "1"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    train, dev = read_manifest(out / "train.jsonl", allow_outside=True), read_manifest(out / "dev.jsonl", allow_outside=True)
    assert len(train) == 4 and len(dev) == 2
    # rule: the middle one of the 3 sorted speakers (fash, mblw, mcen)
    assert {u.speaker for u in dev} == {"mblw"}
    assert {u.speaker for u in train} == {"fash", "mcen"}
    for u in train + dev:
        assert u.text == AN4_TEXTS[u.id]
        assert Path(u.path).is_absolute() and Path(u.path).is_file()
        assert Path(u.path).parent.name == u.speaker
        assert u.duration == pytest.approx(sf.info(u.path).duration, abs=1e-4)
        assert 0.5 < u.duration < 2.0
    assert [u.id for u in train] == ["an253-fash-b", "cen2-fash-b", "an129-mcen-b", "an130-mcen-b"]
    assert (out / "train_text.txt").read_text() == "GO\nA M Y\nENTER SIXTY\nHELP\n"
    assert not (out / "test.jsonl").exists()
    st = json.loads((out / "stats.json").read_text())
    assert st["dev_speakers"] == ["mblw"]
    assert st["source"] == {"kind": "local", "path": str(AN4_TINY.resolve())}
    assert st["splits"]["train"]["utterances"] == 4 and st["splits"]["train"]["speakers"] == 2
    assert st["splits"]["train"]["female"] == 1 and st["splits"]["dev"]["male"] == 1
    assert st["splits"]["dev"]["words"] == 5
    assert st["splits"]["dev"]["unseen_word_types"] == ["EIGHT", "OH", "REPEAT", "TWO", "Z"]
    total = sum(u.duration for u in train + dev)
    assert st["splits"]["train"]["minutes"] + st["splits"]["dev"]["minutes"] == pytest.approx(total / 60, abs=0.01)
    assert "dev speakers: mblw" in cap.out


def test_an4_dev_speaker_rule():
    speakers = [f"f{i:02d}" for i in range(21)] + [f"m{i:02d}" for i in range(53)]  # AN4's 21 f + 53 m
    dev = an4.pick_dev_speakers(reversed(speakers), 8)
    assert dev == sorted(dev) and len(set(dev)) == 8
    assert sum(s.startswith("f") for s in dev) == 2
    assert an4.pick_dev_speakers(speakers, 8) == dev  # deterministic, order-independent
    assert sum(s.startswith("f") for s in an4.pick_dev_speakers(speakers, 7)) == 2
    for bad in (0, 74):
        with pytest.raises(SeqkitError, match="--dev-speakers"):
            an4.pick_dev_speakers(speakers, bad)


def test_an4_with_test_split(tmp_path):
    src = an4_copy(tmp_path)
    wav = src / "wav" / "an4test_clstk" / "fxyz" / "an406-fxyz-b.wav"
    wav.parent.mkdir(parents=True)
    shutil.copy(src / "wav" / "an4_clstk" / "fash" / "an253-fash-b.wav", wav)
    (src / "etc" / "an4_test.transcription").write_text("<s> NOVEMBER GO </s> (an406-fxyz-b)\n")
    st = an4.prepare(tmp_path / "out", src, dev_speakers=1)
    test = read_manifest(tmp_path / "out" / "test.jsonl", allow_outside=True)
    assert [(u.id, u.speaker, u.text) for u in test] == [("an406-fxyz-b", "fxyz", "NOVEMBER GO")]
    assert st["splits"]["test"]["unseen_word_types"] == ["NOVEMBER"]
    # half a test set is an error, not silently ignored
    shutil.rmtree(src / "wav" / "an4test_clstk")
    with pytest.raises(DataError, match="incomplete test set"):
        an4.prepare(tmp_path / "out2", src, dev_speakers=1)


def test_an4_malformed_line_names_file_and_line(tmp_path, capsys):
    src = an4_copy(tmp_path)
    trans = src / "etc" / "an4_train.transcription"
    lines = trans.read_text().splitlines()
    lines.insert(2, "<s> HELP </s> an130-mcen-b")  # no (utt-id) in parentheses
    trans.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as err:
        an4.prepare(tmp_path / "out", src, dev_speakers=1)
    assert err.value.path == str(trans) and err.value.line == 3
    rc = an4.main(["--src", str(src), "--out", str(tmp_path / "out"), "--dev-speakers", "1"])
    stderr = capsys.readouterr().err
    assert rc == 2
    assert stderr.startswith(f"data_prep: error: {trans}:3: cannot parse")


@pytest.mark.parametrize("line, match", [
    ("<s> </s> (an130-mcen-b)", "empty transcript"),
    ("<s> HELP </s> (an130mcen)", "not of the form"),
    ("<s> GO </s> (an253-fash-b)", "duplicate utterance id"),
])
def test_an4_bad_transcript_lines(tmp_path, line, match):
    src = an4_copy(tmp_path)
    trans = src / "etc" / "an4_train.transcription"
    trans.write_text(trans.read_text() + line + "\n")
    with pytest.raises(DataError, match=match) as err:
        an4.prepare(tmp_path / "out", src, dev_speakers=1)
    assert err.value.path == str(trans) and err.value.line == 7


def test_an4_missing_wav_is_named(tmp_path):
    src = an4_copy(tmp_path)
    wav = src / "wav" / "an4_clstk" / "mcen" / "an130-mcen-b.wav"
    wav.unlink()
    with pytest.raises(DataError) as err:
        an4.prepare(tmp_path / "out", src, dev_speakers=1)
    msg = str(err.value)
    assert str(wav) in msg and "not found" in msg
    assert err.value.path.endswith("an4_train.transcription") and err.value.line == 6


def test_an4_unreadable_wav_is_named(tmp_path):
    src = an4_copy(tmp_path)
    wav = src / "wav" / "an4_clstk" / "fash" / "cen2-fash-b.wav"
    wav.write_bytes(b"RIFF this is not audio")
    with pytest.raises(DataError, match="not a readable audio file") as err:
        an4.prepare(tmp_path / "out", src, dev_speakers=1)
    assert err.value.path == str(wav)
    assert "an4_train.transcription:2" in str(err.value)


def an4_tarball() -> bytes:
    top = f"an4-{an4.COMMIT}"
    return tar_gz({f"{top}/{p.relative_to(AN4_TINY).as_posix()}": p.read_bytes()
                   for p in sorted(AN4_TINY.rglob("*")) if p.is_file()})


def test_an4_download_with_fake_fetch(tmp_path, capsys):
    out = tmp_path / "out"
    fetch = FakeFetch(an4_tarball())
    rc = an4.main(["--out", str(out), "--dev-speakers", "1"], fetch=fetch)
    assert rc == 0, capsys.readouterr().err
    assert fetch.urls == [f"https://github.com/cmusphinx/an4/archive/{an4.COMMIT}.tar.gz"]
    raw = out / "raw" / f"an4-{an4.COMMIT}"
    dev = read_manifest(out / "dev.jsonl", allow_outside=True)
    assert [u.id for u in dev] == ["an2-mblw-b", "an5-mblw-b"]
    assert all(Path(u.path).is_relative_to(raw.resolve()) and Path(u.path).is_file() for u in dev)
    st = json.loads((out / "stats.json").read_text())
    assert st["source"]["kind"] == "download" and st["source"]["url"] == fetch.urls[0]
    assert st["source"]["bytes"] == len(fetch.data)
    # the extracted copy is reused: no second download
    assert an4.main(["--out", str(out), "--dev-speakers", "1"], fetch=fetch) == 0
    assert len(fetch.urls) == 1


def test_an4_download_failures(tmp_path, capsys):
    rc = an4.main(["--out", str(tmp_path / "a")], fetch=FakeFetch(urllib.error.URLError("no network")))
    err = capsys.readouterr().err
    assert rc == 2 and "could not download" in err and "--src" in err
    with pytest.raises(DataError, match="not a valid tar archive"):
        an4.prepare(tmp_path / "b", fetch=FakeFetch(b"<html>not a tarball</html>"))
    with pytest.raises(DataError, match="unsafe path"):
        an4.prepare(tmp_path / "c", fetch=FakeFetch(tar_gz({"../evil.txt": b"x"})))
    assert not (tmp_path / "evil.txt").exists()


# --------------------------------------------------------------------------- FSDD

FSDD_SPEAKERS = ("alice", "bob", "carol")
FSDD_DIGITS = (3, 7)


def make_fsdd(root: Path) -> Path:
    """3 speakers x 2 digits x 2 takes of 8 kHz tones, 0.2 s plus a few ms per file."""
    rec = root / "recordings"
    rec.mkdir(parents=True)
    for s, spk in enumerate(FSDD_SPEAKERS):
        for d in FSDD_DIGITS:
            for i in range(2):
                x = tone(0.2 + 0.01 * (s + i), freq=200 + 50 * d + 10 * s)
                sf.write(str(rec / f"{d}_{spk}_{i}.wav"), x, 8000, subtype="PCM_16")
    (rec / "README.txt").write_text("not a recording\n")  # ignored
    return root


def connected_fields(path: Path) -> list[tuple]:
    return [(u.id, u.text, u.speaker, tuple(u.extra["parts"]), tuple(u.extra["gaps"]), u.duration)
            for u in read_manifest(path, allow_outside=True)]


def test_fsdd_folds_and_connected_digits(tmp_path, capsys):
    src, out = make_fsdd(tmp_path / "fsdd"), tmp_path / "out"
    args = ["--src", str(src), "--out", str(out), "--connected-train", "8", "--connected-dev", "4", "--seed", "3"]
    rc = fsdd.main(args)
    assert rc == 0, capsys.readouterr().err
    everything = read_manifest(out / "all.jsonl", allow_outside=True)
    assert len(everything) == 12
    by_id = {u.id: u for u in everything}
    assert by_id["3_alice_0"].text == "THREE" and by_id["7_carol_1"].text == "SEVEN"
    assert by_id["7_carol_1"].speaker == "carol"
    assert by_id["3_bob_1"].duration == pytest.approx(0.22)
    st = json.loads((out / "stats.json").read_text())
    assert st["all"]["utterances"] == 12 and st["all"]["speakers"] == 3
    assert st["all"]["per_digit"]["THREE"] == 6 and st["all"]["per_digit"]["ONE"] == 0
    assert sorted(st["folds"]) == [f"heldout_{s}" for s in FSDD_SPEAKERS]
    for spk in FSDD_SPEAKERS:
        fold = out / f"heldout_{spk}"
        train, dev = read_manifest(fold / "train.jsonl", allow_outside=True), read_manifest(fold / "dev.jsonl", allow_outside=True)
        assert {u.speaker for u in dev} == {spk} and len(dev) == 4
        assert {u.speaker for u in train} == set(FSDD_SPEAKERS) - {spk} and len(train) == 8
        assert json.loads((fold / "stats.json").read_text())["heldout_speaker"] == spk
        for side, n, speakers in (("train", 8, set(FSDD_SPEAKERS) - {spk}), ("dev", 4, {spk})):
            conn = read_manifest(fold / f"connected_{side}.jsonl", allow_outside=True)
            assert len(conn) == n
            for u in conn:
                parts, gaps = u.extra["parts"], u.extra["gaps"]
                assert 2 <= len(parts) <= 5 and len(gaps) == len(parts) - 1
                assert all(0.05 <= g <= 0.3 for g in gaps)
                assert u.speaker in speakers and {by_id[p].speaker for p in parts} == {u.speaker}
                assert u.text == " ".join(by_id[p].text for p in parts)
                assert u.duration == pytest.approx(sum(by_id[p].duration for p in parts) + sum(gaps), abs=2e-4)
                x, rate = sf.read(u.path, dtype="int16")
                assert rate == 8000 and sf.info(u.path).subtype == "PCM_16"
                assert Path(u.path).parent == (fold / "connected_wav").resolve()
                # the audio is exactly the parts with silence between them
                pieces = []
                for j, p in enumerate(parts):
                    if j:
                        pieces.append(np.zeros(round(gaps[j - 1] * 8000), dtype=np.int16))
                    pieces.append(sf.read(by_id[p].path, dtype="int16")[0])
                np.testing.assert_array_equal(x, np.concatenate(pieces))
    # deterministic for a seed (manifests and audio), different for another seed
    fsdd.prepare(tmp_path / "again", src, 8, 4, seed=3)
    fsdd.prepare(tmp_path / "other", src, 8, 4, seed=4)
    name = "heldout_bob/connected_train.jsonl"
    assert connected_fields(out / name) == connected_fields(tmp_path / "again" / name)
    assert connected_fields(out / name) != connected_fields(tmp_path / "other" / name)
    wav = "heldout_bob/connected_wav/conn-bob-out-dev-00004.wav"
    assert (out / wav).read_bytes() == (tmp_path / "again" / wav).read_bytes()


def test_fsdd_without_connected_and_rerun_cleans_up(tmp_path):
    src, out = make_fsdd(tmp_path / "fsdd"), tmp_path / "out"
    fsdd.prepare(out, src, 3, 2, seed=0)
    assert len(list((out / "heldout_alice" / "connected_wav").iterdir())) == 5
    st = fsdd.prepare(out, src / "recordings", 0, 0)  # --src may be the recordings folder
    assert not (out / "heldout_alice" / "connected_wav").exists()
    assert not (out / "heldout_alice" / "connected_train.jsonl").exists()
    assert "connected_train" not in st["folds"]["heldout_alice"]
    assert len(read_manifest(out / "heldout_alice" / "dev.jsonl", allow_outside=True)) == 4


@pytest.mark.parametrize("name", ["3_alice.wav", "x_alice_0.wav", "3-alice-0.wav", "12_alice_0.wav"])
def test_fsdd_bad_file_name(tmp_path, capsys, name):
    src = make_fsdd(tmp_path / "fsdd")
    bad = src / "recordings" / name
    sf.write(str(bad), tone(0.2), 8000)
    with pytest.raises(DataError, match="does not match") as err:
        fsdd.prepare(tmp_path / "out", src, 0, 0)
    assert err.value.path == str(bad)
    assert fsdd.main(["--src", str(src), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith(f"data_prep: error: {bad}: ")


def test_fsdd_one_speaker_is_an_error(tmp_path):
    src = make_fsdd(tmp_path / "fsdd")
    for p in (src / "recordings").glob("*_bob_*.wav"):
        p.unlink()
    for p in (src / "recordings").glob("*_carol_*.wav"):
        p.unlink()
    with pytest.raises(DataError, match="only one speaker"):
        fsdd.prepare(tmp_path / "out", src, 0, 0)


def test_fsdd_download_with_fake_fetch(tmp_path):
    src = make_fsdd(tmp_path / "made")
    top = f"free-spoken-digit-dataset-{fsdd.COMMIT}"
    files = {f"{top}/{p.relative_to(src).as_posix()}": p.read_bytes() for p in sorted(src.rglob("*")) if p.is_file()}
    files[f"{top}/README.md"] = b"# FSDD\n"
    fetch = FakeFetch(tar_gz(files))
    st = fsdd.prepare(tmp_path / "out", None, 2, 1, fetch=fetch)
    assert fetch.urls == [f"https://github.com/Jakobovski/free-spoken-digit-dataset/archive/{fsdd.COMMIT}.tar.gz"]
    assert st["all"]["utterances"] == 12 and st["source"]["kind"] == "download"
    assert (tmp_path / "out" / "raw" / top / "recordings" / "3_alice_0.wav").is_file()


# --------------------------------------------------------------------------- YESNO

YESNO_NAMES = ["0_0_1_1_0_1_0_1", "0_1_1_0_0_0_1_1", "1_0_0_0_1_1_1_0", "0_0_0_0_1_1_1_1", "1_1_1_1_0_0_0_0"]


def make_yesno(root: Path) -> Path:
    wd = root / "waves_yesno"
    wd.mkdir(parents=True)
    for k, name in enumerate(YESNO_NAMES):
        sf.write(str(wd / f"{name}.wav"), tone(0.3 + 0.1 * k), 8000, subtype="PCM_16")
    (wd / "README").write_text("yes/no\n")
    return root


def test_yesno_prepare(tmp_path, capsys):
    src, out = make_yesno(tmp_path / "yesno"), tmp_path / "out"
    assert yesno.main(["--src", str(src), "--out", str(out), "--dev-files", "2"]) == 0, capsys.readouterr().err
    train, dev = read_manifest(out / "train.jsonl", allow_outside=True), read_manifest(out / "dev.jsonl", allow_outside=True)
    order = sorted(YESNO_NAMES)
    assert [u.id for u in train] == order[:3] and [u.id for u in dev] == order[3:]
    by_id = {u.id: u for u in train + dev}
    assert by_id["0_1_1_0_0_0_1_1"].text == "NO YES YES NO NO NO YES YES"
    assert by_id["1_1_1_1_0_0_0_0"].text == "YES YES YES YES NO NO NO NO"
    assert {u.speaker for u in train + dev} == {"yesno"}
    assert by_id["1_1_1_1_0_0_0_0"].duration == pytest.approx(0.7)
    st = json.loads((out / "stats.json").read_text())
    assert st["splits"]["dev"]["words"] == 16 and st["splits"]["train"]["utterances"] == 3
    assert st["splits"]["dev"]["yes"] + st["splits"]["dev"]["no"] == 16
    assert yesno.prepare(tmp_path / "out4", src, dev_files=4)["splits"]["dev"]["utterances"] == 4
    with pytest.raises(SeqkitError, match="--dev-files"):
        yesno.prepare(tmp_path / "out6", src)  # the default, 6 dev files, needs 7 or more files


def test_yesno_bad_name(tmp_path):
    src = make_yesno(tmp_path / "yesno")
    bad = src / "waves_yesno" / "0_1_2_0.wav"
    sf.write(str(bad), tone(0.2), 8000)
    with pytest.raises(DataError, match="0/1 labels") as err:
        yesno.prepare(tmp_path / "out", src, dev_files=1)
    assert err.value.path == str(bad)


def test_yesno_download_with_fake_fetch(tmp_path):
    src = make_yesno(tmp_path / "made")
    files = {f"waves_yesno/{p.name}": p.read_bytes() for p in sorted((src / "waves_yesno").iterdir())}
    fetch = FakeFetch(tar_gz(files))
    st = yesno.prepare(tmp_path / "out", dev_files=1, fetch=fetch)
    assert fetch.urls == ["https://www.openslr.org/resources/1/waves_yesno.tar.gz"]
    assert st["splits"]["train"]["utterances"] == 4 and st["source"]["kind"] == "download"
    dev = read_manifest(tmp_path / "out" / "dev.jsonl", allow_outside=True)
    assert Path(dev[0].path) == (tmp_path / "out" / "raw" / "waves_yesno" / "1_1_1_1_0_0_0_0.wav").resolve()


def test_script_runs_as_a_file_and_exits_2_on_error(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "data_prep" / "yesno.py"), "--src",
                           str(tmp_path / "missing"), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("data_prep: error: --src is not a directory")


def test_fsdd_pseudo_label_manifest(tmp_path):
    """recipes/asr/fsdd/pseudo_label.py: training utterances plus the held-out ones with the
    given transcripts (never their references); an empty transcript is skipped and counted, a
    line-count mismatch names the file."""
    src, out = make_fsdd(tmp_path / "fsdd"), tmp_path / "out"
    fsdd.prepare(out, src, 0, 0)
    fold = out / f"heldout_{FSDD_SPEAKERS[0]}"
    dev = read_manifest(fold / "dev.jsonl", allow_outside=True)
    hyp = tmp_path / "dev.hyp"
    hyp.write_text("".join(("" if i == 1 else "NINE") + "\n" for i in range(len(dev))))
    script = ROOT / "recipes" / "asr" / "fsdd" / "pseudo_label.py"
    args = ["--train", str(fold / "train.jsonl"), "--dev", str(fold / "dev.jsonl"), "--hyp", str(hyp)]
    res = subprocess.run([sys.executable, str(script), *args, "--out", str(tmp_path / "st.jsonl")],
                         capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert "1 empty transcripts skipped" in res.stdout
    combined = read_manifest(tmp_path / "st.jsonl", allow_outside=True)
    train = read_manifest(fold / "train.jsonl", allow_outside=True)
    pseudo = combined[len(train):]
    assert [u.id for u in combined[: len(train)]] == [u.id for u in train]
    assert len(pseudo) == len(dev) - 1 and {u.text for u in pseudo} == {"NINE"}
    assert [u.path for u in pseudo] == [u.path for i, u in enumerate(dev) if i != 1]
    hyp.write_text("NINE\n")
    res = subprocess.run([sys.executable, str(script), *args, "--out", str(tmp_path / "bad.jsonl")],
                         capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert f"{hyp}: 1 transcripts for the {len(dev)} utterances" in res.stderr


def test_fsdd_class_balanced_pseudo_labels_and_ensemble(tmp_path):
    """pseudo_label.py --scores --keep keeps, per best candidate, the share with the largest
    margins, and --balanced labels the set jointly with equal counts; ensemble.py averages score
    tables and scores the argmax and the balanced assignment against the references; a malformed
    table names its file and line."""
    from seqkit.search import balanced_assignment, equal_counts
    from seqkit.tasks.asr import read_candidate_scores, write_candidate_scores

    src, out = make_fsdd(tmp_path / "fsdd"), tmp_path / "out"
    fsdd.prepare(out, src, 0, 0)
    fold = out / f"heldout_{FSDD_SPEAKERS[0]}"
    dev = read_manifest(fold / "dev.jsonl", allow_outside=True)
    n = len(dev)
    assert n >= 4
    cands = ["ONE", "TWO", "NINE"]
    # row i: best candidate i % 2 (ONE or TWO) with margin i + 1 over the next
    a = torch.full((n, 3), -50.0)
    for i in range(n):
        a[i, i % 2] = -10.0
        a[i, 2] = -10.0 - (i + 1)
    write_candidate_scores(tmp_path / "a.tsv", [u.id for u in dev], cands, a)
    ids, got_cands, got = read_candidate_scores(tmp_path / "a.tsv")
    assert ids == [u.id for u in dev] and got_cands == cands and torch.allclose(got, a)
    script = ROOT / "recipes" / "asr" / "fsdd"
    res = subprocess.run([sys.executable, str(script / "pseudo_label.py"), "--train", str(fold / "train.jsonl"),
                          "--dev", str(fold / "dev.jsonl"), "--scores", str(tmp_path / "a.tsv"), "--keep", "0.5",
                          "--out", str(tmp_path / "st.jsonl")], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    train = read_manifest(fold / "train.jsonl", allow_outside=True)
    pseudo = read_manifest(tmp_path / "st.jsonl", allow_outside=True)[len(train):]
    expect = []
    for label in (0, 1):
        rows = [i for i in range(n) if i % 2 == label]
        expect += sorted(rows, key=lambda i: -(i + 1))[: -(-len(rows) // 2)]
    assert sorted(u.id for u in pseudo) == sorted(f"pseudo_{dev[i].id}" for i in expect)
    row = {f"pseudo_{u.id}": i for i, u in enumerate(dev)}
    assert all(u.text == cands[row[u.id] % 2] for u in pseudo)
    assert f"{len(expect)} pseudo-labelled" in res.stdout
    # --balanced: each candidate labels equal_counts(n, 3) rows; the cheapest way there moves the
    # rows of smallest margin (the first evens and the first odds) from ONE / TWO to NINE
    res = subprocess.run([sys.executable, str(script / "pseudo_label.py"), "--train", str(fold / "train.jsonl"),
                          "--dev", str(fold / "dev.jsonl"), "--scores", str(tmp_path / "a.tsv"), "--balanced",
                          "--out", str(tmp_path / "bal.jsonl")], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    counts = equal_counts(n, 3)
    evens, odds = list(range(0, n, 2)), list(range(1, n, 2))
    nine = evens[: len(evens) - counts[0]] + odds[: len(odds) - counts[1]]
    labelled = {u.id: u.text for u in read_manifest(tmp_path / "bal.jsonl", allow_outside=True)[len(train):]}
    assert labelled == {f"pseudo_{u.id}": "NINE" if i in nine else cands[i % 2] for i, u in enumerate(dev)}
    # ensemble: table b prefers NINE by 3 everywhere; in the mean, NINE wins only where a's margin
    # (i + 1) is below 3: rows 0 and 1
    b = torch.full((n, 3), -50.0)
    b[torch.arange(n), torch.arange(n) % 2] = -10.0
    b[:, 2] = -7.0
    write_candidate_scores(tmp_path / "b.tsv", [u.id for u in dev], cands, b)
    ref = tmp_path / "dev.ref"
    ref.write_text("".join(cands[i % 2] + "\n" for i in range(n)))
    res = subprocess.run([sys.executable, str(script / "ensemble.py"), "--scores", str(tmp_path / "a.tsv"),
                          str(tmp_path / "b.tsv"), "--ref", str(ref), "--out", str(tmp_path / "ens")],
                         capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    metrics = json.loads((tmp_path / "ens" / "dev_metrics_closed.json").read_text())
    assert metrics["single_model_accuracy"] == [1.0, 0.0]
    _, _, mean = read_candidate_scores(tmp_path / "ens" / "dev_closed.scores.tsv")
    assert torch.allclose(mean, (a + b) / 2)
    hyps = (tmp_path / "ens" / "dev_closed.hyp").read_text().splitlines()
    assert hyps == [cands[int(k)] for k in ((a + b) / 2).argmax(-1)]
    assert hyps[:2] == ["NINE", "NINE"] and metrics["sentence_accuracy"] == (n - 2) / n
    balanced = [cands[k] for k in balanced_assignment((a + b) / 2).tolist()]
    assert metrics["balanced_accuracy"] == sum(h == cands[i % 2] for i, h in enumerate(balanced)) / n
    (tmp_path / "bad.tsv").write_text("id\tONE\tTWO\nu1\t-1\t-2\nu2\t-1\n")
    with pytest.raises(DataError, match=r"bad.tsv:3: 1 scores where the header names 2"):
        read_candidate_scores(tmp_path / "bad.tsv")
