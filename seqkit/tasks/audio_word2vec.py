"""Audio Word2Vec (``task: audio_word2vec``): segment embeddings from a sequence autoencoder.

Chung et al. 2016 (see :mod:`seqkit.nn.autoencoder`).  Data: JSONL manifests of word-level
segments (:mod:`seqkit.data.manifest`; a whole file, e.g. one FSDD digit, or ``start``/``end``
within an utterance, e.g. AN4 words cut by forced alignment); the word is the ``text``.
Features: MFCCs (the paper: 13) or log-mels, per-segment CMVN by default, cached on disk.

Training needs no labels (the autoencoder reconstructs its input).  Evaluation on the dev
manifest (speakers unseen in training): every segment queries all the others, ranked by
the cosine similarity of the embeddings; ``map`` is the query-by-example mean average
precision and ``sd_ap`` the same-different average precision over all pairs
(:mod:`seqkit.metrics.retrieval`); ``loss`` the reconstruction MSE; ``embed_seconds`` and
``retrieval_seconds`` time the two stages.  ``seqkit predict`` reads audio paths (one per
line, optionally ``path start end`` in seconds) and prints one embedding per line.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from ..errors import Skips
from ..metrics.retrieval import cosine_similarity_matrix, qbe_map, same_different_ap
from ..models.audio_word2vec import SegmentAutoencoder
from ..train.trainer import move_to
from .audio import AudioTask


@dataclass
class AW2VDataConfig:
    train: str = "data/fsdd/aw2v/train.jsonl"
    dev: str = "data/fsdd/aw2v/dev.jsonl"
    sample_rate: int = 8000
    features: Literal["mfcc", "fbank"] = "mfcc"
    n_mfcc: int = 13
    n_mels: int = 40
    cmvn: Literal["utterance", "speaker", "global", "none"] = "utterance"
    cache_dir: str | None = None
    allow_outside_paths: bool = False  # manifest audio paths may leave the manifest's folder
    max_frames: int | None = None  # longer training segments are skipped, counted


@dataclass
class AW2VModelConfig:
    hidden_size: int = 128
    emb_dim: int = 100
    num_layers: int = 1
    bidirectional: bool = True
    reductions: int = 0  # > 0: pyramidal encoder
    noise_std: float = 0.0  # DSA: Gaussian input noise (features are CMVN-normalised)
    mask_prob: float = 0.0  # DSA: share of input values zeroed
    reverse_target: bool = False
    dropout: float = 0.0


class AudioWord2VecTask(AudioTask):
    name = "audio_word2vec"
    DataConfig = AW2VDataConfig
    ModelConfig = AW2VModelConfig

    def __init__(self, cfg):
        super().__init__(cfg)
        self._dev_cache: tuple | None = None

    # ------------------------------------------------------------------ state
    def build_state(self) -> None:
        d = self.cfg.data
        utts = self._manifest(d.train, "data.train")
        self.fit_cmvn(utts, "aw2v-train")
        print(f"audio_word2vec: {len(utts)} training segments, {len({u.text for u in utts})} words",
              file=sys.stderr)

    def collate(self, items: list[dict]) -> dict:
        x, lengths = self.pad_features(items)
        return {"x": x, "lengths": lengths}

    def training_data(self):
        d = self.cfg.data
        utts = self._manifest(d.train, "data.train")
        skips = Skips()
        items = []
        feats = self.normalize_all(self._features(utts, "aw2v-train"), [u.speaker for u in utts])
        for line, (u, f) in enumerate(zip(utts, feats), 1):
            if d.max_frames is not None and f.size(0) > d.max_frames:
                skips.add(d.train, line, f"{u.id}: longer than data.max_frames={d.max_frames}")
                continue
            items.append({"feats": f})
        if len(skips):
            print(f"{d.train}: {skips.summary()}", file=sys.stderr)
        return items, [it["feats"].size(0) for it in items], self.collate

    # ------------------------------------------------------------------ model
    def build_model(self) -> SegmentAutoencoder:
        m = self.cfg.model
        return SegmentAutoencoder(self.feature_options.dim, m.hidden_size, m.emb_dim, m.num_layers, m.bidirectional,
                                  m.reductions, m.noise_std, m.mask_prob, m.reverse_target, m.dropout)

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def embed(self, model, items: list[dict], batch_size: int = 128,
              with_loss: bool = False) -> tuple[np.ndarray, float]:
        """(N, E) embeddings of ``items`` (in order), and with ``with_loss`` the summed
        reconstruction loss times frames (the decoder runs only then)."""
        device = next(model.parameters()).device
        out = np.zeros((len(items), model.emb_dim), dtype=np.float32)
        order = sorted(range(len(items)), key=lambda i: items[i]["feats"].size(0))
        total = 0.0
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = move_to(self.collate([items[i] for i in idx]), device)
            if with_loss:
                res = model(batch)
                emb = res["embedding"]
                total += float(res["loss"]) * res["n"]
            else:
                emb = model.embed(batch["x"], batch["lengths"])  # (B, E): the encoder only
            out[idx] = emb.float().cpu().numpy()
        return out, total

    def _dev(self, path: str, key: str):
        if self._dev_cache is not None and self._dev_cache[0] == path:
            return self._dev_cache[1:]
        utts = self._manifest(path, key)
        feats = self.normalize_all(self._features(utts, "aw2v-dev"), [u.speaker for u in utts])
        items = [{"feats": f} for f in feats]
        self._dev_cache = (path, utts, items)
        return utts, items

    def evaluate(self, model, split: str | None = None, out_prefix=None) -> dict:
        path = split or self.cfg.data.dev
        utts, items = self._dev(path, "data.dev" if split is None else "split")
        labels = [u.text for u in utts]
        t0 = time.perf_counter()
        emb, _ = self.embed(model, items)
        t1 = time.perf_counter()
        sim = cosine_similarity_matrix(emb)
        q = qbe_map(sim, labels)
        sd = same_different_ap(sim, labels)
        t2 = time.perf_counter()
        _, total = self.embed(model, items, with_loss=True)
        frames = sum(it["feats"].size(0) for it in items)
        metrics = {"map": q["map"], "sd_ap": sd["ap"], "loss": total / max(frames, 1),
                   "segments": len(utts), "words": len(set(labels)), "speakers": len({u.speaker for u in utts}),
                   "queries": q["queries"], "embed_seconds": t1 - t0, "retrieval_seconds": t2 - t1,
                   "threads": torch.get_num_threads()}
        if out_prefix is not None:
            Path(out_prefix).parent.mkdir(parents=True, exist_ok=True)
            np.save(f"{out_prefix}.embeddings.npy", emb)
        return metrics

    def predict(self, model, lines: list[str]) -> list[str]:
        """One embedding (space-separated floats) per ``path`` or ``path start end`` line."""
        items, where = self.input_items(lines)
        out = [""] * len(lines)
        if items:
            emb, _ = self.embed(model, items)
            for n, vec in zip(where, emb):
                out[n] = " ".join(f"{x:.5f}" for x in vec)
        return out
