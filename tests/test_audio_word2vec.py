"""Audio Word2Vec: retrieval metrics against hand-computed values, the sequence autoencoder,
the task end to end on synthetic word segments (tones per "word"), and segment extraction."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from seqkit.config import load_config
from seqkit.data.manifest import Utterance, read_manifest, write_manifest
from seqkit.metrics.retrieval import (
    average_precision,
    cosine_similarity_matrix,
    dtw_similarity_matrix,
    qbe_map,
    same_different_ap,
)
from seqkit.nn.autoencoder import SequenceAutoencoder, corrupt_features

# ---------------------------------------------------------------------------- metrics


def test_average_precision_by_hand():
    # ranking: rel, non, rel, non -> (1/1 + 2/3) / 2
    assert average_precision([0.9, 0.8, 0.7, 0.1], [True, False, True, False]) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision([0.1, 0.2, 0.3], [True, False, False]) == pytest.approx(1 / 3)
    assert math.isnan(average_precision([0.5, 0.4], [False, False]))
    # ties keep the original order (stable): the relevant item listed first ranks first
    assert average_precision([0.5, 0.5], [True, False]) == 1.0


def test_qbe_map_and_same_different_by_hand():
    labels = ["a", "a", "b", "c"]
    sim = np.array([[1.0, 0.9, 0.5, 0.1],
                    [0.9, 1.0, 0.95, 0.2],
                    [0.5, 0.95, 1.0, 0.3],
                    [0.1, 0.2, 0.3, 1.0]])
    q = qbe_map(sim, labels)
    # query 0 ranks 1 (a) first: AP 1; query 1 ranks 2 (b), 0 (a): AP 1/2; b and c have no match
    assert q == {"map": pytest.approx(0.75), "queries": 2, "queries_without_match": 2}
    sd = same_different_ap(sim, labels)
    # pairs by similarity: (1,2) .95 diff, (0,1) .9 same, ... -> AP = 1/2
    assert sd == {"ap": pytest.approx(0.5), "pairs": 6, "same_pairs": 1}


def test_cosine_and_dtw_similarity():
    v = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    torch.testing.assert_close(cosine_similarity_matrix(v), np.array([[1.0, 1, 0], [1, 1, 0], [0, 0, 1]]))
    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    b = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # a with its first frame repeated: cost 0
    c = np.array([[0.0, 1.0], [1.0, 0.0]])
    sim = dtw_similarity_matrix([a, b, c])
    assert sim[0, 1] == pytest.approx(0.0, abs=1e-12) and sim[0, 2] < -0.1 and sim[1, 0] == sim[0, 1]


# ---------------------------------------------------------------------------- model


def test_autoencoder_shapes_padding_and_corruption():
    torch.manual_seed(0)
    for kw in ({"bidirectional": True}, {"bidirectional": False, "num_layers": 2}, {"reductions": 1}):
        ae = SequenceAutoencoder(5, 8, 6, **kw).eval()
        x = torch.randn(2, 9, 5)
        lengths = torch.tensor([9, 6])
        out = ae(x, lengths)
        assert out["embedding"].shape == (2, 6) and out["output"].shape == (2, 9, 5) and out["n"] == 15
        x2 = x.clone()
        x2[1, 6:] = 50.0  # padding never changes a segment's embedding
        torch.testing.assert_close(ae.embed(x2, lengths)[1], ae.embed(x[1:, :6], lengths[1:])[0], atol=1e-5, rtol=1e-5)
    x = torch.ones(3, 4, 5)
    g = torch.Generator().manual_seed(0)
    y = corrupt_features(x, 0.0, 0.5, generator=g)
    assert set(y.unique().tolist()) <= {0.0, 1.0} and 0 < (y == 0).sum() < y.numel()
    assert torch.equal(corrupt_features(x), x)


def test_autoencoder_overfits_a_handful_of_segments():
    torch.manual_seed(0)
    x = torch.randn(4, 12, 6)
    lengths = torch.tensor([12, 10, 8, 7])
    ae = SequenceAutoencoder(6, 32, 16)
    opt = torch.optim.Adam(ae.parameters(), lr=0.01)
    first = None
    for _ in range(300):
        loss = ae(x, lengths)["loss"]
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.05 * first


# ---------------------------------------------------------------------------- task


def _segments(tmp_path: Path, speakers: list[str], per_word: int = 4) -> list[Utterance]:
    """Synthetic 'words': a word is a pair of tone frequencies, a speaker shifts the pitch."""
    words = {"LOW": (300, 500), "MID": (700, 900), "HIGH": (1300, 1700)}
    rng = np.random.default_rng(0)
    sr = 8000
    out = []
    for s_i, spk in enumerate(speakers):
        for w, (f1, f2) in words.items():
            for k in range(per_word):
                n = int(sr * rng.uniform(0.25, 0.4))
                t = np.arange(n) / sr
                shift = 1 + 0.05 * s_i
                x = np.where(t < t[-1] / 2, np.sin(2 * np.pi * f1 * shift * t), np.sin(2 * np.pi * f2 * shift * t))
                x = 0.3 * x + 0.01 * rng.standard_normal(n)
                path = tmp_path / f"{w}_{spk}_{k}.wav"
                sf.write(path, x.astype(np.float32), sr, subtype="PCM_16")
                out.append(Utterance(path.stem, str(path), n / sr, w, spk))
    return out


def test_audio_word2vec_task_end_to_end(tmp_path):
    from seqkit.tasks.base import evaluate, predict, train

    write_manifest(tmp_path / "train.jsonl", _segments(tmp_path, ["s1", "s2"]))
    write_manifest(tmp_path / "dev.jsonl", _segments(tmp_path, ["s3"]))
    cfg_path = tmp_path / "aw2v.yaml"
    cfg_path.write_text(yaml.safe_dump({
        "task": "audio_word2vec",
        "data": {"train": str(tmp_path / "train.jsonl"), "dev": str(tmp_path / "dev.jsonl"),
                 "cache_dir": str(tmp_path / "cache"), "allow_outside_paths": True},
        "model": {"hidden_size": 16, "emb_dim": 8, "noise_std": 0.3, "mask_prob": 0.1},
        "train": {"output_dir": str(tmp_path / "exp"), "epochs": 3, "max_tokens": 400, "progress": False,
                  "tensorboard": False, "num_threads": 1, "early_stopping": {"metric": "map", "mode": "max"}},
    }))
    summary = train(load_config(cfg_path), fresh=True)
    dev = summary["dev"]
    assert dev["segments"] == 12 and dev["words"] == 3 and dev["queries"] == 12
    assert 0 < dev["map"] <= 1 and 0 < dev["sd_ap"] <= 1
    emb = np.load(tmp_path / "exp" / "dev.embeddings.npy")
    assert emb.shape == (12, 8)
    m = evaluate(load_config(cfg_path))
    assert m["map"] == pytest.approx(dev["map"])  # evaluation is deterministic
    fresh = tmp_path / "eval_elsewhere"  # evaluate into an output dir that does not exist yet
    m2 = evaluate(load_config(cfg_path, [f"train.output_dir={fresh}"]), checkpoint=tmp_path / "exp" / "best.pt")
    assert m2["map"] == pytest.approx(dev["map"]) and (fresh / "dev.embeddings.npy").is_file()
    u = read_manifest(tmp_path / "dev.jsonl", allow_outside=True)[0]
    lines = predict(load_config(cfg_path), [u.path, "", f"{u.path} 0.05 0.2"])
    assert len(lines[0].split()) == 8 and lines[1] == "" and len(lines[2].split()) == 8
    assert lines[0] != lines[2]  # the segment differs from the whole file


# ---------------------------------------------------------------------------- segments


def test_ctc_word_segments_by_hand():
    from seqkit.search import ctc_word_segments

    path = [2, 2, 0, 1, 3, 3, 0, 0]  # ids: 0 blank, 1 space, 2 "A", 3 "B": "AA_ BB__"
    lp = torch.full((8, 4), -10.0)
    lp[torch.arange(8), torch.tensor(path)] = 0.0
    lp = torch.log_softmax(lp, dim=-1)
    words = ctc_word_segments(lp, [2, 1, 3], blank=0, delimiter=1, frame_seconds=0.04)
    assert [(w.index, w.start, w.end) for w in words] == [(0, 0.0, 0.08), (1, pytest.approx(0.16), pytest.approx(0.24))]
    assert all(w.score > -0.01 for w in words)
    with pytest.raises(ValueError, match="no CTC alignment"):
        ctc_word_segments(lp[:2], [2, 1, 3, 3], blank=0, delimiter=1, frame_seconds=0.04)


def test_an4_word_segments_from_a_tiny_asr_model(tmp_path):
    """Segment extraction on a tiny manifest: a CTC model trained a few steps on the shipped
    AN4 files cuts them into one segment per word, ordered, inside each utterance."""
    from data_prep import an4, an4_words
    from seqkit.tasks.base import train

    root = Path(__file__).resolve().parents[1]
    data = tmp_path / "an4"
    an4.prepare(data, root / "tests" / "data" / "an4_tiny", dev_speakers=1)
    cfg = tmp_path / "asr.yaml"
    cfg.write_text(yaml.safe_dump({
        "task": "asr",
        "data": {"train": str(data / "train.jsonl"), "dev": str(data / "dev.jsonl"), "n_mels": 40,
                 "allow_outside_paths": True},
        "model": {"front": "stack", "stack": 2, "encoder": "blstm", "enc_layers": 1, "enc_hidden": 16,
                  "ctc_weight": 1.0, "specaugment": False},
        "train": {"output_dir": str(tmp_path / "exp"), "epochs": 1, "progress": False, "tensorboard": False,
                  "num_threads": 1},
    }))
    train(load_config(cfg), fresh=True)
    out = tmp_path / "words.jsonl"
    st = an4_words.segment(str(cfg), str(tmp_path / "exp" / "best.pt"), str(data / "train.jsonl"), str(out))
    utts = {u.id: u for u in read_manifest(data / "train.jsonl", allow_outside=True)}
    segs = read_manifest(out, allow_outside=True)
    assert st["segments"] == len(segs) == sum(len(u.text.split()) for u in utts.values())
    for s in segs:
        u = utts[s.extra["utterance"]]
        assert s.text == u.text.split()[s.extra["word_index"]] and s.speaker == u.speaker
        assert 0 <= s.start < s.end <= u.duration + 1e-6
    by_utt: dict[str, list] = {}
    for s in segs:
        by_utt.setdefault(s.extra["utterance"], []).append(s)
    for ss in by_utt.values():  # word order is time order
        starts = [s.start for s in sorted(ss, key=lambda s: s.extra["word_index"])]
        assert starts == sorted(starts)
