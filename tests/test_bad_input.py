"""The bad-input suite (issue 9): malformed inputs through the real entry point, ``seqkit ...``.

Every case either fails with exit status 2 and one ``seqkit: error: ...`` line that names the
file and line (or the utterance), with no traceback, or -- where skipping is the documented
policy -- is skipped, counted and reported ("skipped N items (...): file:line; ...") and/or
counted in the metrics.  Nothing is dropped without being counted.  71 test ids:

========================================  ======================================================
case (command)                            outcome
========================================  ======================================================
AUDIO (``seqkit train`` on an ASR manifest, ``predict``, ``evaluate``)
empty (0-byte) .wav                       error ``a.wav: cannot read audio: ... (utterance ID)``
truncated .wav (data cut short)           error ``a.wav: truncated WAV: the header declares N bytes
                                          of samples, the file holds M (utterance ID)``
header-only .wav                          error ``a.wav: truncated WAV: ... holds 0``
non-audio file named .wav                 error ``a.wav: cannot read audio: ... Format not recognised``
NaN-filled .wav / one infinite sample     error ``a.wav: audio contains NaN or infinite samples``
zero-length .wav (valid, 0 frames)        error ``a.wav: audio has no samples (utterance ID)``
missing .wav                              error ``a.wav: audio file not found (utterance ID)``
bad .wav in ``predict --input``           error ``input line 2: a.wav: audio contains NaN ...``
bad .wav in ``evaluate --split``          error ``a.wav: truncated WAV: ... (utterance t1)``
stereo, 8 kHz .wav (16 kHz expected)      handled as documented (seqkit.data.audio): channels
                                          averaged, resampled; training runs, nothing skipped
MANIFESTS (JSONL)
invalid JSON / missing key / duplicate    error ``train.jsonl:3: invalid JSON`` / ``missing key
id / empty transcript / wrong type /      'speaker'`` / ``duplicate id 'g0' (first on line 1)`` /
audio path outside the folder /           ``utterance e1: empty transcript`` / ``key 'duration'
non-UTF-8 line                            has a value of type str`` / ``... lies outside the
                                          manifest's folder`` / ``train.jsonl:4: not valid UTF-8``
empty training manifest                   error ``asr.yaml: key 'data.train': no utterances in ...``
empty manifest in ``evaluate --split``    error ``test.jsonl: no utterances to evaluate``
target longer than CTC allows             counted skip ``skipped 1 items (1 u_short (speed 1.0):
                                          4 encoder frames < 10 needed by CTC): train.jsonl:5``
utterance over ``data.max_frames``        counted skip ``skipped 1 items (1 u_long: longer than
                                          data.max_frames=100): train.jsonl:5``
every training utterance skipped          error ``key 'data.train': every training utterance of
                                          train.jsonl was skipped (skipped 4 items ...)``
TAGGING TEXT (slot filling: .seq.in / .seq.out / .label)
non-UTF-8 line                            error ``train.seq.in:61: not valid UTF-8 (bytes ...)``
CRLF line ends                            handled: trains to the same metrics as LF
empty lines in training                   counted skip ``skipped 2 items (2 empty line):
                                          train.seq.in:61; train.seq.in:62``
empty line in the evaluation split        counted skip: metrics ``"skipped": 1`` + summary line
line empty in one file only               error ``train.seq.out:61: line is empty in ... but not in``
.seq.out / .label with an extra line      error ``train.seq.out:61: line counts differ: ...
                                          has 60 lines but ... has 61``
token/tag count mismatch                  error ``train.seq.out:61: 2 tags for 3 tokens``
tags/intents unseen in training (eval)    counted: metrics ``unseen_tags: 1, unseen_intents: 1``
evaluation split with no lines            error ``empty.seq.in: no examples to evaluate``
training files of empty lines only        error ``key 'data.train': no examples in
                                          train.seq.in (skipped 2 items ...)``
CLASSIFICATION TSV
row with 3 columns                        error ``train.tsv:22: expected 2 tab-separated columns``
header lacking the text column            error ``train.tsv:1: no column 'sentence' in header``
rows with an empty text or label          counted skip (train: summary line; dev: ``skipped``)
dev label unseen in training              counted: metrics ``unseen_labels: 1``
dev file whose rows are all skipped       error ``dev.tsv: no examples to evaluate (skipped 1 ...)``
header-only training file                 error ``key 'data.train': no examples in train.tsv``
TRANSLATION (parallel text)
source/target line counts differ          error ``train.de:31: line counts differ: ...``
pair with an empty side                   counted skip ``skipped 2 items (2 empty source or
                                          target): train.en:31; train.de:32``
pair over ``data.max_len``                counted skip ``skipped 1 items (1 longer than
                                          data.max_len=10 tokens): train.de:31``
every pair over ``data.max_len``          error ``every training pair of .../train.* was skipped``
non-UTF-8 target line                     error ``train.en:3: not valid UTF-8``
CONFIG
mistyped key in the file / override       error ``tiny.yaml: unknown key 'train.lr_rate' (did you
                                          mean 'train.lr'?)`` (same for ``model.hiden_size=8``)
wrong type: int / choice / bool           error ``key 'train.epochs': expected an integer, got
                                          'ten'`` / ``expected one of [...]`` / ``true/false``
missing data file                         error ``key 'data.train': file not found: nope.seq.in``
missing / empty / invalid YAML /          error ``c.yaml: config file not found`` / ``config file
non-UTF-8 config, unknown task            is empty`` / ``c.yaml:2: invalid YAML: ...`` / ``not
                                          UTF-8 text`` / ``key 'task': unknown task``
SEQKIT SCORE / NGRAM / PREDICT / EVALUATE
``score wer|bleu|acc``, empty hyp         error ``hyp.txt: file is empty``
``score wer|cer|chrf|f1``, line counts    error ``ref.txt:2: line counts differ: ref.txt has 2 lines but
                                          hyp.txt has 1 line``
``score f1``, tag count mismatch          error ``hyp.txt:2: 2 tags but the reference
                                          (ref.txt:2) has 3``
``score wer``, non-UTF-8 / missing file   error ``hyp.txt:2: not valid UTF-8`` / ``no such file``
``score ppl`` on a non-ARPA file          error ``ref.txt: no \\data\\ section: not an ARPA file``
``ngram`` on a text of empty lines        error ``empty.txt: no words to estimate ...``, no ARPA
``predict --input``: non-UTF-8 / missing  error ``in.txt:2: not valid UTF-8`` / ``no such file``
``evaluate --ckpt`` corrupt checkpoint    error ``broken.pt: cannot read checkpoint (corrupt ...``
========================================  ======================================================

Models are tiny and train for one epoch at one thread; the whole file runs in ~25 s.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from seqkit.cli.main import main as seqkit_main

from .conftest import ROOT, tiny_slot_config, write_tiny_slots

RECIPE_MT = ROOT / "recipes" / "translation" / "multi30k" / "config.yaml"


# ============================================================================ helpers


def cli(capsys, *argv) -> tuple[int, str, str]:
    """Run ``seqkit ARGV`` in-process: (return code, stdout, stderr)."""
    capsys.readouterr()
    rc = seqkit_main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def clean_error(capsys, *argv, names=(), after_log: bool = False) -> str:
    """The command exits with status 2 printing one ``seqkit: error:`` line that names each of
    ``names``, and no traceback; returns that line.  The error is all of stderr, unless
    ``after_log`` (an error found after training started: progress lines come first)."""
    rc, _, err = cli(capsys, *argv)
    assert rc == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert lines and lines[-1].startswith("seqkit: error: "), err
    assert sum(line.startswith("seqkit: error:") for line in lines) == 1, err
    if not after_log:
        assert len(lines) == 1, err
    for n in names:
        assert str(n) in lines[-1], f"{n!r} not in {err!r}"
    return lines[-1]


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def wav(path: Path, seconds: float = 0.5, sr: int = 16000, channels: int = 1, seed: int = 0,
        subtype: str = "PCM_16") -> Path:
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    x = 0.3 * np.sin(2 * np.pi * (300 + 50 * seed) * t) + 0.01 * rng.standard_normal(n)
    data = np.stack([x] + [0.5 * x] * (channels - 1), axis=1) if channels > 1 else x
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data.astype(np.float32), sr, subtype=subtype)
    return path


def manifest(path: Path, rows: list[dict | str]) -> Path:
    """Write a JSONL manifest; a str row is written verbatim."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def utt(uid: str, audio: Path, text: str = "AB BA", seconds: float = 0.5) -> dict:
    return {"id": uid, "path": str(audio), "duration": seconds, "text": text, "speaker": "s1"}


