"""CPU kernels of issue 8 item 1 against what they replace, forward + backward each.

1. Output layer + loss: forward + backward of ``sequence_cross_entropy(linear(x, W, b), y)`` (label smoothing 0.1,
10 % of the rows padding) and of :func:`seqkit.nn.losses.linear_cross_entropy` on the same
tensors, for the shapes of two recipes' output layers: the translation decoder (about 2000
target tokens, H 512, V 7999) and the PTB LM's tied softmax (20 x 35 tokens, 400, 10000).
2. Dropout (p 0.3): ``F.dropout`` (a ``bernoulli_`` mask on the CPU) against
   :func:`seqkit.nn.dropout.dropout` (a ``torch.rand`` mask), ``y.sum().backward()``
   of the result, for a translation decoder step's (95, 512), the stacked decoder outputs'
   (95, 21, 512) and a (1995, 512) activation.
3. tanh: ``torch.tanh`` against :func:`seqkit.nn.activation.tanh` (numpy's kernel),
   ``y.backward(g)``, for the location-aware attention's (13, 96, 256) (an AN4 batch: 13
   utterances, 96 encoder frames, A 256), the additive attention's (130, 16, 512) (a Multi30k
   batch: 130 sentences of 16 source tokens, A 512) and a decoder cell's (130, 512).
4. Weight gradient ``dW = g^T x`` through oneDNN in both operand orders (what
   :func:`seqkit.nn.dense.weight_grad` chooses between), for the translation output layer
   (M 1995 rows, N 7999, K 512), the location-aware attention's location projection (M 1248,
   N 256, K 10) and a translation decoder cell (M 130, N 2048, K 1024).

The glibc malloc setting of the trainer (``tune_malloc(256)``) is on, as in training.  Each
side: 2 warm-up calls, then the mean of ``--calls`` calls; the two sides alternate
``--repeats`` times and the median is printed.

    python benchmarks/kernel_speed.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from _seqkit_models import machine_line

from seqkit.nn.activation import tanh
from seqkit.nn.dense import _mm_t, linear
from seqkit.nn.dropout import dropout
from seqkit.nn.losses import linear_cross_entropy, sequence_cross_entropy
from seqkit.train.memory import tune_malloc

SHAPES = [(1995, 512, 7999, "translation output layer"), (700, 400, 10000, "PTB LM tied softmax")]


def timed(fn, calls: int) -> float:
    for _ in range(2):
        fn()
    t = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t) / calls * 1e3


def alternate(old, new, calls: int, repeats: int) -> tuple[float, float]:
    """Median over ``repeats`` of :func:`timed` ms of ``old`` and ``new``, taken in turn."""
    t_old, t_new = [], []
    for _ in range(repeats):
        t_old.append(timed(old, calls))
        t_new.append(timed(new, calls))
    return statistics.median(t_old), statistics.median(t_new)


def rows(label: str, old, new, calls: int, args, digits: int = 3) -> None:
    """One table row per thread count: ``old`` and ``new`` ms (alternating) and the speed-up."""
    for threads in args.threads:
        torch.set_num_threads(threads)
        a, b = alternate(old, new, calls, args.repeats)
        print(f"| {label} | {threads} | {a:.{digits}f} | {b:.{digits}f} | {a / b:.2f}x |", flush=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--calls", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    tune_malloc(256)
    torch.manual_seed(0)
    print("| output layer | threads | logits + loss ms | fused ms | speed-up |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for n, k, v, name in SHAPES:
        x = torch.randn(1, n, k, requires_grad=True)
        w = (0.05 * torch.randn(v, k)).requires_grad_()
        b = torch.zeros(v, requires_grad=True)
        y = torch.randint(1, v, (1, n))
        y[0, -n // 10 :] = 0

        def unfused(x=x, w=w, b=b, y=y):
            sequence_cross_entropy(linear(x, w, b), y, 0, 0.1).backward()

        def fused(x=x, w=w, b=b, y=y):
            linear_cross_entropy(x, w, b, y, 0, 0.1).backward()

        rows(f"{name} ({n} x {k} x {v})", unfused, fused, args.calls, args, digits=1)
    print("\n| dropout p 0.3, forward + backward | threads | F.dropout ms | seqkit dropout ms | speed-up |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for shape in [(95, 512), (95, 21, 512), (1995, 512)]:
        x = torch.randn(*shape, requires_grad=True)

        def torch_drop(x=x):
            F.dropout(x, 0.3, True).sum().backward()

        def seqkit_drop(x=x):
            dropout(x, 0.3).sum().backward()

        rows(str(shape), torch_drop, seqkit_drop, 5 * args.calls, args)
    print("\n| tanh, forward + backward | threads | torch.tanh ms | seqkit tanh ms | speed-up |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for shape in [(13, 96, 256), (130, 16, 512), (130, 512)]:
        x = (3 * torch.randn(*shape)).requires_grad_()
        g = torch.randn(*shape)

        def torch_tanh(x=x, g=g):
            torch.tanh(x).backward(g)

        def seqkit_tanh(x=x, g=g):
            tanh(x).backward(g)

        rows(str(shape), torch_tanh, seqkit_tanh, 5 * args.calls, args)
    print("\n| dW = g^T x (M x N x K) | threads | g^T x ms | (x^T g)^T ms | speed-up |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for m, n, k in [(1995, 7999, 512), (1248, 256, 10), (130, 2048, 1024)]:
        g, x = torch.randn(m, n), torch.randn(m, k)

        def direct(g=g, x=x):
            _mm_t(g.t(), x.t())

        def swapped(g=g, x=x):
            _mm_t(x.t(), g.t()).t()

        rows(f"{m} x {n} x {k}", direct, swapped, args.calls if m * n * k > 1e9 else 10 * args.calls, args)
    print(machine_line(args.threads[-1]))


if __name__ == "__main__":
    main()
