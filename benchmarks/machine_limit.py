"""Machine limit (issue 8 item 1): useful FLOP/s of a seqkit training step against sgemm.

In one run, for each thread count (default 1 and 2):

* sgemm: median GFLOP/s of a 2048^3 float32 product, the larger of ``a @ b`` (MKL) and
  oneDNN's (``_bench_common.onednn_sgemm_gflops``; on the AMD EPYC VM MKL reaches half of
  oneDNN's rate), both printed;
* a training step (forward + backward + gradient-norm clipping + Adam step, train mode with
  the recipe's dropout / SpecAugment) of the recipe-size translation model (Multi30k, weights of
  ``exp/mt_de_en/best.pt``) on real Multi30k training batches of ``max_tokens`` 2000, and of the
  recipe-size AN4 ASR model (``exp/an4_pB/best.pt``) on real AN4 training batches of the
  recipe's ``max_tokens`` 5000 (padded input frames);
* useful GFLOP/s = analytic matmul FLOPs over real (unpadded) positions / measured step time,
  and its % of the sgemm rate.

FLOPs counted (forward; a training step counts 3x forward: the forward product plus the two
backward products, gradient of inputs and of weights; element-wise work, softmax, losses and
the optimizer are not counted):

* encoder BiLSTM: ``2 * 4H (D + H)`` per real input position, direction and layer (ASR: real
  positions = ceil(frames / 4) after stacking);
* decoder LSTMCell: ``2 * 4H (E + H_feed + H)`` per real target position (EOS included);
* attention: key projection ``2 Dm A`` per real memory position, query projection ``2 H A``
  per real target position, per real (target, memory) pair ``2 A`` (score ``v . tanh``) +
  ``2 Dm`` (context); location-aware also ``2 K C`` (conv) + ``2 C A`` (location projection)
  per pair;
* combine ``W_c``: ``2 (Dm + H) H`` per real target position;
* output projection: ``2 H V`` per real target position; CTC projection ``2 D V`` per real
  encoder frame; bridge ``2 Dm 2H`` per sentence.

The run prints the per-component share of the counted work and torch.profiler's top ops for
one step (where the time goes).

    python benchmarks/machine_limit.py                     # threads 1 and 2
    python benchmarks/machine_limit.py --threads 2 --batches 6 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from _bench_common import onednn_sgemm_gflops, sgemm_gflops
from _seqkit_models import asr_flops, load, machine_line, mt_flops, train_batches


def make_step(model, clip: float, lr: float):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()

    def step(batch) -> None:
        out = model(batch)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def padded_positions(kind: str, batch) -> tuple[int, int]:
    if kind == "mt":
        return int(batch["src_lengths"].sum()), batch["src"].numel()
    return int(batch["feat_lengths"].sum()), batch["feat_lengths"].numel() * batch["feats"].size(1)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batches", type=int, default=6, help="real training batches per model")
    p.add_argument("--repeats", type=int, default=3, help="timed passes over the batches")
    p.add_argument("--models", nargs="+", default=["mt", "asr"])
    p.add_argument("--profile-threads", type=int, default=2, help="profile one step at this count (0: no)")
    p.add_argument("--profile-shapes", action="store_true",
                   help="in the profile, one row per op and input shapes (25 rows)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for the models' configs (repeatable), e.g. train.malloc_top_pad_mb=0")
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)

    setups = {}
    for kind in args.models:
        task, model = load(kind, overrides=args.set)
        max_tokens = 2000 if kind == "mt" else task.cfg.train.max_tokens
        batches = train_batches(task, max_tokens, args.batches, seed=args.seed)
        fl = {}
        for b in batches:
            for k, v in (mt_flops if kind == "mt" else asr_flops)(model, b).items():
                fl[k] = fl.get(k, 0.0) + 3 * v
        real = sum(padded_positions(kind, b)[0] for b in batches)
        padded = sum(padded_positions(kind, b)[1] for b in batches)
        step = make_step(model, task.cfg.train.clip_grad_norm or 1e9, task.cfg.train.lr)
        setups[kind] = dict(task=task, model=model, batches=batches, flops=fl, step=step,
                            real=real, padded=padded, max_tokens=max_tokens)
        print(f"{kind}: {sum(p.numel() for p in model.parameters()):,} parameters, {len(batches)} batches "
              f"of max_tokens {max_tokens}: {sum(b[next(iter(b))].size(0) for b in batches)} sequences, "
              f"input positions real {real} / padded {padded} ({100 * real / padded:.1f} %), "
              f"useful work {sum(fl.values()) / 1e9:.1f} GFLOP")
        for k, v in fl.items():
            print(f"    {k:28s} {v / 1e9:8.2f} GFLOP ({100 * v / sum(fl.values()):5.1f} %)")

    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        gemm_before = sgemm_gflops()
        dnn_before = onednn_sgemm_gflops()
        for s in setups.values():
            s["step"](s["batches"][0])  # warm-up
            passes = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                for b in s["batches"]:
                    s["step"](b)
                passes.append(time.perf_counter() - t)
            s.setdefault("times", {})[threads] = passes
        gemm_after = sgemm_gflops()
        dnn_after = onednn_sgemm_gflops()
        gemm = statistics.median([gemm_before, gemm_after])
        print(f"\n{machine_line(threads)}")
        print(f"sgemm 2048^3, a @ b (MKL): {gemm_before:.1f} GFLOP/s before, {gemm_after:.1f} after the model "
              f"runs (mean {gemm:.1f})")
        if dnn_before is not None:
            dnn = statistics.median([dnn_before, dnn_after])
            print(f"sgemm 2048^3, oneDNN: {dnn_before:.1f} before, {dnn_after:.1f} after (mean {dnn:.1f})")
            gemm = max(gemm, dnn)
        print(f"reference sgemm rate: {gemm:.1f} GFLOP/s (the larger)")
        for kind, s in setups.items():
            med = statistics.median(s["times"][threads])
            useful = sum(s["flops"].values()) / med / 1e9
            rows.append((kind, threads, med / len(s["batches"]), useful, gemm, 100 * useful / gemm))
            print(f"{kind}: {len(s['batches'])} steps in {med:.2f} s (median of {args.repeats}: "
                  + ", ".join(f"{x:.2f}" for x in s["times"][threads])
                  + f"), {med / len(s['batches']) * 1e3:.0f} ms/step, useful {useful:.1f} GFLOP/s = "
                  f"{100 * useful / gemm:.1f} % of sgemm")

    print("\n| model | threads | ms/step | useful GFLOP/s | sgemm GFLOP/s | % of sgemm | >= 75 %? |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for kind, threads, ms, useful, gemm, pct in rows:
        name = "translation (Multi30k recipe)" if kind == "mt" else "ASR (AN4 recipe)"
        print(f"| {name} | {threads} | {ms * 1e3:.0f} | {useful:.1f} | {gemm:.1f} | {pct:.1f} | "
              f"{'yes' if pct >= 75 else 'no'} |")

    if args.profile_threads:
        from torch.profiler import ProfilerActivity, profile

        torch.set_num_threads(args.profile_threads)
        for kind, s in setups.items():
            b = s["batches"][len(s["batches"]) // 2]
            s["step"](b)
            with profile(activities=[ProfilerActivity.CPU], record_shapes=args.profile_shapes) as prof:
                s["step"](b)
            print(f"\n{kind}: torch.profiler, one step, {args.profile_threads} threads, top ops by self CPU time")
            table = prof.key_averages(group_by_input_shape=args.profile_shapes).table(
                sort_by="self_cpu_time_total", row_limit=25 if args.profile_shapes else 15,
                max_name_column_width=40, max_shapes_column_width=60,
            )  # fmt: skip
            print(table)
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