def asr_setup(tmp_path: Path, extra_train: list[dict] | None = None, **data) -> tuple[Path, Path]:
    """A tiny CTC ASR experiment on synthetic 16 kHz audio; returns (config, audio folder)."""
    audio = tmp_path / "audio"
    good = [utt(f"g{i}", wav(audio / f"g{i}.wav", 0.5, seed=i), ["AB BA", "BAA", "AB"][i % 3]) for i in range(4)]
    train = manifest(tmp_path / "train.jsonl", good + (extra_train or []))
    dev = manifest(tmp_path / "dev.jsonl", good[:2])
    cfg = {
        "task": "asr",
        "data": {"train": str(train), "dev": str(dev), "n_mels": 20, **data},
        "model": {"front": "stack", "stack": 3, "encoder": "blstm", "enc_layers": 1, "enc_hidden": 16,
                  "ctc_weight": 1.0, "dropout": 0.0, "specaugment": False},
        "decode": {"method": "ctc_greedy"},
        "train": {"output_dir": str(tmp_path / "exp"), "epochs": 1, "max_tokens": 2000, "progress": False,
                  "tensorboard": False, "num_threads": 1},
    }
    path = tmp_path / "asr.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, audio


def tsv_setup(tmp_path: Path, train_rows: str = "", dev_rows: str = "") -> Path:
    """A tiny text_classification experiment (GLUE layout: header, text<TAB>label)."""
    data = tmp_path / "data"
    data.mkdir(parents=True, exist_ok=True)
    base = "".join(f"the film is {w} .\t{lab}\n" for w, lab in
                   [("good", "pos"), ("bad", "neg"), ("great", "pos"), ("dull", "neg")] * 5)
    (data / "train.tsv").write_text("sentence\tlabel\n" + base + train_rows)
    (data / "dev.tsv").write_text("sentence\tlabel\n" + base[:200].rsplit("\n", 1)[0] + "\n" + dev_rows)
    cfg = {
        "task": "text_classification",
        "data": {"train": str(data / "train.tsv"), "dev": str(data / "dev.tsv")},
        "model": {"emb_dim": 8, "hidden_size": 8},
        "train": {"output_dir": str(tmp_path / "exp"), "epochs": 1, "progress": False, "tensorboard": False,
                  "num_threads": 1, "early_stopping": {"metric": "accuracy", "mode": "max"}},
    }
    path = tmp_path / "cls.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def mt_setup(tmp_path: Path, src: list[str] | None = None, tgt: list[str] | None = None, *extra: str):
    """Overrides for a tiny word-level translation run of the Multi30k recipe config."""
    data = tmp_path / "data"
    data.mkdir(parents=True, exist_ok=True)
    words = "haus katze hund baum auto rot blau".split()
    base = [" ".join(words[(i + k) % 7] for k in range(2 + i % 3)) for i in range(30)]
    src = base + (src or [])
    tgt = [s.upper() for s in base] + (tgt or [])
    for name, lines in (("train.de", src), ("train.en", tgt), ("val.de", base[:5]),
                        ("val.en", [s.upper() for s in base[:5]])):
        (data / name).write_text("".join(x + "\n" for x in lines), encoding="utf-8")
    return [
        f"data.train={data / 'train'}", f"data.dev={data / 'val'}", f"train.output_dir={tmp_path / 'exp'}",
        "data.tokenizer=word", "model.emb_dim=8", "model.enc_hidden=8", "model.dec_hidden=8",
        "train.epochs=1", "train.max_minutes=null", "train.num_threads=1", "train.progress=false",
        "train.tensorboard=false", "decode.beam_size=1", *extra,
    ]


