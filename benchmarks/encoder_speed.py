"""Encoder speed: seqkit's RNNEncoder next to a bare ``torch.nn.LSTM`` on the same batch.

Times forward + backward of a stacked bidirectional LSTM (default: 2 layers, input 256,
hidden 512, batch 32) on one padded, length-bucketed batch (lengths drawn uniformly within
+-10 % of a mean of 50), in the same process, alternating the two so that load from other
work on a shared machine hits both alike.  Prints the median (and min) time of each, the
ratio bare / seqkit (1.0 = no overhead), and the achieved GFLOP/s against a measured sgemm
GFLOP/s on the same threads.

* "bare" is ``nn.LSTM`` called on the padded tensor, no packing and no masking: the fastest
  possible call, but its backward direction reads the padding first, so its outputs for
  the shorter sequences are wrong.
* "seqkit" is :class:`seqkit.nn.rnn.RNNEncoder` with the same weights, whose outputs are
  exact (padding never reaches a real position, padded outputs are zero, final states at
  each sequence's last real step).
* with ``--with-packed``, also ``RNNEncoder(impl="packed")`` (``pack_padded_sequence``).
* "bare nn.LSTM (copy)" is a second, identical bare LSTM timed the same way: its ratio to
  the first shows how far two equal models drift apart in this run (the noise floor of
  the ratio on a shared machine); ``--no-control`` leaves it out.

FLOPs counted: the matrix products of the LSTM on all B x T padded positions (the work
bare does), forward ``2 * 4H * (D_l + H)`` per position, layer and direction, and twice
that for the backward (gradients of inputs and of weights); element-wise work is ignored.

Usage::

    python benchmarks/encoder_speed.py                  # 2 threads, CPU
    python benchmarks/encoder_speed.py --threads 2 --repeats 15 --with-packed
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from _bench_common import cpu_name, onednn_sgemm_gflops, sgemm_gflops
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from seqkit.nn.rnn import RNNEncoder  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def lstm_flops(batch: int, steps: int, d_in: int, hidden: int, layers: int, dirs: int) -> float:
    """Matrix-product FLOPs of forward + backward over batch x steps padded positions."""
    per_position = 0
    size = d_in
    for _ in range(layers):
        per_position += dirs * 2 * 4 * hidden * (size + hidden)
        size = hidden * dirs
    return 3.0 * per_position * batch * steps


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--input-size", type=int, default=256)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--mean-length", type=int, default=50)
    p.add_argument("--spread", type=float, default=0.1, help="lengths within +-spread*mean")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--gemm-size", type=int, default=2048)
    p.add_argument("--impl", default="auto", choices=["auto", "padded", "packed"])
    p.add_argument("--with-packed", action="store_true", help="also time impl='packed'")
    p.add_argument("--no-control", action="store_true", help="leave out the bare copy")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    lo = round(args.mean_length * (1 - args.spread))
    hi = round(args.mean_length * (1 + args.spread))
    lengths = torch.randint(lo, hi + 1, (args.batch,))
    steps = int(lengths.max())
    x = torch.randn(args.batch, steps, args.input_size, device=device)
    dirs = 2

    bare = nn.LSTM(
        args.input_size, args.hidden, args.layers, batch_first=True, bidirectional=True
    ).to(device)
    runs: dict = {"bare nn.LSTM": None}
    if not args.no_control:
        control = nn.LSTM(
            args.input_size, args.hidden, args.layers, batch_first=True, bidirectional=True
        ).to(device)
        control.load_state_dict(bare.state_dict())
        runs["bare nn.LSTM (copy)"] = control
    encoders = {f"seqkit RNNEncoder(impl={args.impl!r})": args.impl}
    if args.with_packed:
        encoders["seqkit RNNEncoder(impl='packed')"] = "packed"
    for name, impl in encoders.items():
        enc = RNNEncoder(args.input_size, args.hidden, args.layers, True, "lstm", 0.0, impl=impl)
        enc.rnn.load_state_dict(bare.state_dict())
        runs[name] = enc.to(device).train()
    grad_out = torch.randn(args.batch, steps, args.hidden * dirs, device=device)

    def step(model) -> None:
        xr = x.detach().requires_grad_()
        if model is None or isinstance(model, nn.LSTM):
            out = (bare if model is None else model)(xr)[0]
        else:
            out = model(xr, lengths)[0]
        out.backward(grad_out)

    def timed(model) -> float:
        for prm in bare.parameters() if model is None else model.parameters():
            prm.grad = None
        sync(device)
        t = time.perf_counter()
        step(model)
        sync(device)
        return time.perf_counter() - t

    for model in runs.values():
        for _ in range(args.warmup):
            timed(model)
    times: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for r in range(args.repeats):
        for name in names if r % 2 == 0 else names[::-1]:  # alternate the order
            times[name].append(timed(runs[name]))
    gemm = sgemm_gflops(args.gemm_size, 10, str(device))
    dnn = onednn_sgemm_gflops(args.gemm_size) if device.type == "cpu" else None
    if dnn is not None:  # MKL's a @ b can run at half of oneDNN's rate (AMD): take the larger
        print(f"sgemm {args.gemm_size}^3: a @ b (MKL) {gemm:.1f} GFLOP/s, oneDNN {dnn:.1f} GFLOP/s")
        gemm = max(gemm, dnn)
    flops = lstm_flops(args.batch, steps, args.input_size, args.hidden, args.layers, dirs)

    print(f"torch {torch.__version__}, {args.threads} threads, device {device}: {cpu_name()}")
    if hasattr(os, "getloadavg"):
        print("load average (1/5/15 min): " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    print(
        f"{args.layers}-layer BiLSTM, input {args.input_size}, hidden {args.hidden}, batch "
        f"{args.batch}, lengths {int(lengths.min())}..{steps} (mean {lengths.float().mean():.1f}),"
        f" forward+backward, {args.warmup} warm-up + {args.repeats} timed runs each"
    )
    print(f"sgemm {args.gemm_size}^3: {gemm:.1f} GFLOP/s; LSTM work {flops / 1e9:.1f} GFLOP/batch")
    bare_median = statistics.median(times["bare nn.LSTM"])
    bare_min = min(times["bare nn.LSTM"])
    for name in names:
        med, fastest = statistics.median(times[name]), min(times[name])
        rate = flops / med / 1e9
        line = (
            f"{name:38s} median {med * 1e3:8.1f} ms  min {fastest * 1e3:8.1f} ms  "
            f"{rate:7.1f} GFLOP/s ({100 * rate / gemm:5.1f}% of sgemm)"
        )
        if runs[name] is not None:
            line += (
                f"  ratio bare/this {bare_median / med:.3f} (of mins {bare_min / fastest:.3f})"
            )
        print(line)


if __name__ == "__main__":
    main()
