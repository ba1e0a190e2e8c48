"""Query-by-example retrieval and same-different metrics for acoustic word embeddings.

* :func:`average_precision`: AP of one ranked list, ``sum_k P@k * rel_k / #relevant``.
* :func:`qbe_map`: query-by-example mean average precision: every segment queries all the
  others, ranked by similarity; a hit is a segment of the same word (Chung et al. 2016,
  "Audio Word2Vec", Section 4).
* :func:`same_different_ap`: the same-different task of Carlin, Thomas, Jansen & Hermansky
  (2011), "Rapid Evaluation of Speech Representations for Spoken Term Discovery": all pairs
  ranked by similarity, AP of "same word" over that one list (Kamper et al. 2016, Settle &
  Livescu 2016 report it for acoustic word embeddings).
* :func:`cosine_similarity_matrix`, :func:`dtw_similarity_matrix`: the pairwise scores of
  fixed vectors and of frame sequences (``librosa.sequence.dtw``, cosine frame distance, cost
  normalised by the path length; the similarity is minus that cost).

Ties are broken by the original order (stable sorts), so results are deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "average_precision",
    "cosine_similarity_matrix",
    "dtw_similarity_matrix",
    "qbe_map",
    "same_different_ap",
]


def average_precision(scores: Sequence[float] | np.ndarray, relevant: Sequence[bool] | np.ndarray) -> float:
    """AP of the list ranked by ``scores`` (high first); ``nan`` when nothing is relevant."""
    scores = np.asarray(scores, dtype=np.float64)
    rel = np.asarray(relevant, dtype=bool)
    if scores.shape != rel.shape or scores.ndim != 1:
        raise ValueError(f"scores and relevant must be 1-D of one length, got {scores.shape} and {rel.shape}")
    n_rel = int(rel.sum())
    if n_rel == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    hits = rel[order]
    precision_at_k = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision_at_k[hits].sum() / n_rel)


def qbe_map(similarity: np.ndarray, labels: Sequence[str]) -> dict:
    """Mean AP over queries: row ``i`` of ``similarity`` (N, N) ranks every ``j != i``.

    Queries whose word occurs nowhere else are left out (and counted).  Returns ``map``,
    ``queries`` (scored) and ``queries_without_match``.
    """
    sim = np.asarray(similarity, dtype=np.float64)
    labels = np.asarray(labels)
    n = len(labels)
    if sim.shape != (n, n):
        raise ValueError(f"similarity must be ({n}, {n}), got {sim.shape}")
    aps = []
    skipped = 0
    others = ~np.eye(n, dtype=bool)
    for i in range(n):
        rel = labels[others[i]] == labels[i]
        if not rel.any():
            skipped += 1
            continue
        aps.append(average_precision(sim[i, others[i]], rel))
    return {"map": float(np.mean(aps)) if aps else float("nan"), "queries": len(aps),
            "queries_without_match": skipped}


def same_different_ap(similarity: np.ndarray, labels: Sequence[str]) -> dict:
    """AP of "same word" over all ``N (N - 1) / 2`` pairs ranked by similarity."""
    sim = np.asarray(similarity, dtype=np.float64)
    labels = np.asarray(labels)
    iu = np.triu_indices(len(labels), k=1)
    same = labels[iu[0]] == labels[iu[1]]
    return {"ap": average_precision(sim[iu], same), "pairs": int(same.size), "same_pairs": int(same.sum())}


def cosine_similarity_matrix(vectors: np.ndarray) -> np.ndarray:
    """(N, D) -> (N, N) cosine similarities."""
    v = np.asarray(vectors, dtype=np.float64)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    return v @ v.T


def dtw_similarity_matrix(sequences: Sequence[np.ndarray]) -> np.ndarray:
    """(N, N) minus the path-length-normalised DTW cost between frame sequences (T_i, D)."""
    import librosa

    n = len(sequences)
    sim = np.zeros((n, n))
    seqs = [np.ascontiguousarray(np.asarray(s, dtype=np.float64).T) for s in sequences]  # (D, T)
    for i in range(n):
        for j in range(i + 1, n):
            cost, path = librosa.sequence.dtw(X=seqs[i], Y=seqs[j], metric="cosine")
            sim[i, j] = sim[j, i] = -cost[-1, -1] / len(path)
    return sim
