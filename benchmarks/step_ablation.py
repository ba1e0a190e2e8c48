"""Training-step ablation of the CPU speed changes of issue 8 item 1, in one process.

Times the training step of ``machine_limit.py`` (forward + backward + clipping + Adam, the
recipe models and real batches of ``exp/mt_de_en/best.pt`` / ``exp/an4_pB/best.pt``) with all
of these changes, with each one switched off alone, and with none:

* ``fused``: the translation decoder's loss through :func:`seqkit.nn.losses.linear_cross_entropy`
  (off: ``sequence_cross_entropy`` of the (B, L, V) logits, as before);
* ``fastdrop``: :func:`seqkit.nn.dropout.dropout` with its ``torch.rand`` mask (off:
  ``F.dropout``, whose CPU mask comes from ``bernoulli_``);
* ``tanh``: :func:`seqkit.nn.activation.tanh` through numpy (off: ``torch.tanh``);
* ``wgrad``: :func:`seqkit.nn.dense.weight_grad` choosing the operand order of ``dW = g^T x`` in
  :func:`seqkit.nn.dense.linear`'s backward
  (off: always ``g^T x``, as before);

switched by replacing the functions in their modules (or by the module's switch), the variants
alternating pass by pass (so drift of the shared machine hits all alike), median of
``--repeats`` passes over ``--batches`` batches.  The ASR model has no fused loss (31 output
classes), so its ``no fused`` column differs from ``all`` by noise only.

    python benchmarks/step_ablation.py                       # mt and asr, threads 1 and 2
    python benchmarks/step_ablation.py --models mt --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from _seqkit_models import load, machine_line, train_batches
from machine_limit import make_step

import seqkit.nn.decoder as decoder_mod
import seqkit.nn.dense as dense_mod
import seqkit.nn.dropout as dropout_mod
import seqkit.nn.rnn as rnn_mod
from seqkit.nn.activation import set_fast_tanh
from seqkit.nn.dense import linear
from seqkit.nn.losses import sequence_cross_entropy

_FUSED = decoder_mod.linear_cross_entropy
_FAST = dropout_mod.dropout
_WGRAD = dense_mod.weight_grad


def _unfused(x, weight, bias, targets, pad_id=0, label_smoothing=0.0):
    return sequence_cross_entropy(linear(x, weight, bias), targets, pad_id, label_smoothing)


def _torch_dropout(x, p, training=True):
    return F.dropout(x, p, training)


def _direct_weight_grad(grad_t, x_t):
    return dense_mod._mm_t(grad_t, x_t)


CHANGES = ("fused", "fastdrop", "tanh", "wgrad")


def switch(fused: bool, fastdrop: bool, tanh: bool, wgrad: bool) -> None:
    decoder_mod.linear_cross_entropy = _FUSED if fused else _unfused
    drop = _FAST if fastdrop else _torch_dropout
    dropout_mod.dropout = drop  # what seqkit.nn.dropout.Dropout calls
    rnn_mod.dropout = drop  # RNNEncoder's dropout between layers
    set_fast_tanh(tanh)
    dense_mod.weight_grad = _WGRAD if wgrad else _direct_weight_grad


VARIANTS = {"all": (True,) * len(CHANGES)}
VARIANTS.update({f"no {c}": tuple(d != c for d in CHANGES) for c in CHANGES})
VARIANTS["none"] = (False,) * len(CHANGES)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["mt", "asr"])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batches", type=int, default=6)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    print("| model | threads | " + " | ".join(f"{v} ms/step" for v in VARIANTS) + " | all vs none |")
    print("| --- | ---: | " + " | ".join("---:" for _ in VARIANTS) + " | ---: |")
    try:
        for kind in args.models:
            task, model = load(kind)
            max_tokens = 2000 if kind == "mt" else task.cfg.train.max_tokens
            batches = train_batches(task, max_tokens, args.batches, seed=args.seed)
            step = make_step(model, task.cfg.train.clip_grad_norm or 1e9, task.cfg.train.lr)
            for threads in args.threads:
                torch.set_num_threads(threads)
                times: dict[str, list[float]] = {v: [] for v in VARIANTS}
                for _ in range(args.repeats):
                    for name, flags in VARIANTS.items():
                        switch(*flags)
                        step(batches[0])  # warm-up of this variant
                        t = time.perf_counter()
                        for b in batches:
                            step(b)
                        times[name].append((time.perf_counter() - t) / len(batches) * 1e3)
                med = {v: statistics.median(ts) for v, ts in times.items()}
                print(f"| {kind} | {threads} | " + " | ".join(
                    f"{med[v]:.0f} ({', '.join(f'{x:.0f}' for x in times[v])})" for v in VARIANTS
                ) + f" | {med['none'] / med['all']:.2f}x |", flush=True)
    finally:
        switch(*VARIANTS["all"])
    print(machine_line(args.threads[-1]))


if __name__ == "__main__":
    main()
