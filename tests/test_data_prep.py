"""Tests for the data_prep loaders (ATIS/SNIPS) and the toy slot-filling generator.

Fast and offline: tiny ATIS-layout files are written to tmp_path; the download path is
exercised with an injected fake ``fetch``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from data_prep import _common, atis, make_toy_slots, snips  # noqa: E402
from seqkit.errors import DataError  # noqa: E402

TOY_DIR = ROOT / "recipes" / "slot_filling" / "toy" / "data"
KINDS = ("seq.in", "seq.out", "label")

# messy but valid input: double spaces, trailing spaces, CRLF, no final newline
RAW = {
    "train": {
        "seq.in": b"i want to fly from boston  to denver \r\nshow me flights to dallas\r\n",
        "seq.out": b"O O O O O B-fromloc O B-toloc \r\nO O O O B-toloc\r\n",
        "label": b"atis_flight\r\natis_flight",
    },
    "dev": {
        "seq.in": b"fares from new york to miami\nwhat airlines fly\n",
        "seq.out": b"O O B-fromloc I-fromloc O B-toloc\nO O O\n",
        "label": b"atis_airfare\natis_airline\n\n",  # trailing blank line is ignored
    },
}
TEST_RAW = {
    "seq.in": "flights to m\u00fcnchen\n".encode(),
    "seq.out": b"O O B-toloc\n",
    "label": b"atis_flight\n",
}
NORMALIZED = {
    "train.seq.in": "i want to fly from boston to denver\nshow me flights to dallas\n",
    "train.seq.out": "O O O O O B-fromloc O B-toloc\nO O O O B-toloc\n",
    "train.label": "atis_flight\natis_flight\n",
    "dev.seq.in": "fares from new york to miami\nwhat airlines fly\n",
    "dev.seq.out": "O O B-fromloc I-fromloc O B-toloc\nO O O\n",
    "dev.label": "atis_airfare\natis_airline\n",
}


def write_layout(directory: Path, raw=RAW, test: dict | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for split, files in raw.items():
        for kind, data in files.items():
            (directory / f"{split}.{kind}").write_bytes(data)
    if test is not None:
        for kind, data in test.items():
            (directory / f"test.{kind}").write_bytes(data)
    return directory


def run_atis(capsys, *args: str) -> tuple[int, str, str]:
    rc = atis.main(list(args))
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


# --------------------------------------------------------------------------- --src path


def test_src_happy_path_writes_normalized_files_and_stats(tmp_path, capsys):
    src = write_layout(tmp_path / "src")
    out = tmp_path / "out"
    rc, stdout, stderr = run_atis(capsys, "--src", str(src), "--out", str(out))
    assert rc == 0, stderr
    for name, text in NORMALIZED.items():
        assert (out / name).read_bytes() == text.encode(), name
    assert not (out / "test.seq.in").exists()
    stats = json.loads((out / "stats.json").read_text())
    assert stats["dataset"] == "atis"
    assert stats["source"]["kind"] == "local"
    train, dev = stats["splits"]["train"], stats["splits"]["dev"]
    assert train["sentences"] == 2 and train["tokens"] == 13
    assert train["slot_tags"] == 3 and train["intents"] == 1  # O, B-fromloc, B-toloc
    assert dev["sentences"] == 2 and dev["tokens"] == 9
    assert dev["unseen_slot_tags"] == ["I-fromloc"]
    assert dev["unseen_intents"] == ["atis_airfare", "atis_airline"]
    assert "ATIS" in stdout and "2 sentences" in stdout and "I-fromloc" in stdout
    assert stderr == ""


def test_src_optional_test_split_is_copied(tmp_path, capsys):
    src = write_layout(tmp_path / "src", test=TEST_RAW)
    out = tmp_path / "out"
    rc, _, stderr = run_atis(capsys, "--src", str(src), "--out", str(out))
    assert rc == 0, stderr
    assert (out / "test.seq.in").read_text(encoding="utf-8") == "flights to m\u00fcnchen\n"
    stats = json.loads((out / "stats.json").read_text())
    assert stats["splits"]["test"]["sentences"] == 1


def test_token_tag_mismatch_names_file_and_line(tmp_path, capsys):
    raw = {s: dict(f) for s, f in RAW.items()}
    raw["dev"]["seq.out"] = b"O O B-fromloc I-fromloc O B-toloc\nO O\n"
    src = write_layout(tmp_path / "src", raw)
    rc, stdout, stderr = run_atis(capsys, "--src", str(src), "--out", str(tmp_path / "out"))
    assert rc == 2
    assert stderr.startswith("data_prep: error: ")
    assert "dev.seq.out:2:" in stderr and "2 tags for 3 tokens" in stderr
    assert "Traceback" not in stderr and stdout == ""
    with pytest.raises(DataError) as info:
        _common.load_split(src, "dev")
    assert info.value.line == 2 and info.value.path.endswith("dev.seq.out")


def test_non_utf8_names_line(tmp_path, capsys):
    raw = {s: dict(f) for s, f in RAW.items()}
    raw["train"]["seq.in"] = b"i want to fly from boston to denver\nshow me flights to d\xe4llas\n"
    src = write_layout(tmp_path / "src", raw)
    rc, _, stderr = run_atis(capsys, "--src", str(src), "--out", str(tmp_path / "out"))
    assert rc == 2
    assert "train.seq.in:2:" in stderr and "UTF-8" in stderr
    assert "Traceback" not in stderr


def test_missing_file_is_a_clear_error(tmp_path, capsys):
    src = write_layout(tmp_path / "src")
    (src / "dev.label").unlink()
    rc, _, stderr = run_atis(capsys, "--src", str(src), "--out", str(tmp_path / "out"))
    assert rc == 2
    assert "missing dev.label" in stderr


def test_missing_src_dir(tmp_path, capsys):
    rc, _, stderr = run_atis(capsys, "--src", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert rc == 2 and "source directory not found" in stderr


def test_unequal_line_counts_and_bad_bio(tmp_path):
    raw = {s: dict(f) for s, f in RAW.items()}
    raw["dev"]["label"] = b"atis_airfare\n"
    src = write_layout(tmp_path / "a", raw)
    with pytest.raises(DataError, match="1 lines, but dev.seq.in has 2") as info:
        _common.load_split(src, "dev")
    assert info.value.path.endswith("dev.label")

    raw = {s: dict(f) for s, f in RAW.items()}
    raw["dev"]["seq.out"] = b"O O B-fromloc I-toloc O B-toloc\nO O O\n"
    src = write_layout(tmp_path / "b", raw)
    with pytest.raises(DataError, match="I-toloc does not continue") as info:
        _common.load_split(src, "dev")
    assert info.value.line == 1

    with pytest.raises(DataError, match="bad tag 'X-foo'"):
        _common.check_bio(["O", "X-foo"], "f", 3)
    _common.check_bio(["B-a", "I-a", "O", "B-b", "B-a", "I-a"], "f", 1)


def test_bad_arguments_return_2(capsys):
    assert atis.main([]) == 2  # --out is required
    assert "--out" in capsys.readouterr().err


# --------------------------------------------------------------------------- download


def test_source_urls_and_count_check():
    spec = _common.DATASETS["atis"]
    urls = _common.source_urls(spec)
    assert len(urls) == 9
    base = (
        "https://raw.githubusercontent.com/MiuLab/SlotGated-SLU/"
        "61f0307c729b1fad479ef1de94aa5ac5dee601b0/data/atis/"
    )
    assert urls[("train", "seq.in")] == base + "train/seq.in"
    assert urls[("dev", "label")] == base + "valid/label"
    assert urls[("test", "seq.out")] == base + "test/seq.out"
    assert _common.source_urls(_common.DATASETS["snips"])[("dev", "seq.in")].endswith(
        "/data/snips/valid/seq.in"
    )
    assert _common.check_counts(spec, {"train": 4478, "dev": 500, "test": 893}) == []
    warnings = _common.check_counts(spec, {"train": 4478, "dev": 499, "test": 893})
    assert len(warnings) == 1 and "dev: 499 sentences, expected 500" in warnings[0]
    snips_spec = _common.DATASETS["snips"]
    assert _common.check_counts(snips_spec, {"train": 13084, "dev": 700, "test": 700}) == []


def fake_fetch_for(spec, raw=RAW, test=TEST_RAW):
    files = {**{(s, k): v for s, f in raw.items() for k, v in f.items()}}
    files.update({("test", k): v for k, v in test.items()})
    by_url = {url: files[key] for key, url in _common.source_urls(spec).items()}
    calls = []

    def fetch(url: str, timeout: float) -> bytes:
        calls.append((url, timeout))
        return by_url[url]

    return fetch, calls


def test_download_with_fake_fetch_matches_src_output(tmp_path, capsys):
    src = write_layout(tmp_path / "src", test=TEST_RAW)
    rc, _, stderr = run_atis(capsys, "--src", str(src), "--out", str(tmp_path / "local"))
    assert rc == 0, stderr

    fetch, calls = fake_fetch_for(_common.DATASETS["atis"])
    out = tmp_path / "dl"
    rc = atis.main(["--out", str(out), "--timeout", "7"], fetch=fetch)
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert len(calls) == 9 and all(t == 7.0 for _, t in calls)
    for split in ("train", "dev", "test"):
        for kind in KINDS:
            name = f"{split}.{kind}"
            assert (out / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    assert (out / "raw" / "dev.seq.in").read_bytes() == RAW["dev"]["seq.in"]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["source"]["kind"] == "download"
    assert stats["source"]["commit"] == _common.UPSTREAM_COMMIT
    assert stats["splits"] == json.loads((tmp_path / "local" / "stats.json").read_text())["splits"]
    # the tiny fake data do not have the published sizes: warned, not fatal
    assert "data_prep: warning: ATIS train: 2 sentences, expected 4478" in cap.err


def test_download_failure_suggests_src(tmp_path, capsys):
    def failing_fetch(url: str, timeout: float) -> bytes:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    rc = atis.main(["--out", str(tmp_path / "out")], fetch=failing_fetch)
    err = capsys.readouterr().err
    assert rc == 2
    assert "data_prep: error: could not download https://raw.githubusercontent.com/" in err
    assert "use --src PATH for a local copy" in err
    assert "Traceback" not in err

    def timeout_fetch(url: str, timeout: float) -> bytes:
        raise TimeoutError("timed out")

    with pytest.raises(_common.SeqkitError, match="timed out; use --src PATH"):
        _common.download(_common.DATASETS["snips"], tmp_path / "raw", fetch=timeout_fetch)


def test_snips_wrapper(tmp_path, capsys):
    src = write_layout(tmp_path / "src")
    out = tmp_path / "out"
    assert snips.main(["--src", str(src), "--out", str(out)]) == 0
    cap = capsys.readouterr()
    assert cap.out.startswith("SNIPS from local copy")
    assert json.loads((out / "stats.json").read_text())["dataset"] == "snips"
    fetch, calls = fake_fetch_for(_common.DATASETS["snips"])
    assert snips.main(["--out", str(tmp_path / "dl")], fetch=fetch) == 0
    assert all("/data/snips/" in url for url, _ in calls)
    assert "expected 13084" in capsys.readouterr().err


def test_scripts_run_as_files_and_modules(tmp_path):
    src = write_layout(tmp_path / "src")
    for cmd in (
        [sys.executable, str(ROOT / "data_prep" / "atis.py")],
        [sys.executable, "-m", "data_prep.snips"],
    ):
        out = tmp_path / cmd[-1].replace("/", "_")
        res = subprocess.run(
            [*cmd, "--src", str(src), "--out", str(out)],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )
        assert res.returncode == 0, res.stderr
        assert (out / "dev.seq.out").read_text() == NORMALIZED["dev.seq.out"]
    res = subprocess.run(
        [sys.executable, str(ROOT / "data_prep" / "atis.py"), "--src", str(tmp_path / "x"),
         "--out", str(tmp_path / "y")],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert res.returncode == 2 and res.stderr.startswith("data_prep: error:")
    assert "Traceback" not in res.stderr


# --------------------------------------------------------------------------- toy data

TOY_FILES = [f"{s}.{k}" for s in ("train", "dev") for k in KINDS] + ["LICENSE", "README.md"]


def spans(split: _common.Split) -> set[tuple[str, str]]:
    """(slot type, value) pairs of a split."""
    out = set()
    for tokens, tags in zip(split.tokens, split.tags, strict=True):
        i = 0
        while i < len(tags):
            if tags[i].startswith("B-"):
                j = i + 1
                while j < len(tags) and tags[j] == "I-" + tags[i][2:]:
                    j += 1
                out.add((tags[i][2:], " ".join(tokens[i:j])))
                i = j
            else:
                i += 1
    return out


def test_toy_generator_is_deterministic_and_matches_shipped_files(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert make_toy_slots.main(["--out", str(a)]) == 0
    make_toy_slots.write(b)
    for name in TOY_FILES:
        data = (a / name).read_bytes()
        assert data == (b / name).read_bytes(), name
        assert data == (TOY_DIR / name).read_bytes(), f"{name} differs from the shipped file"
    assert sum((TOY_DIR / n).stat().st_size for n in TOY_FILES) < 300_000
    other, _ = make_toy_slots.generate(seed=14, n_train=50, n_dev=10)
    first, _ = make_toy_slots.generate(seed=13, n_train=50, n_dev=10)
    assert [e.tokens for e in other["train"]] != [e.tokens for e in first["train"]]


def test_toy_data_is_wellformed_and_nontrivial():
    splits = _common.load_dir(TOY_DIR)  # validates UTF-8, counts, BIO
    train, dev = splits["train"], splits["dev"]
    assert (len(train), len(dev)) == (2000, 300)
    assert set(train.intents) == set(dev.intents) and len(set(train.intents)) == 6
    slot_types = {t[2:] for tags in train.tags for t in tags if t != "O"}
    assert len(slot_types) >= 15
    for split in (train, dev):
        sents = [" ".join(t) for t in split.tokens]
        assert len(set(sents)) == len(sents)  # deduplicated
        assert all(w == w.lower() for t in split.tokens for w in t)
    assert not {" ".join(t) for t in dev.tokens} & {" ".join(t) for t in train.tokens}
    # held-out values: dev has slot values (and words) train never shows
    train_spans, dev_spans = spans(train), spans(dev)
    unseen_values = {v for _, v in dev_spans} - {v for _, v in train_spans}
    assert len(unseen_values) >= 20
    train_vocab = {w for t in train.tokens for w in t}
    assert any(w not in train_vocab for t in dev.tokens for w in t)
    # ambiguity: the same value fills different slots
    by_value: dict[str, set[str]] = {}
    for slot, value in train_spans:
        by_value.setdefault(value, set()).add(slot)
    assert any({"from_city", "to_city"} <= s for s in by_value.values())
    assert any({"party_size", "num_nights"} <= s for s in by_value.values())
    assert any(len(v.split()) > 1 for v in by_value)  # multi-word values
    license_text = (TOY_DIR / "LICENSE").read_text()
    assert "make_toy_slots.py" in license_text and "Apache" in license_text
