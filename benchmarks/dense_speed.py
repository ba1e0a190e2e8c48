"""torch's ``F.linear`` / ``nn.LSTMCell`` against seqkit's oneDNN route (``seqkit.nn.dense``)
at the shapes of the recipes, forward only (inference mode) and forward + backward.

Both sides run in the same process, alternating, on the same tensors; the medians of
``--repeats`` calls (after warm-up) and their ratio are printed, and the largest deviation of
the outputs / gradients from torch's, relative to their largest magnitude.

    python benchmarks/dense_speed.py                 # threads 1 and 2
    python benchmarks/dense_speed.py --threads 2 --json exp/dense_speed.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _bench_common import cpu_name, median_seconds  # noqa: E402

from seqkit.nn import dense  # noqa: E402
from seqkit.nn.cells import TorchLSTMCell  # noqa: E402

# (label, rows M, in K, out N): where the recipes spend their product time.
LINEAR_SHAPES = [
    ("beam search output projection (64 sent x beam 5, H 256, V 7999)", 320, 256, 7999),
    (
        "translation training output projection (~2000 target tokens, H 512, V 7999)",
        2000,
        512,
        7999,
    ),
    ("PTB LM tied softmax (20 x 35 tokens, emb 400, V 10000)", 700, 400, 10000),
    ("translation attention key projection (64 x 30 positions, 512 -> 512)", 1920, 512, 512),
    ("decoder combine W_c (130 rows, 1024 -> 512)", 130, 1024, 512),
]
# (label, batch B, input D, hidden H)
CELL_SHAPES = [
    ("beam search decoder LSTMCell (320 rows, emb 256 + feed 256 -> 256)", 320, 512, 256),
    ("translation training decoder LSTMCell (130 rows, emb 512 + feed 512 -> 512)", 130, 1024, 512),
]


def _median_ms(fn, repeats: int) -> float:
    return median_seconds(fn, repeats, warmup=3) * 1e3


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def _pair(torch_fn, seqkit_fn, repeats: int) -> tuple[float, float]:
    """Alternate the two sides in rounds of ``repeats // 3`` calls; the medians of all calls."""
    a, b = [], []
    for _ in range(3):
        a.append(_median_ms(torch_fn, max(repeats // 3, 1)))
        b.append(_median_ms(seqkit_fn, max(repeats // 3, 1)))
    return statistics.median(a), statistics.median(b)


def bench_linear(m: int, k: int, n: int, repeats: int) -> dict:
    torch.manual_seed(0)
    x = torch.randn(m, k, requires_grad=True)
    w = torch.randn(n, k, requires_grad=True)
    b = torch.randn(n, requires_grad=True)
    g = torch.randn(m, n)
    with torch.inference_mode():
        fwd = _pair(lambda: F.linear(x, w, b), lambda: dense.linear(x, w, b), repeats)

    def train(fn):
        def run():
            x.grad = w.grad = b.grad = None
            fn(x, w, b).backward(g)

        return run

    train(F.linear)()
    ref = [F.linear(x, w, b).detach()] + [t.grad.clone() for t in (x, w, b)]
    train(dense.linear)()
    got = [dense.linear(x, w, b).detach()] + [t.grad.clone() for t in (x, w, b)]
    both = _pair(train(F.linear), train(dense.linear), repeats)
    return {
        "forward_ms": fwd,
        "train_ms": both,
        "forward_gflops": [2 * m * k * n / t / 1e6 for t in fwd],
        "train_gflops": [6 * m * k * n / t / 1e6 for t in both],
        "max_rel_diff": max(_rel(a, c) for a, c in zip(got, ref)),
    }


def bench_cell(bsz: int, d: int, h: int, repeats: int) -> dict:
    torch.manual_seed(0)
    ours = TorchLSTMCell(d, h)
    ref = torch.nn.LSTMCell(d, h)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(bsz, d, requires_grad=True)
    state = (torch.randn(bsz, h), torch.randn(bsz, h))
    with torch.inference_mode():
        fwd = _pair(lambda: ref(x, state), lambda: ours(x, state), repeats)

    def train(cell):
        def run():
            cell.zero_grad()
            x.grad = None
            hh, cc = cell(x, state)
            (hh.sum() + cc.sum()).backward()

        return run

    train(ref)()
    want = [x.grad.clone()] + [p.grad.clone() for p in ref.parameters()]
    train(ours)()
    got = [x.grad.clone()] + [p.grad.clone() for p in ours.parameters()]
    both = _pair(train(ref), train(ours), repeats)
    flops = 2 * bsz * 4 * h * (d + h)
    return {
        "forward_ms": fwd,
        "train_ms": both,
        "forward_gflops": [flops / t / 1e6 for t in fwd],
        "train_gflops": [3 * flops / t / 1e6 for t in both],
        "max_rel_diff": max(_rel(a, c) for a, c in zip(got, want)),
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args()
    if not dense.onednn_linear_enabled():
        sys.exit(
            "dense_speed: seqkit's oneDNN route is off (torch without oneDNN, or SEQKIT_ONEDNN_LINEAR=0)"
        )
    print(f"{cpu_name()}, torch {torch.__version__}")
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        print(f"\n{threads} thread(s)\n")
        print(
            "| product | forward: torch / seqkit ms | speed-up | fwd+bwd: torch / seqkit ms | speed-up | seqkit fwd+bwd GFLOP/s | max rel. diff |"
        )
        print("|---|---|---|---|---|---|---|")
        cases = [(lbl, "linear", s) for lbl, *s in LINEAR_SHAPES] + [
            (lbl, "cell", s) for lbl, *s in CELL_SHAPES
        ]
        for label, kind, shape in cases:
            r = (bench_linear if kind == "linear" else bench_cell)(*shape, args.repeats)
            (ft, fs), (tt, ts) = r["forward_ms"], r["train_ms"]
            print(
                f"| {label} | {ft:.2f} / {fs:.2f} | {ft / fs:.2f}x | {tt:.2f} / {ts:.2f} | {tt / ts:.2f}x "
                f"| {r['train_gflops'][1]:.0f} | {r['max_rel_diff']:.1e} |",
                flush=True,
            )
            rows.append({"threads": threads, "label": label, "shape": shape, **r})
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(
            json.dumps({"cpu": cpu_name(), "torch": torch.__version__, "rows": rows}, indent=1)
        )


if __name__ == "__main__":
    main()
