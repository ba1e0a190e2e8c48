"""Grid-search the continuous-cache settings (window, theta, lambda) of an LM checkpoint on dev.

    python recipes/lm/tune_cache.py CONFIG [--ckpt PATH] [--split FILE]
        [--windows 100 500 2000] [--thetas 0.3 0.5 0.662 0.8 1.0]
        [--lambdas 0.05 0.1 0.15 0.2 0.25] [key.sub=value ...]

Runs the model once over the text exactly as ``seqkit evaluate`` does (``data.eval_batch_size``
columns, each from a zero state, the leftover tokens continuing the last column) and keeps,
per position, only the hidden state and the model's log-probability of the true next word.
The cache probability of that word (Grave, Joulin & Usunier 2017) needs nothing else, so the
whole grid costs one model pass plus one (T x window) score matrix per (window, theta).
Prints a table of perplexities and the best setting; put that setting into the config
(``data.cache_size / cache_theta / cache_lambda``) and check it with
``seqkit evaluate CONFIG data.cache_size=...``, which computes the full mixture.  Tuning on
the dev text and reporting on it is optimistic; say so next to the number.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from seqkit.config import load_config  # noqa: E402
from seqkit.tasks.base import load_for_inference  # noqa: E402
from seqkit.tasks.lm import batchify, stream_ids  # noqa: E402


@torch.no_grad()
def collect(task, model, path):
    """Per column: (hiddens (L, H), targets (L,), model log p(target) (L,))."""
    d = task.cfg.data
    lm = model.lm
    ids, _ = stream_ids(task._lines(path, "split"), task.vocab)
    columns = max(1, min(d.eval_batch_size, ids.numel() - 1))
    x, y, rest = batchify(ids, columns)
    hs, lps = [], []
    state = None
    for s in range(0, x.size(1), d.eval_bptt):
        logits, state, hid = lm(x[:, s : s + d.eval_bptt], state)
        lp = F.log_softmax(logits.float(), -1).gather(-1, y[:, s : s + d.eval_bptt, None])
        hs.append(hid.float())
        lps.append(lp.squeeze(-1))
    hid, lp = torch.cat(hs, 1), torch.cat(lps, 1)  # (B, L, H), (B, L)
    cols = [[hid[j], y[j], lp[j]] for j in range(columns)]
    if rest:
        n = columns * x.size(1)
        xs, ys = ids[n : n + rest].unsqueeze(0), ids[n + 1 : n + rest + 1]
        logits, _, h2 = lm(xs, {k: v[-1:] for k, v in state.items()})
        lp2 = F.log_softmax(logits[0].float(), -1).gather(-1, ys[:, None]).squeeze(-1)
        last = cols[-1]
        cols[-1] = [
            torch.cat([last[0], h2[0].float()]),
            torch.cat([last[1], ys]),
            torch.cat([last[2], lp2]),
        ]
    return cols, ids.numel() - 1


def cache_target_prob(hid, tgt, window, theta, chunk=2048):
    """(p_cache(target_t) (T,), empty (T,) bool: no cache yet, the model is used alone)."""
    t_len = hid.size(0)
    out = torch.zeros(t_len, dtype=torch.float64)
    empty_all = torch.zeros(t_len, dtype=torch.bool)
    empty_all[0] = True
    for start in range(0, t_len, chunk):
        stop = min(start + chunk, t_len)
        lo = max(0, start - window)
        q = torch.arange(start, stop)
        k = torch.arange(lo, stop - 1) if stop - 1 > lo else torch.arange(0)
        if k.numel() == 0:
            empty_all[start:stop] = True
            continue
        scores = theta * hid[start:stop] @ hid[lo : stop - 1].T  # (n, K)
        diff = q[:, None] - k[None, :]
        valid = (diff >= 1) & (diff <= window)
        scores = scores.masked_fill(~valid, float("-inf"))
        empty = ~valid.any(1)
        scores[empty] = 0.0
        attn = torch.softmax(scores.double(), 1) * valid
        same = tgt[lo : stop - 1][None, :] == tgt[start:stop, None]
        p = (attn * same).sum(1)
        p[empty] = 0.0
        out[start:stop] = p
        empty_all[start:stop] = empty
    return out, empty_all


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("config")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--ckpt")
    p.add_argument("--split", help="text to tune on (default: the config's dev text)")
    p.add_argument("--windows", type=int, nargs="+", default=[100, 500, 2000])
    p.add_argument("--thetas", type=float, nargs="+", default=[0.3, 0.5, 0.662, 0.8, 1.0])
    p.add_argument("--lambdas", type=float, nargs="+", default=[0.05, 0.1, 0.15, 0.2, 0.25])
    p.add_argument("--json", help="also write the grid here")
    args = p.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    task, model = load_for_inference(cfg, args.ckpt)
    model.cpu()
    path = args.split or cfg.data.dev
    t0 = time.time()
    cols, n = collect(task, model, path)
    base = -sum(c[2].double().sum().item() for c in cols) / n
    print(f"{path}: {n} targets, model ppl {math.exp(base):.3f} ({time.time() - t0:.0f} s)")
    grid = []
    for w in args.windows:
        for th in args.thetas:
            pc = [cache_target_prob(c[0], c[1], w, th) for c in cols]
            for lam in args.lambdas:
                nll = 0.0
                for c, (pcache, empty) in zip(cols, pc):
                    pm = c[2].double().exp()
                    mixed = torch.where(empty, pm, (1 - lam) * pm + lam * pcache)
                    nll -= mixed.log().sum().item()
                grid.append({"window": w, "theta": th, "lambda": lam, "ppl": math.exp(nll / n)})
                print(
                    f"window {w:5d} theta {th:.3f} lambda {lam:.3f}: ppl {grid[-1]['ppl']:.3f}",
                    flush=True,
                )
    best = min(grid, key=lambda g: g["ppl"])
    print(
        f"best: window {best['window']} theta {best['theta']} lambda {best['lambda']}: "
        f"ppl {best['ppl']:.3f} (model alone {math.exp(base):.3f}; {time.time() - t0:.0f} s)"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"model_ppl": math.exp(base), "grid": grid, "best": best}, indent=1) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