# ============================================================================ fixtures


@pytest.fixture(scope="module")
def slot_exp(tmp_path_factory):
    """A tiny slot-filling model trained once (1 epoch); (config, data folder)."""
    tmp = tmp_path_factory.mktemp("slot")
    cfg = tiny_slot_config(tmp, epochs=1)
    assert seqkit_main(["train", str(cfg)]) == 0
    return cfg, tmp / "data"


@pytest.fixture(scope="module")
def asr_exp(tmp_path_factory):
    """A tiny CTC ASR model trained once (1 epoch); (config, audio folder)."""
    tmp = tmp_path_factory.mktemp("asr")
    cfg, audio = asr_setup(tmp)
    assert seqkit_main(["train", str(cfg)]) == 0
    return cfg, audio


# ============================================================================ audio files


def _bad_audio(kind: str, folder: Path) -> tuple[Path, str]:
    """A malformed audio file of ``kind`` and the reason its error must give."""
    p = folder / f"{kind}.wav"
    folder.mkdir(parents=True, exist_ok=True)
    full = wav(folder / "full.wav", 0.5).read_bytes()
    if kind == "empty_file":
        p.write_bytes(b"")
        return p, "cannot read audio"
    if kind == "truncated":
        p.write_bytes(full[:5000])
        return p, "truncated"
    if kind == "header_only":
        p.write_bytes(full[:44])
        return p, "truncated"
    if kind == "not_audio":
        p.write_text("this is a transcript, not a wave file\n")
        return p, "cannot read audio"
    if kind == "nan_filled":
        sf.write(p, np.full(8000, np.nan, dtype=np.float32), 16000, subtype="FLOAT")
        return p, "audio contains NaN or infinite samples"
    if kind == "inf_sample":
        x = np.zeros(8000, dtype=np.float32)
        x[100] = np.inf
        sf.write(p, x, 16000, subtype="FLOAT")
        return p, "audio contains NaN or infinite samples"
    if kind == "zero_length":
        sf.write(p, np.zeros(0, dtype=np.float32), 16000)
        return p, "audio has no samples"
    if kind == "missing":
        return p, "audio file not found"
    raise ValueError(kind)


