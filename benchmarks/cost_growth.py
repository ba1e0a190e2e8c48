"""Cost growth with input length (issue 8 item 6): AN4 ASR training step time and peak memory.

Inputs:

* AN4 training utterances (speed 1.0, the recipe's 80 log-mel features with global CMVN, 10 ms
  frames) split into ``--buckets`` duration buckets (quantiles of the duration);
* synthetic feature sequences (standard-normal features, random character targets at AN4's mean
  characters-per-frame rate) 1x, 2x, 3x and 4x as long as the longest AN4 training utterance.

Each input set is cut into batches of at most ``max_tokens`` padded frames (the recipe's 5000;
an utterance longer than that is a batch of its own), and for each model configuration

* encoder ``blstm`` (the recipe: 4-stacked frames, 3 BiLSTM layers of 256 per direction) or
  ``pyramidal`` (the recipe's alternative: ``front: none``, a BiLSTM on the 10 ms frames, then 2
  pyramid BiLSTM layers that halve the time axis, 4x in all);
* ``ctc`` (``ctc_weight: 1``, no decoder) or ``joint`` (the recipe's ``ctc_weight: 0.3``: CTC +
  location-aware attention decoder, a 4x-downsampled memory);

a **fresh subprocess** builds the model (random init, the recipe's sizes, train mode with dropout
and SpecAugment) and runs one warm-up and ``--steps`` timed training steps (forward + backward +
clipping + Adam) on the bucket's batches in turn.  It reports the median step time divided by the
batch's audio seconds (compute seconds per audio second; times the AN4 training audio it is the
epoch time at speed 1.0 only, 1/3 of the recipe's speed-perturbed epoch) and the peak resident
memory (``VmHWM`` of ``/proc/self/status``) above the resident memory after building the model
and batches (``VmRSS``), so every configuration's peak is measured from the same start.

    python benchmarks/cost_growth.py                  # 2 threads, 4 buckets + 1x..4x synthetic
    python benchmarks/cost_growth.py --threads 2 --steps 3 --buckets 4
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def vm(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024  # MiB
    return float("nan")


def worker(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    sys.path.insert(0, str(HERE.parent))
    from seqkit.models.asr import ASRModel
    from seqkit.nn.frontend import SpecAugment

    data = torch.load(spec["batches"])
    pyr = spec["encoder"] == "pyramidal"
    model = ASRModel(
        80, data["vocab"], front="none" if pyr else "stack", stack=4, encoder=spec["encoder"], enc_hidden=256,
        enc_layers=3, reductions=2 if pyr else None, dropout=0.2, ctc_weight=1.0 if spec["decoding"] == "ctc" else 0.3,
        emb_dim=128, dec_hidden=256, attention="location", label_smoothing=0.1,
        specaugment=SpecAugment(2, 10, 2, 20), pad_id=0,
    ).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = data["batches"]
    base = vm("VmRSS")

    def step(b) -> float:
        t = time.perf_counter()
        out = model(b)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t

    step(batches[0])
    per_audio = []
    for i in range(spec["steps"]):
        b = batches[i % len(batches)]
        per_audio.append(step(b) / b["audio_seconds"])
    print(json.dumps({"sec_per_audio_sec": statistics.median(per_audio), "all": per_audio,
                      "rss_base_mib": base, "hwm_mib": vm("VmHWM")}))


def prepare(args) -> tuple[list[dict], float, str]:
    """Input sets -> saved batch files; returns descriptions, AN4 train audio seconds, machine line."""
    from _seqkit_models import load, machine_line

    task, _ = load("asr")
    utts = task._manifest(task.cfg.data.train, "data.train")
    items = task._items(utts, 1.0, "train", None, task.cfg.data.train)
    frames = [it["feats"].size(0) for it in items]
    total_audio = sum(u.duration for u in utts)
    chars_per_frame = sum(len(it["targets"]) for it in items) / sum(frames)
    vocab = len(task.vocab)
    order = sorted(range(len(items)), key=frames.__getitem__)
    sets = []
    n = len(order)
    for k in range(args.buckets):
        idx = order[k * n // args.buckets : (k + 1) * n // args.buckets]
        sets.append((f"AN4 bucket {k + 1}/{args.buckets}", [items[i] for i in idx]))
    longest = max(frames)
    g = torch.Generator().manual_seed(0)
    for f in (1, 2, 3, 4):
        t = longest * f
        count = max(1, args.max_tokens // t) * 2  # two batches' worth
        syn = [{"feats": torch.randn(t, 80, generator=g),
                "targets": torch.randint(4, vocab, (max(1, round(t * chars_per_frame)),), generator=g).tolist()}
               for _ in range(count)]
        sets.append((f"synthetic {f}x longest ({t} frames)", syn))
    out = []
    tmp = Path(tempfile.mkdtemp(prefix="cost_growth_"))
    for j, (name, its) in enumerate(sets):
        rng = torch.Generator().manual_seed(j)
        perm = torch.randperm(len(its), generator=rng).tolist()
        its = sorted([its[i] for i in perm], key=lambda it: it["feats"].size(0))
        batches, cur = [], []
        for it in its:  # greedy cut under max_tokens padded frames
            if cur and max(x["feats"].size(0) for x in cur + [it]) * (len(cur) + 1) > args.max_tokens:
                batches.append(cur)
                cur = []
            cur.append(it)
        if cur:
            batches.append(cur)
        # a few batches spread over the bucket
        pick = [batches[int(i * (len(batches) - 1) / max(1, args.steps - 1))] for i in range(min(args.steps, len(batches)))]
        coll = []
        for b in pick:
            c = task.collate(b)
            c["audio_seconds"] = float(c["feat_lengths"].sum()) / 100.0  # 10 ms frames
            coll.append(c)
        path = tmp / f"set{j}.pt"
        torch.save({"batches": coll, "vocab": vocab}, path)
        lens = [x["feats"].size(0) for x in its]
        out.append({"name": name, "path": str(path), "utts": len(its),
                    "dur": f"{min(lens) / 100:.2f}-{max(lens) / 100:.2f} s",
                    "batch": statistics.median([len(b) for b in pick])})
    return out, total_audio, machine_line(args.threads)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--buckets", type=int, default=4)
    p.add_argument("--max-tokens", type=int, default=5000)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args.worker)
        return
    sys.path.insert(0, str(HERE))
    sets, total_audio, machine = prepare(args)
    print(machine)
    print(f"AN4 train (speed 1.0): {total_audio / 60:.1f} min of audio; max_tokens {args.max_tokens} padded frames")
    configs = [(e, d) for e in ("blstm", "pyramidal") for d in ("ctc", "joint")]
    rows = []
    for s in sets:
        for enc, dec in configs:
            spec = {"threads": args.threads, "steps": args.steps, "encoder": enc, "decoding": dec, "batches": s["path"]}
            spec_path = Path(s["path"]).with_suffix(f".{enc}.{dec}.json")
            spec_path.write_text(json.dumps(spec))
            proc = subprocess.run([sys.executable, __file__, "--worker", str(spec_path)], capture_output=True,
                                  text=True, env=dict(os.environ, OMP_NUM_THREADS=str(args.threads)))
            if proc.returncode:
                print(proc.stderr[-2000:])
                raise SystemExit(f"worker failed: {s['name']} {enc} {dec}")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append((s, enc, dec, r))
            print(f"{s['name']:34s} {enc:9s} {dec:5s} {r['sec_per_audio_sec']:.4f} s/audio-s "
                  f"(steps {', '.join(f'{x:.4f}' for x in r['all'])}), peak {r['hwm_mib']:.0f} MiB "
                  f"(+{r['hwm_mib'] - r['rss_base_mib']:.0f} over {r['rss_base_mib']:.0f}), "
                  f"load {os.getloadavg()[0]:.2f}", flush=True)
    print(f"\n{machine}")
    print("\n| input | utterances | durations | batch (median utts) | encoder | decoding | "
          "s per audio-s | epoch-equivalent (AN4 train, 1.0x) | peak RSS MiB | step peak above start MiB |")
    print("| --- | ---: | --- | ---: | --- | --- | ---: | ---: | ---: | ---: |")
    for s, enc, dec, r in rows:
        print(f"| {s['name']} | {s['utts']} | {s['dur']} | {s['batch']:g} | {enc} | {dec} | "
              f"{r['sec_per_audio_sec']:.4f} | {r['sec_per_audio_sec'] * total_audio:.0f} s | {r['hwm_mib']:.0f} | "
              f"{r['hwm_mib'] - r['rss_base_mib']:.0f} |")


if __name__ == "__main__":
    main()
