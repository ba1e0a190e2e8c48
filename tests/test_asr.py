"""Speech recognition: audio I/O and features, manifests, front ends, the ASR model and task.

Offline and independent of ../shared: real audio comes from the six AN4 utterances shipped in
tests/data/an4_tiny; other audio is synthesised in tmp_path.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from seqkit.config import load_config
from seqkit.data.audio import (
    FeatureCache,
    FeatureOptions,
    GlobalCMVN,
    features,
    load_audio,
    speed_perturb,
    utterance_cmvn,
    vtlp_matrix,
)
from seqkit.data.manifest import Utterance, read_manifest, write_manifest
from seqkit.errors import ConfigError, DataError
from seqkit.models.asr import ASRModel
from seqkit.nn.frontend import ConvSubsampling, SpecAugment, stack_frames

ROOT = Path(__file__).resolve().parents[1]
AN4_TINY = ROOT / "tests" / "data" / "an4_tiny"


def _wav(path: Path, seconds: float = 0.5, sr: int = 8000, channels: int = 1, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(n)
    data = np.stack([x] * channels, axis=1) if channels > 1 else x
    sf.write(path, data.astype(np.float32), sr, subtype="PCM_16")
    return path


# ---------------------------------------------------------------------------- audio


def test_load_audio_resamples_and_mixes_down(tmp_path):
    p = _wav(tmp_path / "a.wav", seconds=0.5, sr=8000, channels=2)
    wave, sr = load_audio(p)
    assert sr == 8000 and wave.shape == (4000,)
    wave16, sr16 = load_audio(p, 16000)
    assert sr16 == 16000 and wave16.shape == (8000,)
    seg, _ = load_audio(p, None, start=0.1, end=0.3)
    assert seg.shape == (1600,)
    assert torch.allclose(seg, wave[800:2400])


def test_corrupt_and_empty_audio_name_the_file(tmp_path):
    bad = tmp_path / "corrupt.wav"
    bad.write_bytes(b"RIFF\x00\x00not really a wave file at all")
    with pytest.raises(DataError, match="corrupt.wav"):
        load_audio(bad)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 8000)
    with pytest.raises(DataError, match="empty.wav.*no samples"):
        load_audio(empty)
    with pytest.raises(DataError, match="missing.wav"):
        load_audio(tmp_path / "missing.wav")


def test_fbank_shape_and_cmvn():
    opts = FeatureOptions(sample_rate=16000, n_mels=40)
    wave = torch.randn(16000)
    feats = features(wave, opts)
    assert feats.shape == (1 + 16000 // opts.hop, 40)  # 101 frames of 10 ms
    norm = utterance_cmvn(feats)
    assert torch.allclose(norm.mean(0), torch.zeros(40), atol=1e-4)
    assert torch.allclose(norm.std(0, unbiased=False), torch.ones(40), atol=1e-3)
    parts = [feats[:50], feats[50:]]
    g = GlobalCMVN.fit(parts)
    assert torch.allclose(g(feats).mean(0), torch.zeros(40), atol=1e-4)
    g2 = GlobalCMVN.from_dict(json.loads(json.dumps(g.to_dict())))
    assert torch.allclose(g2(feats), g(feats))


def test_speaker_cmvn_uses_each_speakers_own_statistics(tmp_path):
    from seqkit.tasks import get_task

    cfg = load_config(_config(tmp_path, tmp_path, data__cmvn="speaker"))
    task = get_task("asr")(cfg)
    g = torch.Generator().manual_seed(0)
    feats = [torch.randn(5 + i, 3, generator=g) * (1 + i) + 10 * i for i in range(4)]
    out = task.normalize_all(feats, list("abab"))
    for spk, idx in (("a", [0, 2]), ("b", [1, 3])):
        both = torch.cat([out[i] for i in idx])  # zero mean, unit variance over the speaker's frames
        assert torch.allclose(both.mean(0), torch.zeros(3), atol=1e-5), spk
        assert torch.allclose(both.std(0, unbiased=False), torch.ones(3), atol=1e-4), spk
        ref = GlobalCMVN.fit([feats[i] for i in idx])
        assert all(torch.equal(out[i], ref(feats[i])) for i in idx)
    assert task.normalize_all([], []) == []  # e.g. predict on input lines that are all blank
    with pytest.raises(ConfigError, match="data.cmvn"):
        task.normalize(feats[0])  # one utterance alone has no speaker statistics


def test_speed_perturb_changes_length():
    wave = torch.randn(16000)
    assert speed_perturb(wave, 16000, 1.0) is wave
    assert abs(speed_perturb(wave, 16000, 0.9).numel() - 16000 / 0.9) <= 2
    assert abs(speed_perturb(wave, 16000, 1.1).numel() - 16000 / 1.1) <= 2


def test_vtlp_moves_a_tone_below_the_knee_and_keeps_nyquist():
    """VTLP (Jaitly & Hinton 2013): identity at alpha 1; below the knee a tone at f moves to
    alpha * f; 0 Hz and Nyquist stay; every row interpolates (weights sum to 1)."""
    n = 129  # n_fft 256 at 8 kHz: bins of 31.25 Hz
    assert torch.allclose(vtlp_matrix(n, 8000, 1.0), torch.eye(n))
    for alpha in (0.9, 1.1):
        m = vtlp_matrix(n, 8000, alpha)
        assert torch.allclose(m.sum(1), torch.ones(n))
        assert m[0, 0] == 1 and m[-1, -1] == 1
        tone = torch.zeros(n)
        tone[32] = 1.0  # 1 kHz, below the knee of either factor
        warped = m @ tone  # (n,): the warped spectrum
        peak = float((warped * torch.arange(n)).sum() / warped.sum())  # centre of mass, in bins
        assert abs(peak - 32 * alpha) < 0.5, (alpha, peak)
    # features: a warp changes MFCCs but not their shape, and leaves the unwarped transform alone
    wave = torch.randn(4000)
    opts = FeatureOptions(kind="mfcc", sample_rate=8000, n_mels=40, n_mfcc=20)
    plain = features(wave, opts)
    warped = features(wave, opts, warp=1.1)
    assert warped.shape == plain.shape and not torch.allclose(warped, plain)
    assert torch.equal(features(wave, opts), plain)
    fb = FeatureOptions(sample_rate=8000, n_mels=20)
    assert features(wave, fb, warp=0.9).shape == features(wave, fb).shape
    with pytest.raises(ValueError, match="alpha > 0"):
        vtlp_matrix(n, 8000, 0.0)


def test_feature_cache_reuses_and_invalidates(tmp_path, monkeypatch):
    utts = [Utterance(f"u{i}", str(_wav(tmp_path / f"u{i}.wav", 0.3, seed=i)), 0.3, "A", "s") for i in range(2)]
    opts = FeatureOptions(sample_rate=8000, n_mels=20)
    cache = FeatureCache(tmp_path / "cache")
    first = cache.features(utts, opts)
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1
    import seqkit.data.audio as audio

    def fail(*a, **k):
        raise AssertionError("recomputed despite the cache")

    monkeypatch.setattr(audio, "utterance_features", fail)
    again = cache.features(utts, opts)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    with pytest.raises(AssertionError, match="recomputed"):  # another option: another key
        cache.features(utts, FeatureOptions(sample_rate=8000, n_mels=21))


# ---------------------------------------------------------------------------- manifests


def test_manifest_round_trip_and_errors(tmp_path):
    utts = [Utterance("a", str(tmp_path / "x.wav"), 1.5, "HELLO THERE", "spk1"),
            Utterance("b", str(tmp_path / "y.wav"), 0.4, "NO", "spk2", start=0.1, end=0.5, extra={"word": "NO"})]
    m = tmp_path / "m.jsonl"
    assert write_manifest(m, utts, relative=True) == 2
    assert json.loads(m.read_text().splitlines()[0])["path"] == "x.wav"
    back = read_manifest(m)  # relative paths inside the manifest's folder need no flag
    assert [(u.id, Path(u.path), u.duration, u.text, u.speaker, u.start, u.end, u.extra) for u in back] == [
        (u.id, Path(u.path), u.duration, u.text, u.speaker, u.start, u.end, u.extra) for u in utts]
    good = m.read_text().splitlines()[0]
    for bad_line, msg in [("{not json", "2: invalid JSON"),
                          (json.dumps({"id": "c", "path": "z.wav", "duration": 1.0, "text": "A"}), "2: missing key 'speaker'"),
                          (good, "2: duplicate id 'a'"),
                          (good.replace('"a"', '"c"').replace("HELLO THERE", " "), "2: utterance c: empty transcript")]:
        bad = tmp_path / "bad.jsonl"
        bad.write_text(good + "\n" + bad_line + "\n")
        with pytest.raises(DataError, match=f"bad.jsonl:{msg}"):
            read_manifest(bad)


@pytest.mark.parametrize("path", ["/etc/passwd", "../x.wav", "sub/../../x.wav"])
def test_manifest_paths_outside_its_folder_need_the_explicit_flag(tmp_path, path):
    (tmp_path / "m").mkdir()
    m = tmp_path / "m" / "m.jsonl"
    m.write_text(json.dumps({"id": "u1", "path": path, "duration": 1.0, "text": "A", "speaker": "s"}) + "\n")
    with pytest.raises(DataError, match=r"m\.jsonl:1: utterance u1: audio path .* lies outside .*allow_outside_paths"):
        read_manifest(m)
    assert read_manifest(m, allow_outside=True)[0].id == "u1"
    m.write_text(json.dumps({"id": "u1", "path": "sub/../x.wav", "duration": 1.0, "text": "A", "speaker": "s"}) + "\n")
    assert Path(read_manifest(m)[0].path) == tmp_path / "m" / "sub/../x.wav"  # stays inside: allowed


# ---------------------------------------------------------------------------- modules


def test_stack_frames_values_and_lengths():
    x = torch.arange(2 * 5 * 2, dtype=torch.float).view(2, 5, 2)
    out, lengths = stack_frames(x, torch.tensor([5, 3]), 2)
    assert out.shape == (2, 3, 4) and lengths.tolist() == [3, 2]
    assert out[0, 0].tolist() == x[0, 0].tolist() + x[0, 1].tolist()
    assert out[0, 2].tolist() == x[0, 4].tolist() + [0.0, 0.0]  # odd tail: zero-filled
    assert out[1, 1].tolist() == x[1, 2].tolist() + [0.0, 0.0]  # padding never leaks in


@pytest.mark.parametrize("front", ["stack", "conv"])
@pytest.mark.parametrize("encoder", ["blstm", "pyramidal"])
def test_asr_model_padding_never_leaks(front, encoder):
    torch.manual_seed(0)
    model = ASRModel(12, 9, front=front, stack=2, conv_channels=4, encoder=encoder, enc_hidden=8, enc_layers=3,
                     reductions=1, ctc_weight=0.5, emb_dim=6, dec_hidden=8, dropout=0.0).eval()
    lengths = torch.tensor([23, 14])
    x = torch.randn(2, 23, 12)
    x[1, 14:] = 100.0  # garbage in the padding
    enc, enc_lengths = model.encode(x, lengths)
    assert enc_lengths.tolist() == model.encoded_lengths(lengths).tolist()
    alone, alone_len = model.encode(x[1:, :14], lengths[1:])
    n = int(alone_len[0])
    assert n == int(enc_lengths[1])
    torch.testing.assert_close(enc[1, :n], alone[0, :n], atol=1e-5, rtol=1e-5)
    assert torch.all(enc[1, n:] == 0)


def test_conv_subsampling_lengths():
    conv = ConvSubsampling(10, 3, 7)
    out, lengths = conv(torch.randn(3, 17, 10), torch.tensor([17, 9, 4]))
    assert out.shape == (3, 5, 7) and lengths.tolist() == [5, 3, 1]


def test_specaugment_masks_in_training_only():
    torch.manual_seed(0)
    spec = SpecAugment(freq_masks=2, freq_width=5, time_masks=2, time_width=10, time_ratio=1.0)
    x = torch.randn(4, 50, 20) + 5.0
    assert torch.equal(spec.eval()(x), x)
    y = spec.train()(x)
    assert y.shape == x.shape
    assert (y == 0).any() and (y[y != 0] == x[y != 0]).all()


def test_joint_loss_combines_ctc_and_attention():
    torch.manual_seed(0)
    kw = dict(front="stack", stack=2, encoder="blstm", enc_hidden=8, enc_layers=1, emb_dim=6, dec_hidden=8, dropout=0.0)
    batch = {"feats": torch.randn(2, 20, 5), "feat_lengths": torch.tensor([20, 16]),
             "targets": torch.tensor([[4, 5, 6], [5, 4, 0]]), "target_lengths": torch.tensor([3, 2]),
             "tgt_in": torch.tensor([[2, 4, 5, 6], [2, 5, 4, 0]]), "tgt_out": torch.tensor([[4, 5, 6, 3], [5, 4, 3, 0]])}
    model = ASRModel(5, 7, ctc_weight=0.3, **kw).eval()
    out = model(batch)
    torch.testing.assert_close(out["loss"], 0.3 * out["ctc_loss"] + 0.7 * out["att_loss"])
    assert out["n"] == 7  # target tokens with EOS
    ctc_only = ASRModel(5, 7, ctc_weight=1.0, **kw)
    assert ctc_only.decoder is None and ctc_only(batch)["n"] == 5
    assert ASRModel(5, 7, ctc_weight=0.0, **kw).ctc is None


# ---------------------------------------------------------------------------- task, end to end


@pytest.fixture(scope="module")
def an4_tiny(tmp_path_factory):
    from data_prep import an4

    out = tmp_path_factory.mktemp("an4")
    an4.prepare(out, AN4_TINY, dev_speakers=1)
    return out


def _config(tmp_path: Path, data: Path, **over) -> Path:
    cfg = {
        "task": "asr",
        "data": {"train": str(data / "train.jsonl"), "dev": str(data / "dev.jsonl"), "n_mels": 40,
                 "cache_dir": str(tmp_path / "cache"), "allow_outside_paths": True},
        "model": {"front": "stack", "stack": 3, "encoder": "pyramidal", "enc_layers": 2, "enc_hidden": 32,
                  "ctc_weight": 0.5, "emb_dim": 16, "dec_hidden": 32, "dropout": 0.0, "specaugment": False},
        "decode": {"method": "joint", "beam_size": 3},
        "train": {"output_dir": str(tmp_path / "exp"), "epochs": 2, "max_tokens": 600, "lr": 0.003,
                  "progress": False, "tensorboard": False, "log_every": 5, "num_threads": 1},
    }
    for key, value in over.items():
        section, name = key.split("__")
        cfg[section][name] = value
    path = tmp_path / "config.yaml"
    import yaml

    path.write_text(yaml.safe_dump(cfg))
    return path


def test_asr_task_trains_evaluates_and_predicts(tmp_path, an4_tiny):
    from seqkit.tasks.base import evaluate, predict, train

    cfg = load_config(_config(tmp_path, an4_tiny))
    summary = train(cfg, fresh=True)
    assert set(summary["dev"]) >= {"wer", "cer", "rtf", "loss"}
    exp = tmp_path / "exp"
    hyp = (exp / "dev.hyp").read_text().splitlines()
    assert len(hyp) == len(read_manifest(an4_tiny / "dev.jsonl", allow_outside=True))
    assert (exp / "dev.worst.txt").read_text().startswith("WER ")
    from seqkit.metrics import wer

    refs = (exp / "dev.ref").read_text().splitlines()
    assert wer(refs, hyp)["score"] == pytest.approx(summary["dev"]["wer"])  # what `seqkit score wer` computes
    for method in ("ctc_greedy", "ctc_beam", "attention"):
        m = evaluate(load_config(_config(tmp_path, an4_tiny), [f"decode.method={method}"]))
        assert m["method"] == method and 0 <= m["cer"]
    wav = read_manifest(an4_tiny / "dev.jsonl", allow_outside=True)[0].path
    out = predict(cfg, [wav, "", wav])
    assert len(out) == 3 and out[1] == "" and out[0] == out[2]
    with pytest.raises(DataError, match="input line 1: .*nope.wav"):
        predict(cfg, [str(tmp_path / "nope.wav")])


def test_impossible_ctc_targets_are_skipped_and_counted(tmp_path, an4_tiny, capsys):
    from seqkit.tasks import get_task

    # 3 x 2^3 = 24x shorter: 0.24 s per frame is too few frames for these spellings
    cfg = load_config(_config(tmp_path, an4_tiny, model__enc_layers=4))
    task = get_task("asr")(cfg)
    task.build_state()
    items, lengths, _ = task.training_data()
    err = capsys.readouterr().err
    n_train = len(read_manifest(an4_tiny / "train.jsonl", allow_outside=True))
    assert 0 < n_train - len(items)
    assert f"skipped {n_train - len(items)} items" in err and "needed by CTC" in err


def test_training_set_holds_one_copy_per_speed_and_warp(tmp_path, an4_tiny):
    from seqkit.tasks import get_task

    cfg = load_config(_config(tmp_path, an4_tiny, model__encoder="blstm", data__speed_perturb=[1.0, 1.1],
                              data__vtlp=[0.9, 1.0, 1.1]))
    task = get_task("asr")(cfg)
    task.build_state()
    items, _, _ = task.training_data()
    n_train = len(read_manifest(an4_tiny / "train.jsonl", allow_outside=True))
    assert len(items) == 6 * n_train
    # the warped copies differ from the unwarped ones, frame for frame
    plain = [it["feats"] for it in items[n_train : 2 * n_train]]  # speed 1.0, warp 1.0
    warped = [it["feats"] for it in items[2 * n_train : 3 * n_train]]  # speed 1.0, warp 1.1
    assert all(a.shape == b.shape and not torch.allclose(a, b) for a, b in zip(plain, warped))
    assert len(list((tmp_path / "cache").glob("train-*.pt"))) == 6
    with pytest.raises(ConfigError, match="data.vtlp"):
        get_task("asr")(load_config(_config(tmp_path, an4_tiny, data__vtlp=[0.0])))


def test_asr_overfits_two_utterances(tmp_path, an4_tiny):
    """A small CTC model learns two real utterances exactly: the whole path can learn."""
    from seqkit.tasks.base import train

    utts = read_manifest(an4_tiny / "train.jsonl", allow_outside=True)[:2]
    write_manifest(tmp_path / "two.jsonl", utts)
    cfg = load_config(_config(tmp_path, an4_tiny, data__train=str(tmp_path / "two.jsonl"),
                              data__dev=str(tmp_path / "two.jsonl"), model__ctc_weight=1.0,
                              model__encoder="blstm", model__enc_layers=1, model__enc_hidden=64,
                              decode__method="ctc_greedy", train__epochs=120, train__lr=0.01))
    summary = train(cfg, fresh=True)
    assert summary["dev"]["wer"] == 0.0 and summary["dev"]["sentence_accuracy"] == 1.0
    # closed-vocabulary decoding: the right transcript out of the two and three distractors
    from seqkit.tasks.base import evaluate

    cands = tmp_path / "candidates.txt"
    texts = [u.text for u in utts]
    distractors = [texts[0][: len(texts[0]) // 2], texts[1][::-1], texts[1] + " " + texts[0]]
    cands.write_text("\n".join([texts[1], distractors[0], texts[0], "", *distractors[1:]]) + "\n")
    m = evaluate(load_config(cfg.source, ["decode.method=ctc_closed", f"decode.candidates={cands}"]))
    assert m["sentence_accuracy"] == 1.0 and m["n_candidates"] == 5
    # the score table: one row per utterance, its best candidate is the transcript written
    from seqkit.tasks.asr import read_candidate_scores

    out = Path(cfg.train.output_dir)
    ids, table_cands, scores = read_candidate_scores(out / "dev.scores.tsv")
    assert ids == [u.id for u in utts] and table_cands == [texts[1], distractors[0], texts[0], *distractors[1:]]
    assert scores.shape == (2, 5) and scores.argmax(-1).tolist() == [2, 0]
    assert (out / "dev.hyp").read_text().splitlines() == texts
    cands.write_text(texts[0] + "\nhello 7\n")
    with pytest.raises(DataError, match=r"candidates.txt:2: .*'7'"):
        evaluate(load_config(cfg.source, ["decode.method=ctc_closed", f"decode.candidates={cands}"]))
    with pytest.raises(ConfigError, match="decode.candidates"):
        evaluate(load_config(cfg.source, ["decode.method=ctc_closed"]))


def test_predict_cli_on_wav_list(tmp_path, an4_tiny):
    from seqkit.tasks.base import train

    cfg_path = _config(tmp_path, an4_tiny, train__epochs=1, decode__method="ctc_greedy")
    train(load_config(cfg_path), fresh=True)
    wavs = [u.path for u in read_manifest(an4_tiny / "dev.jsonl", allow_outside=True)]
    res = subprocess.run([sys.executable, "-m", "seqkit", "predict", str(cfg_path)], input="\n".join(wavs) + "\n",
                         capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert len(res.stdout.splitlines()) == len(wavs)


# ---------------------------------------------------------------------------- LM fusion


def test_mapped_lm_stepper_gathers_and_masks():
    from seqkit.search import MappedLMStepper

    class FixedLM:  # next-token log-probs depend only on the last token: row = token id
        table = torch.log_softmax(torch.arange(12, dtype=torch.float).view(3, 4), dim=-1)

        def init_state(self, b):
            return {"h": torch.zeros(b, 1)}

        def step(self, tokens, state):
            return self.table[tokens], state

    stepper = MappedLMStepper(FixedLM(), [-1, 2, 0, 1, -1])  # decoder id -> LM id
    out, _ = stepper.step(torch.tensor([2, 3]), stepper.init_state(2))  # LM ids 0 and 1
    assert out.shape == (2, 5)
    assert torch.isinf(out[:, 0]).all() and torch.isinf(out[:, 4]).all()
    torch.testing.assert_close(out[0, 1:4], FixedLM.table[0, [2, 0, 1]])
    torch.testing.assert_close(out[1, 1:4], FixedLM.table[1, [2, 0, 1]])
    with pytest.raises(ValueError, match="no LM id"):
        stepper.step(torch.tensor([0]), stepper.init_state(1))


def test_asr_decoding_with_char_rnn_lm_and_word_ngram(tmp_path, an4_tiny):
    import yaml

    from seqkit.config import ConfigError
    from seqkit.models.ngram import estimate_kn
    from seqkit.tasks.base import evaluate, train

    lm_cfg = tmp_path / "lm.yaml"
    lm_cfg.write_text(yaml.safe_dump({
        "task": "language_model",
        "data": {"train": str(an4_tiny / "train_chars.txt"), "dev": str(an4_tiny / "dev_chars.txt"),
                 "batch_size": 2, "bptt": 8, "eval_batch_size": 1, "eval_bptt": 16},
        "model": {"emb_dim": 8, "hidden_size": 16, "num_layers": 1, "tie_weights": False},
        "train": {"output_dir": str(tmp_path / "lm"), "epochs": 1, "progress": False, "tensorboard": False},
    }))
    train(load_config(lm_cfg), fresh=True)
    asr_cfg = _config(tmp_path, an4_tiny, train__epochs=1)
    train(load_config(asr_cfg), fresh=True)
    base = {m: evaluate(load_config(asr_cfg, [f"decode.method={m}"])) for m in ("ctc_beam", "joint")}
    for method in ("ctc_beam", "joint", "attention"):
        m = evaluate(load_config(asr_cfg, [f"decode.method={method}", f"decode.lm={tmp_path / 'lm' / 'best.pt'}",
                                           "decode.lm_weight=0.5"]))
        assert m["lm"].endswith("best.pt") and m["method"] == method
    arpa = tmp_path / "word.arpa"
    estimate_kn([line.split() for line in (an4_tiny / "train_text.txt").read_text().splitlines()], order=2).write_arpa(arpa)
    m = evaluate(load_config(asr_cfg, ["decode.method=ctc_beam", f"decode.lm={arpa}"]))
    assert m["lm"] == str(arpa)
    zero = evaluate(load_config(asr_cfg, ["decode.method=ctc_beam", f"decode.lm={arpa}", "decode.lm_weight=0"]))
    assert zero["wer"] == base["ctc_beam"]["wer"]  # weight 0: the plain beam search's result
    with pytest.raises(ConfigError, match="ARPA word LM fuses with ctc_beam only"):
        evaluate(load_config(asr_cfg, ["decode.method=joint", f"decode.lm={arpa}"]))


def test_sentencepiece_units(tmp_path, an4_tiny):
    from seqkit.tasks.base import evaluate, train

    cfg_path = _config(tmp_path, an4_tiny, data__units="sentencepiece", data__sp_vocab_size=20, train__epochs=1)
    summary = train(load_config(cfg_path), fresh=True)
    assert (tmp_path / "exp" / "spm.model").exists() and "wer" in summary["dev"]
    for method in ("ctc_beam", "joint"):
        assert evaluate(load_config(cfg_path, [f"decode.method={method}"]))["method"] == method


def test_word_units(tmp_path, an4_tiny):
    from seqkit.tasks.base import evaluate, train

    cfg_path = _config(tmp_path, an4_tiny, data__units="word", train__epochs=1, model__ctc_weight=1.0,
                       decode__method="ctc_beam")
    summary = train(load_config(cfg_path), fresh=True)
    assert summary["dev"]["method"] == "ctc_beam"
    from seqkit.tasks import get_task

    task = get_task("asr")(load_config(cfg_path))
    task.build_state()
    assert task.units("Z EIGHT OH TWO") == ["Z", "EIGHT", "OH", "TWO"]
    words = task.vocab.tokens[4:6]  # two training words (after the specials)
    assert all(" " not in w for w in words) and task.detok(task.vocab.encode(words)) == " ".join(words)
    assert evaluate(load_config(cfg_path, ["decode.method=ctc_greedy"]))["method"] == "ctc_greedy"