BAD_AUDIO = ["empty_file", "truncated", "header_only", "not_audio", "nan_filled", "inf_sample", "zero_length",
             "missing"]


@pytest.mark.parametrize("kind", BAD_AUDIO)
def test_bad_training_audio_names_the_file_and_utterance(tmp_path, capsys, kind):
    bad, reason = _bad_audio(kind, tmp_path / "bad")
    cfg, _ = asr_setup(tmp_path, extra_train=[utt("u_bad", bad)])
    clean_error(capsys, "train", cfg, names=[f"{bad}: {reason}", "(utterance u_bad)"])


def test_bad_audio_in_predict_input_names_the_input_line(tmp_path, capsys, asr_exp):
    cfg, audio = asr_exp
    bad, reason = _bad_audio("nan_filled", tmp_path)
    listing = tmp_path / "wavs.txt"
    listing.write_text(f"{audio / 'g0.wav'}\n{bad}\n")
    clean_error(capsys, "predict", cfg, "--input", listing, names=["input line 2", bad, reason])


def test_bad_audio_in_evaluation_manifest_names_the_file_and_utterance(tmp_path, capsys, asr_exp):
    cfg, audio = asr_exp
    bad, reason = _bad_audio("truncated", tmp_path)
    good = tmp_path / "g0.wav"
    good.write_bytes((audio / "g0.wav").read_bytes())
    split = manifest(tmp_path / "test.jsonl", [utt("t0", good), utt("t1", bad)])
    clean_error(capsys, "evaluate", cfg, "--split", split, names=[f"{bad}: {reason}", "(utterance t1)"])


def test_stereo_and_wrong_rate_audio_are_mixed_down_and_resampled(tmp_path, capsys):
    """Documented in seqkit.data.audio: channels are averaged, other rates resampled."""
    from seqkit.data.audio import load_audio

    stereo8k = wav(tmp_path / "stereo8k.wav", 0.5, sr=8000, channels=2)
    wave, sr = load_audio(stereo8k)
    left = sf.read(stereo8k, dtype="float32")[0][:, 0]
    assert sr == 8000 and wave.shape == (4000,)
    np.testing.assert_allclose(wave.numpy(), 0.75 * left, atol=1e-4)  # mean of x and x / 2
    wave16, sr16 = load_audio(stereo8k, 16000)
    assert sr16 == 16000 and wave16.shape == (8000,)
    cfg, _ = asr_setup(tmp_path, extra_train=[utt("u_stereo", stereo8k, "AB")])
    rc, out, err = cli(capsys, "train", cfg)
    assert rc == 0, err
    assert "5 training utterances" in err and "skipped" not in err


# ============================================================================ manifests


@pytest.mark.parametrize("case", ["invalid_json", "missing_key", "duplicate_id", "empty_transcript",
                                  "bad_duration", "outside_path", "non_utf8"])
def test_bad_manifest_line_names_the_file_and_line(tmp_path, capsys, case):
    cfg, audio = asr_setup(tmp_path)
    train = tmp_path / "train.jsonl"
    good = train.read_text().splitlines()
    row = json.loads(good[0])
    bad, reason = {
        "invalid_json": ('{"id": "x", "path": ', "invalid JSON"),
        "missing_key": (json.dumps({k: v for k, v in row.items() if k != "speaker"}), "missing key 'speaker'"),
        "duplicate_id": (good[0], "duplicate id 'g0'"),
        "empty_transcript": (json.dumps({**row, "id": "e1", "text": "  "}), "utterance e1: empty transcript"),
        "bad_duration": (json.dumps({**row, "id": "d1", "duration": "long"}), "key 'duration'"),
        "outside_path": (json.dumps({**row, "id": "o1", "path": "../elsewhere/a.wav"}),
                         "utterance o1: audio path '../elsewhere/a.wav' lies outside the manifest's folder"),
        "non_utf8": (None, "not valid UTF-8"),
    }[case]
    if bad is None:
        train.write_bytes(("\n".join(good[:3]) + "\n").encode() + b'{"id": "caf\xe9"}\n')
        line = 4
    else:
        train.write_text("\n".join(good[:2] + [bad]) + "\n")
        line = 3
    clean_error(capsys, "train", cfg, names=[f"{train}:{line}", reason])


