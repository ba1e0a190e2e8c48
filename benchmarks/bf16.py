"""bf16 autocast on CPU (issue 8 item 7): throughput gain and quality difference.

``torch.autocast("cpu", dtype=torch.bfloat16)`` against float32 for the recipe-size translation
model (weights of ``exp/mt_de_en/best.pt``, Multi30k De -> En) and ASR model
(``exp/an4_pB/best.pt``, AN4), in one process, the two precisions alternating (order swapped
every repeat) so that load from other work hits both alike; medians reported.

* training step: forward + backward + gradient clipping + Adam on real training batches
  (translation: max_tokens 2000; ASR: the recipe's 5000), each precision on its own copy of
  the trained weights with its own optimizer; weights stay float32 (autocast runs matmuls and
  LSTMs in bf16), no loss scaling (bf16 has float32's range);
* inference: greedy decoding of the whole dev set (translation: greedy, ``eval_beam_size`` 1;
  ASR: CTC greedy, attention greedy and the recipe's joint CTC/attention beam search, beam 10);
* quality: the dev loss of the trained checkpoint (translation: token NLL without label
  smoothing -> perplexity; ASR: the training loss, 0.3 CTC + 0.7 label-smoothed attention) and
  BLEU / chrF (sacrebleu) and WER / CER of the greedy outputs; also how many dev outputs are
  identical in both precisions.

    python benchmarks/bf16.py                      # 2 threads
    python benchmarks/bf16.py --threads 1 --repeats 3 --train-batches 6
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import statistics
import time
from contextlib import nullcontext

import torch
from _seqkit_models import load, machine_line, train_batches


def ctx(mode: str):
    return torch.autocast("cpu", dtype=torch.bfloat16) if mode == "bf16" else nullcontext()


MODES = ("fp32", "bf16")


def alternate(repeats: int, fn) -> dict[str, list[float]]:
    """Run ``fn(mode)`` alternately; returns the wall times per mode."""
    times: dict[str, list[float]] = {m: [] for m in MODES}
    for r in range(repeats):
        for mode in MODES if r % 2 == 0 else MODES[::-1]:
            t = time.perf_counter()
            fn(mode)
            times[mode].append(time.perf_counter() - t)
    return times


def alternate_quality(repeats: int, measure) -> tuple[dict, dict, dict, int, dict]:
    """``measure(mode) -> {"seconds", "hyps", ...}`` run alternately ``repeats`` times per mode.

    Returns every run's result per mode, the first run's result per mode (for quality), the
    median decoding seconds per mode, how many hypotheses bf16 and fp32 share, and the
    whole-call wall times."""
    outs: dict[str, list[dict]] = {m: [] for m in MODES}
    times = alternate(repeats, lambda mode: outs[mode].append(measure(mode)))
    q = {m: outs[m][0] for m in MODES}
    dec = {m: statistics.median([o["seconds"] for o in outs[m]]) for m in MODES}
    same = sum(a == b for a, b in zip(q["fp32"]["hyps"], q["bf16"]["hyps"]))
    return outs, q, dec, same, times


def train_throughput(kind: str, task, model, n_batches: int, repeats: int) -> dict:
    max_tokens = 2000 if kind == "mt" else task.cfg.train.max_tokens
    batches = train_batches(task, max_tokens, n_batches, seed=0)
    clip = task.cfg.train.clip_grad_norm or 1e9
    copies = {}
    for mode in MODES:
        m = copy.deepcopy(model).train()
        copies[mode] = (m, torch.optim.Adam(m.parameters(), lr=task.cfg.train.lr))
    losses: dict[str, list[float]] = {m: [] for m in MODES}

    def one_pass(mode: str) -> None:
        m, opt = copies[mode]
        for b in batches:
            with ctx(mode):
                out = m(b)
            out["loss"].backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses[mode].append(float(out["loss"].detach()))

    for mode in MODES:  # warm-up: one step each
        m, opt = copies[mode]
        with ctx(mode):
            m(batches[0])["loss"].backward()
        opt.zero_grad(set_to_none=True)
    times = alternate(repeats, one_pass)
    return {"times": times, "steps": len(batches), "losses": losses}


def mt_quality(task, model, mode: str) -> dict:
    from seqkit.metrics import bleu, chrf

    rows, items, _ = task._dev(task.cfg.data.dev, "data.dev")
    with ctx(mode):
        t = time.perf_counter()
        best = [r[0] for r in task.translate(model, items, beam=1)]
        sec = time.perf_counter() - t
        nll, n = task.dev_loss(model, items)
    hyps = [b["text"] for b in best]
    refs = [t for _, t, _ in rows]
    return {"hyps": hyps, "seconds": sec, "bleu": bleu(hyps, [refs])["score"], "chrf": chrf(hyps, [refs])["score"],
            "ppl": math.exp(nll / n), "nll": nll / n, "n": len(rows)}


def asr_quality(task, model, mode: str, method: str) -> dict:
    from seqkit.metrics import cer, wer

    utts, items = task._dev(task.cfg.data.dev, "data.dev")
    beam = task.cfg.decode.beam_size
    if method == "attention":
        task.cfg.decode.beam_size = 1  # greedy
    try:
        with ctx(mode):
            t = time.perf_counter()
            hyps = task.decode(model, items, method)
            sec = time.perf_counter() - t
    finally:
        task.cfg.decode.beam_size = beam
    refs = [task._norm(u.text) for u in utts]
    return {"hyps": hyps, "seconds": sec, "wer": wer(refs, hyps)["score"], "cer": cer(refs, hyps)["score"],
            "n": len(utts), "audio": sum(u.duration for u in utts)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="alternating repeats (odd: a clean median)")
    p.add_argument("--train-batches", type=int, default=6)
    p.add_argument("--models", nargs="+", default=["mt", "asr"])
    p.add_argument("--asr-methods", nargs="+", default=["ctc_greedy", "attention", "joint"])
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(machine_line(args.threads))
    train_rows, infer_rows, qual_rows = [], [], []
    for kind in args.models:
        task, model = load(kind)
        name = "translation" if kind == "mt" else "ASR"
        # ---- training step
        res = train_throughput(kind, task, model, args.train_batches, args.repeats)
        med = {m: statistics.median(res["times"][m]) / res["steps"] for m in MODES}
        print(f"{name} training: {res['steps']} steps/pass, pass times "
              + "; ".join(f"{m}: " + ", ".join(f"{x:.2f}" for x in res["times"][m]) for m in MODES)
              + f" s; first-pass losses fp32 {res['losses']['fp32'][:3]} bf16 {res['losses']['bf16'][:3]}")
        train_rows.append((name, med["fp32"], med["bf16"]))
        # ---- inference + quality (eval mode)
        model.eval()
        if kind == "mt":
            outs, q, dec, same, times = alternate_quality(
                args.repeats, lambda mode, task=task, model=model: mt_quality(task, model, mode))
            infer_rows.append((f"{name} greedy, {q['fp32']['n']} dev sentences", dec["fp32"], dec["bf16"],
                               "sent/s", q["fp32"]["n"]))
            qual_rows.append((f"{name} dev (greedy)",
                              f"ppl {q['fp32']['ppl']:.3f}, BLEU {q['fp32']['bleu']:.2f}, chrF {q['fp32']['chrf']:.2f}",
                              f"ppl {q['bf16']['ppl']:.3f}, BLEU {q['bf16']['bleu']:.2f}, chrF {q['bf16']['chrf']:.2f}",
                              f"{same}/{len(q['fp32']['hyps'])}"))
            print(f"{name} inference: decode seconds " + "; ".join(
                f"{m}: " + ", ".join(f"{o['seconds']:.2f}" for o in outs[m]) for m in MODES)
                + f"; whole-call times {times}")
        else:
            utts, items = task._dev(task.cfg.data.dev, "data.dev")
            losses = {}
            for mode in MODES:
                with ctx(mode):
                    losses[mode] = task.dev_loss(model, items)
            for method in args.asr_methods:
                outs, q, dec, same, _ = alternate_quality(
                    args.repeats,
                    lambda mode, method=method, task=task, model=model: asr_quality(task, model, mode, method))
                label = {"ctc_greedy": "CTC greedy", "attention": "attention greedy",
                         "joint": f"joint CTC/attention beam {task.cfg.decode.beam_size}"}[method]
                infer_rows.append((f"{name} {label}, {q['fp32']['n']} dev utterances", dec["fp32"], dec["bf16"],
                                   "utt/s", q["fp32"]["n"]))
                qual_rows.append((f"{name} dev, {label}",
                                  f"loss {losses['fp32']:.4f}, WER {100 * q['fp32']['wer']:.2f}, CER {100 * q['fp32']['cer']:.2f}",
                                  f"loss {losses['bf16']:.4f}, WER {100 * q['bf16']['wer']:.2f}, CER {100 * q['bf16']['cer']:.2f}",
                                  f"{same}/{len(q['fp32']['hyps'])}"))
                print(f"{name} {label}: decode seconds " + "; ".join(
                    f"{m}: " + ", ".join(f"{o['seconds']:.2f}" for o in outs[m]) for m in MODES))

    print(f"\n{machine_line(args.threads)}")
    print("\n| training step | fp32 ms/step | bf16 ms/step | bf16 speed-up |")
    print("| --- | ---: | ---: | ---: |")
    for name, a, b in train_rows:
        print(f"| {name} | {a * 1e3:.0f} | {b * 1e3:.0f} | {a / b:.2f}x |")
    print("\n| inference | fp32 s | bf16 s | fp32 rate | bf16 rate | bf16 speed-up |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, a, b, unit, n in infer_rows:
        print(f"| {name} | {a:.2f} | {b:.2f} | {n / a:.1f} {unit} | {n / b:.1f} {unit} | {a / b:.2f}x |")
    print("\n| quality | fp32 | bf16 | identical outputs |")
    print("| --- | --- | --- | ---: |")
    for row in qual_rows:
        print("| " + " | ".join(row) + " |")
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
