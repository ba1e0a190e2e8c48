"""Query-by-example on the dev segments: trained autoencoders against the two baselines.

Every method is scored by the same code (:mod:`seqkit.metrics.retrieval`) on the same
segments and features (the config's, CMVN-normalised):

* ``downsampled``: each segment's feature sequence linearly resampled to ``--frames`` frames
  and flattened (13 x 10 = 130 dimensions by default), cosine similarity;
* ``dtw``: frame-level DTW (``librosa.sequence.dtw``, cosine frame distance, cost divided by
  the path length) between every pair;
* each ``NAME=CHECKPOINT``: the autoencoder's embeddings, cosine similarity.

For each: QbE MAP, same-different AP, the seconds of the retrieval itself (embedding the
segments, all-pairs similarity and every query's ranking; feature extraction and the metric
computation excluded) and the speed-up over DTW.  With
``--plot`` a PCA and a t-SNE map of the first model's embeddings coloured by word, and the
nearest neighbours of a few segments.

Usage::

    python recipes/audio_word2vec/compare.py recipes/audio_word2vec/fsdd/config.yaml \\
        SA=exp/aw2v_fsdd_sa/best.pt DSA=exp/aw2v_fsdd_dsa/best.pt \\
        --plot recipes/audio_word2vec/fsdd/embeddings.png --json exp/aw2v_fsdd_compare.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from seqkit.config import load_config  # noqa: E402
from seqkit.metrics.retrieval import (  # noqa: E402
    cosine_similarity_matrix,
    dtw_similarity_matrix,
    qbe_map,
    same_different_ap,
)
from seqkit.tasks.base import load_for_inference  # noqa: E402


def downsample(feats: list[torch.Tensor], frames: int) -> np.ndarray:
    """(N, frames * F): every (T, F) sequence linearly resampled to ``frames`` frames."""
    out = [torch.nn.functional.interpolate(f.T.unsqueeze(0), size=frames, mode="linear", align_corners=True)
           .squeeze(0).T.reshape(-1) for f in feats]
    return torch.stack(out).numpy()


def score(name: str, sim_fn, labels: list[str]) -> dict:
    """Time the retrieval (similarities of all pairs + every query's ranking), then score it."""
    t0 = time.perf_counter()
    sim = sim_fn()
    np.argsort(-sim, axis=1, kind="stable")  # each query's ranked list: what retrieval returns
    seconds = time.perf_counter() - t0
    q = qbe_map(sim, labels)
    sd = same_different_ap(sim, labels)
    return {"method": name, "map": q["map"], "sd_ap": sd["ap"], "seconds": seconds,
            "queries": q["queries"], "pairs": sd["pairs"]}


def plot(emb: np.ndarray, labels: list[str], title: str, path: str, seed: int = 0, top: int = 10) -> None:
    """PCA and t-SNE maps of the segments of the ``top`` most frequent words."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    counts = {w: labels.count(w) for w in set(labels)}
    words = sorted(sorted(counts, key=lambda w: (-counts[w], w))[:top])
    keep = np.array([lab in words for lab in labels])
    emb, labels = emb[keep], [lab for lab in labels if lab in words]
    cmap = plt.get_cmap("tab10" if len(words) <= 10 else "tab20")
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.5))
    for ax, (name, xy) in zip(axes, (("PCA", PCA(2, random_state=seed).fit_transform(emb)),
                                      ("t-SNE", TSNE(2, random_state=seed, init="pca").fit_transform(emb)))):
        for k, w in enumerate(words):
            sel = np.array([lab == w for lab in labels])
            ax.scatter(xy[sel, 0], xy[sel, 1], s=6, color=cmap(k % cmap.N), label=w)
        ax.set_title(f"{title}: {name} ({len(labels)} segments, {len(words)} most frequent words)")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[1].legend(markerscale=3, fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("config")
    p.add_argument("models", nargs="*", metavar="NAME=CHECKPOINT")
    p.add_argument("--frames", type=int, default=10, help="downsampled baseline: frames kept (default 10)")
    p.add_argument("--no-dtw", action="store_true", help="skip the DTW baseline")
    p.add_argument("--plot", help="PNG of PCA / t-SNE maps of the first model's embeddings")
    p.add_argument("--neighbours", type=int, default=3, help="print the 5 nearest neighbours of this many segments")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    cfg = load_config(args.config)
    from seqkit.tasks import get_task

    task = get_task(cfg.task)(cfg)
    utts, items = task._dev(cfg.data.dev, "data.dev")
    feats = [it["feats"] for it in items]
    labels = [u.text for u in utts]
    print(f"{len(utts)} segments, {len(set(labels))} words, {len({u.speaker for u in utts})} speakers "
          f"({cfg.data.dev}); 1 thread", file=sys.stderr)
    rows = [score(f"downsampled MFCC ({args.frames} frames)",
                  lambda: cosine_similarity_matrix(downsample(feats, args.frames)), labels)]
    if not args.no_dtw:
        dtw_similarity_matrix([f.numpy() for f in feats[:3]])  # compile librosa's numba kernel first
        rows.append(score("MFCC frames + DTW", lambda: dtw_similarity_matrix([f.numpy() for f in feats]), labels))
    embeddings = {}
    for spec in args.models:
        name, _, ckpt = spec.partition("=")
        mcfg = load_config(args.config, ["train.num_threads=1"])
        mtask, model = load_for_inference(mcfg, ckpt)

        def sim_fn(mtask=mtask, model=model, name=name):
            with torch.inference_mode():
                emb, _ = mtask.embed(model, items)
            embeddings[name] = emb
            return cosine_similarity_matrix(emb)

        rows.append(score(f"{name} ({ckpt})", sim_fn, labels))
    dtw_sec = next((r["seconds"] for r in rows if "DTW" in r["method"]), None)
    print("| method | QbE MAP | same-different AP | seconds | speed-up over DTW |")
    print("|---|---|---|---|---|")
    for r in rows:
        speed = f"{dtw_sec / r['seconds']:.0f}x" if dtw_sec else "-"
        print(f"| {r['method']} | {r['map']:.4f} | {r['sd_ap']:.4f} | {r['seconds']:.2f} | {speed} |")
    if embeddings and args.neighbours:
        name, emb = next(iter(embeddings.items()))
        sim = cosine_similarity_matrix(emb)
        rng = np.random.default_rng(0)
        for i in rng.choice(len(utts), size=min(args.neighbours, len(utts)), replace=False):
            order = [j for j in np.argsort(-sim[i], kind="stable") if j != i][:5]
            near = ", ".join(f"{labels[j]} ({utts[j].speaker})" for j in order)
            print(f"{name} nearest to {utts[i].id} [{labels[i]}]: {near}")
    if args.plot and embeddings:
        name, emb = next(iter(embeddings.items()))
        plot(emb, labels, name, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2)
                                   + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