def test_empty_training_manifest(tmp_path, capsys):
    cfg, _ = asr_setup(tmp_path)
    (tmp_path / "train.jsonl").write_text("")
    clean_error(capsys, "train", cfg, names=[cfg, f"key 'data.train': no utterances in {tmp_path / 'train.jsonl'}"])


def test_empty_evaluation_manifest(tmp_path, capsys, asr_exp):
    cfg, _ = asr_exp
    split = manifest(tmp_path / "test.jsonl", [])
    clean_error(capsys, "evaluate", cfg, "--split", split, names=[f"{split}: no utterances to evaluate"])


# ============================================================================ ASR skips


def test_ctc_impossible_targets_are_skipped_and_counted(tmp_path, capsys):
    """0.1 s is 11 frames, 4 after stacking by 3: too few for a 10-letter CTC target."""
    short = wav(tmp_path / "audio" / "short.wav", 0.1, seed=5)
    cfg, _ = asr_setup(tmp_path, extra_train=[utt("u_short", short, "ABABABABAB", 0.1)])
    rc, out, err = cli(capsys, "train", cfg)
    assert rc == 0, err
    assert "skipped 1 items (1 u_short (speed 1.0): 4 encoder frames < 10 needed by CTC)" in err
    assert f"{tmp_path / 'train.jsonl'}:5" in err
    assert "asr: 4 training examples" in err  # 5 utterances, 1 skipped


def test_utterances_over_the_frame_cap_are_skipped_and_counted(tmp_path, capsys):
    long = wav(tmp_path / "audio" / "long.wav", 1.5, seed=6)
    cfg, _ = asr_setup(tmp_path, extra_train=[utt("u_long", long, "AB", 1.5)], max_frames=100)
    rc, out, err = cli(capsys, "train", cfg)
    assert rc == 0, err
    assert "skipped 1 items (1 u_long: longer than data.max_frames=100)" in err
    assert f"{tmp_path / 'train.jsonl'}:5" in err
    assert "asr: 4 training examples" in err  # 5 utterances, 1 skipped


def test_every_training_utterance_skipped_is_an_error_not_an_empty_run(tmp_path, capsys):
    cfg, _ = asr_setup(tmp_path, max_frames=10)
    clean_error(capsys, "train", cfg, after_log=True,
                names=[f"every training utterance of {tmp_path / 'train.jsonl'} was skipped (skipped 4 items",
                       "longer than data.max_frames=10"])


# ============================================================================ tagging text


def _append(data: Path, split: str, seq_in: bytes | str, seq_out: bytes | str, label: bytes | str) -> None:
    for ext, text in ((".seq.in", seq_in), (".seq.out", seq_out), (".label", label)):
        with open(data / f"{split}{ext}", "ab") as f:
            f.write(text if isinstance(text, bytes) else text.encode())


def test_non_utf8_text_names_the_line(tmp_path, capsys):
    cfg = tiny_slot_config(tmp_path)
    data = tmp_path / "data"
    _append(data, "train", b"fly to m\xfcnchen\n", "O O B-to_city\n", "find_flight\n")
    clean_error(capsys, "train", cfg, names=[f"{data / 'train.seq.in'}:61", "not valid UTF-8"])


def test_crlf_text_reads_like_lf(tmp_path, capsys, slot_exp):
    """CRLF files train to exactly the same model as LF files (no tokens end in '\\r')."""
    cfg = tiny_slot_config(tmp_path, epochs=1)
    for f in (tmp_path / "data").iterdir():
        f.write_bytes(f.read_bytes().replace(b"\n", b"\r\n"))
    rc, out, err = cli(capsys, "train", cfg)
    assert rc == 0, err
    crlf = last_json(out)
    rc, out, err = cli(capsys, "evaluate", slot_exp[0])
    lf = last_json(out)
    crlf.pop("output_dir")
    assert crlf == lf


def test_empty_training_lines_are_skipped_and_counted(tmp_path, capsys):
    cfg = tiny_slot_config(tmp_path, epochs=1)
    data = tmp_path / "data"
    _append(data, "train", "\n  \n", "\n\n", "\n\n")
    rc, out, err = cli(capsys, "train", cfg)
    assert rc == 0, err
    assert f"skipped 2 items (2 empty line): {data / 'train.seq.in'}:61; {data / 'train.seq.in'}:62" in err
    assert "60 training examples" in err


def test_empty_evaluation_lines_are_skipped_and_counted_in_the_metrics(tmp_path, capsys, slot_exp):
    cfg, data = slot_exp
    split = write_tiny_slots(tmp_path / "test")
    _append(split, "dev", "\n", "\n", "\n")
    rc, out, err = cli(capsys, "evaluate", cfg, "--split", split / "dev")
    assert rc == 0, err
    metrics = last_json(out)
    assert metrics["skipped"] == 1 and metrics["sentences"] == 20
    assert f"skipped 1 items (1 empty line): {split / 'dev.seq.in'}:21" in err


def test_line_empty_in_one_file_only_names_it(tmp_path, capsys):
    cfg = tiny_slot_config(tmp_path)
    data = tmp_path / "data"
    _append(data, "train", "to denver\n", "\n", "find_flight\n")
    clean_error(capsys, "train", cfg, names=[f"{data / 'train.seq.out'}:61", "line is empty in"])


@pytest.mark.parametrize("ext", [".seq.out", ".label"])
def test_parallel_files_with_different_line_counts(tmp_path, capsys, ext):
    cfg = tiny_slot_config(tmp_path)
    data = tmp_path / "data"
    with open(data / f"train{ext}", "a") as f:
        f.write("O\n" if ext == ".seq.out" else "find_flight\n")
    clean_error(capsys, "train", cfg, names=[f"{data / f'train{ext}'}:61", "line counts differ",
                                             "has 60 lines but", "has 61"])


def test_token_tag_count_mismatch_names_the_line(tmp_path, capsys):
    cfg = tiny_slot_config(tmp_path)
    data = tmp_path / "data"
    _append(data, "train", "fly to denver\n", "O B-to_city\n", "find_flight\n")
    clean_error(capsys, "train", cfg, names=[f"{data / 'train.seq.out'}:61", "2 tags for 3 tokens"])


def test_labels_unseen_in_training_are_counted_at_evaluation(tmp_path, capsys, slot_exp):
    cfg, _ = slot_exp
    split = write_tiny_slots(tmp_path / "test")
    _append(split, "dev", "fly klm from boston\n", "O B-airline O B-from_city\n", "airline_query\n")
    rc, out, err = cli(capsys, "evaluate", cfg, "--split", split / "dev")
    assert rc == 0, err
    metrics = last_json(out)
    assert metrics["unseen_tags"] == 1 and metrics["unseen_intents"] == 1 and metrics["sentences"] == 21


def test_evaluation_split_with_no_lines_names_the_file(tmp_path, capsys, slot_exp):
    cfg, _ = slot_exp
    split = tmp_path / "empty"
    for ext in (".seq.in", ".seq.out", ".label"):
        Path(f"{split}{ext}").write_text("")
    clean_error(capsys, "evaluate", cfg, "--split", split, names=[f"{split}.seq.in", "no examples"])


def test_training_file_of_only_empty_lines_names_the_file(tmp_path, capsys):
    cfg = tiny_slot_config(tmp_path)
    data = tmp_path / "data"
    for ext in (".seq.in", ".seq.out", ".label"):
        (data / f"train{ext}").write_text("\n\n")
    clean_error(capsys, "train", cfg, names=[f"{data / 'train'}", "no examples"])


# ============================================================================ classification TSV


def test_tsv_row_with_wrong_column_count_names_the_line(tmp_path, capsys):
    cfg = tsv_setup(tmp_path, train_rows="too\tmany\tcolumns\n")
    clean_error(capsys, "train", cfg, names=[f"{tmp_path / 'data' / 'train.tsv'}:22",
                                             "expected 2 tab-separated columns, found 3"])


def test_tsv_header_without_the_text_column_names_line_1(tmp_path, capsys):
    cfg = tsv_setup(tmp_path)
    train = tmp_path / "data" / "train.tsv"
    train.write_text(train.read_text().replace("sentence\tlabel", "text\tlabel", 1))
    clean_error(capsys, "train", cfg, names=[f"{train}:1", "no column 'sentence'"])


def test_tsv_rows_with_empty_text_are_skipped_and_counted(tmp_path, capsys):
    cfg = tsv_setup(tmp_path, train_rows="\tpos\n \tneg\n", dev_rows="the film is good .\t\n")
    rc, out, err = cli(capsys, "train", cfg)
    assert rc == 0, err
    assert f"skipped 2 items (2 empty text or label): {tmp_path / 'data' / 'train.tsv'}:22" in err
    assert "text_classification: 20 training examples" in err  # 22 rows, 2 skipped
    assert last_json(out)["skipped"] == 1  # the dev row with no label
    assert f"skipped 1 items (1 empty text or label): {tmp_path / 'data' / 'dev.tsv'}:10" in err


def test_tsv_labels_unseen_in_training_are_counted(tmp_path, capsys):
    cfg = tsv_setup(tmp_path, dev_rows="the film is fine .\tneutral\n")
    rc, out, err = cli(capsys, "train", cfg)
    assert rc == 0, err
    assert last_json(out)["unseen_labels"] == 1


def test_tsv_dev_file_with_only_skipped_rows(tmp_path, capsys):
    cfg = tsv_setup(tmp_path)
    dev = tmp_path / "data" / "dev.tsv"
    dev.write_text("sentence\tlabel\n\tpos\n")
    clean_error(capsys, "train", cfg, after_log=True,
                names=[f"{dev}: no examples to evaluate (skipped 1 items (1 empty text or label): {dev}:2)"])


def test_tsv_header_only_training_file(tmp_path, capsys):
    cfg = tsv_setup(tmp_path)
    train = tmp_path / "data" / "train.tsv"
    train.write_text("sentence\tlabel\n")
    clean_error(capsys, "train", cfg, names=[str(train), "no examples"])


# ============================================================================ translation


def test_parallel_corpus_with_different_line_counts(tmp_path, capsys):
    ov = mt_setup(tmp_path, src=["rot auto"], tgt=[])
    de = tmp_path / "data" / "train.de"
    clean_error(capsys, "train", RECIPE_MT, *ov, names=[f"{de}:31", "line counts differ"])


def test_parallel_pairs_with_an_empty_side_are_skipped_and_counted(tmp_path, capsys):
    ov = mt_setup(tmp_path, src=["rot auto", ""], tgt=["", "RED"])
    rc, out, err = cli(capsys, "train", RECIPE_MT, *ov)
    assert rc == 0, err
    data = tmp_path / "data"
    assert f"skipped 2 items (2 empty source or target): {data / 'train.en'}:31; {data / 'train.de'}:32" in err
    assert "translation: 30 training examples" in err  # 32 lines, 2 skipped


def test_parallel_pairs_over_max_len_are_skipped_and_counted(tmp_path, capsys):
    ov = mt_setup(tmp_path, ["haus " * 12], ["HOUSE " * 12], "data.max_len=10")
    rc, out, err = cli(capsys, "train", RECIPE_MT, *ov)
    assert rc == 0, err
    assert f"skipped 1 items (1 longer than data.max_len=10 tokens): {tmp_path / 'data' / 'train.de'}:31" in err
    assert "translation: 30 training examples" in err  # 31 pairs, 1 skipped


def test_every_training_pair_over_max_len_is_an_error(tmp_path, capsys):
    ov = mt_setup(tmp_path, [], [], "data.max_len=2")
    clean_error(capsys, "train", RECIPE_MT, *ov, after_log=True,
                names=["every training pair of", "was skipped (skipped 30 items (30 longer than data.max_len=2"])


def test_non_utf8_target_names_the_line(tmp_path, capsys):
    ov = mt_setup(tmp_path)
    en = tmp_path / "data" / "train.en"
    en.write_bytes(en.read_bytes().replace(b"ROT", b"R\xd6T", 1))
    line = en.read_bytes()[: en.read_bytes().index(b"\xd6")].count(b"\n") + 1
    clean_error(capsys, "train", RECIPE_MT, *ov, names=[f"{en}:{line}", "not valid UTF-8"])


# ============================================================================ config


def test_config_mistyped_key_in_the_file(tmp_path, capsys):
    cfg = tiny_slot_config(tmp_path)
    raw = yaml.safe_load(cfg.read_text())
    raw["train"]["lr_rate"] = 0.1
    cfg.write_text(yaml.safe_dump(raw))
    clean_error(capsys, "train", cfg, names=[cfg, "unknown key 'train.lr_rate'", "did you mean 'train.lr'?"])


def test_config_mistyped_key_on_the_command_line(tmp_path, capsys):
    cfg = tiny_slot_config(tmp_path)
    clean_error(capsys, "train", cfg, "model.hiden_size=8",
                names=[cfg, "unknown key 'model.hiden_size'", "did you mean 'model.hidden_size'?"])


@pytest.mark.parametrize("override, message", [
    ("train.epochs=ten", "key 'train.epochs': expected an integer, got 'ten'"),
    ("train.optimizer=adamm", "key 'train.optimizer': expected one of ['adam', 'adamw', 'sgd'], got 'adamm'"),
    ("model.crf=maybe", "key 'model.crf': expected true/false, got 'maybe'"),
], ids=["int", "choice", "bool"])
def test_config_value_of_the_wrong_type(tmp_path, capsys, override, message):
    cfg = tiny_slot_config(tmp_path)
    clean_error(capsys, "train", cfg, override, names=[cfg, message])


def test_config_naming_a_missing_data_file(tmp_path, capsys):
    cfg = tiny_slot_config(tmp_path)
    clean_error(capsys, "train", cfg, f"data.train={tmp_path / 'nope'}",
                names=[cfg, "key 'data.train': file not found", tmp_path / "nope.seq.in"])


@pytest.mark.parametrize("case", ["missing", "empty", "invalid_yaml", "non_utf8", "unknown_task"])
def test_config_file_itself_is_bad(tmp_path, capsys, case):
    cfg = tmp_path / "c.yaml"
    reason = {
        "missing": "config file not found",
        "empty": "config file is empty",
        "invalid_yaml": f"{cfg}:2: invalid YAML: mapping values are not allowed here",
        "non_utf8": "not UTF-8 text",
        "unknown_task": "slot_filing",
    }[case]
    if case == "empty":
        cfg.write_text("\n")
    elif case == "invalid_yaml":
        cfg.write_text("task: slot_filling\ndata: train: x\n")
    elif case == "non_utf8":
        cfg.write_bytes(b"task: slot_filling\n# caf\xe9\n")
    elif case == "unknown_task":
        cfg.write_text("task: slot_filing\n")
    clean_error(capsys, "train", cfg, names=[cfg, reason])


# ============================================================================ seqkit score, ngram, predict


@pytest.fixture
def score_files(tmp_path):
    ref = tmp_path / "ref.txt"
    ref.write_text("the cat sat\non the mat\n")
    return tmp_path, ref


@pytest.mark.parametrize("metric", ["wer", "bleu", "acc"])
def test_score_with_an_empty_hypothesis_file(score_files, capsys, metric):
    tmp, ref = score_files
    hyp = tmp / "hyp.txt"
    hyp.write_text("")
    clean_error(capsys, "score", metric, "--ref", ref, "--hyp", hyp, names=[f"{hyp}: file is empty"])


@pytest.mark.parametrize("metric", ["wer", "cer", "chrf", "f1"])
def test_score_with_mismatched_line_counts(score_files, capsys, metric):
    tmp, ref = score_files
    hyp = tmp / "hyp.txt"
    hyp.write_text("the cat sat\n")
    if metric == "f1":
        ref.write_text("O O O\nO O O\n")
        hyp.write_text("O O O\n")
    clean_error(capsys, "score", metric, "--ref", ref, "--hyp", hyp,
                names=["line counts differ", f"{ref} has 2 lines", f"{hyp} has 1 line"])


def test_score_f1_tag_count_mismatch_names_the_line(score_files, capsys):
    tmp, ref = score_files
    ref.write_text("O B-city\nO O B-date\n")
    hyp = tmp / "hyp.txt"
    hyp.write_text("O B-city\nO O\n")
    clean_error(capsys, "score", "f1", "--ref", ref, "--hyp", hyp,
                names=[f"{hyp}:2: 2 tags but the reference ({ref}:2) has 3"])


def test_score_non_utf8_hypothesis_names_the_line(score_files, capsys):
    tmp, ref = score_files
    hyp = tmp / "hyp.txt"
    hyp.write_bytes(b"the cat sat\non the m\xe4t\n")
    clean_error(capsys, "score", "wer", "--ref", ref, "--hyp", hyp, names=[f"{hyp}:2", "not valid UTF-8"])


def test_score_missing_reference_file(score_files, capsys):
    tmp, ref = score_files
    clean_error(capsys, "score", "wer", "--ref", tmp / "nope.txt", "--hyp", ref,
                names=[f"{tmp / 'nope.txt'}: no such file"])


def test_score_ppl_with_a_file_that_is_not_arpa(score_files, capsys):
    tmp, ref = score_files
    clean_error(capsys, "score", "ppl", "--arpa", ref, "--text", ref, names=[ref])


def test_ngram_from_an_empty_text(tmp_path, capsys):
    text = tmp_path / "empty.txt"
    text.write_text("\n\n")
    clean_error(capsys, "ngram", "--order", "2", "--train", text, "--arpa", tmp_path / "x.arpa",
                names=[f"{text}: no words", "2 lines, all empty"])
    assert not (tmp_path / "x.arpa").exists()


def test_predict_input_that_is_not_utf8_names_the_line(tmp_path, capsys, slot_exp):
    cfg, _ = slot_exp
    inp = tmp_path / "in.txt"
    inp.write_bytes(b"fly to boston\nfly to m\xfcnchen\n")
    clean_error(capsys, "predict", cfg, "--input", inp, names=[f"{inp}:2", "not valid UTF-8"])


def test_predict_input_file_missing(tmp_path, capsys, slot_exp):
    cfg, _ = slot_exp
    clean_error(capsys, "predict", cfg, "--input", tmp_path / "nope.txt", names=[f"{tmp_path / 'nope.txt'}: no such file"])


def test_evaluate_with_a_corrupt_checkpoint(tmp_path, capsys, slot_exp):
    cfg, _ = slot_exp
    ckpt = tmp_path / "broken.pt"
    ckpt.write_bytes(b"PK\x03\x04 not a checkpoint")
    clean_error(capsys, "evaluate", cfg, "--ckpt", ckpt, names=[ckpt, "cannot read checkpoint"])
