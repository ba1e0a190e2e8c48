"""Soak: thousands of optimizer steps of a tiny model through the real trainer; is memory flat?

Trains the slot-filling task (``seqkit.tasks.slot_filling``: embeddings + char CNN + BiLSTM +
CRF + intent head, the tiny sizes of the test suite) on generated ATIS-style data
(``tests/conftest.py``'s ``write_tiny_slots``, 400 training sentences, 33 batches an epoch)
with :class:`seqkit.train.trainer.Trainer` exactly as ``seqkit train`` builds it, so every
path of a long run is exercised many times: a new DataLoader each epoch (with ``--workers N``
a new worker process each epoch too), dev evaluation every ``--eval-every`` steps (with
``best.pt``), ``last.pt`` every ``--checkpoint-every`` steps (atomic write), the last 3
evaluations' weights kept as ``ckpt_step*.pt`` (written and deleted), ``metrics.jsonl``
and TensorBoard logs.

It samples the resident set size of the process (``VmRSS`` in ``/proc/self/status``; with
workers also their summed RSS) and the number of objects the garbage collector tracks, at
the first training step after ``--warmup`` steps (allocators and caches warmed up: the
start value), every ``--sample-every`` steps, and after the run; prints the table, then one
summary line: start, end and max RSS, growth end - start, and the slope of a least-squares
line through the samples of the second half of the run (MiB per 1000 steps).

Pass/fail (exit status 1 on fail): the slope over the second half must stay under
``--max-slope`` MiB per 1000 steps (default 1.0, i.e. about 1 KiB a step).  Why: a leak that
matters grows with the step count without bound, and a real recipe runs 10^4-10^5 steps, so
1 KiB a step would be ~100 MiB by the end of a long run; the one-off costs (the first dev
evaluation imports seqeval -> sklearn/scipy/pandas, ~130 MiB; glibc arenas, torch's caches)
happen in the first half and do not tilt the line, and the measured noise of the slope on
a flat run is ~0.05 MiB/1000 steps (benchmarks/README.md).  ``--inject-leak KIB`` keeps a
tensor of KIB KiB alive per step to show the check works: 2 KiB a step measured
+2.8 MiB/1000 steps and failed.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/soak.py                    # 5000 steps, in-process data
    OMP_NUM_THREADS=1 python benchmarks/soak.py --workers 1        # with a DataLoader worker
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from seqkit.config import load_config  # noqa: E402
from seqkit.tasks import get_task  # noqa: E402
from seqkit.tasks.base import _checkpoint_extra  # noqa: E402
from seqkit.train.trainer import Trainer  # noqa: E402
from tests.conftest import tiny_slot_config, write_tiny_slots  # noqa: E402


def rss_mib(pid: int | str = "self") -> float:
    """Resident set size of a process in MiB, from /proc/PID/status (VmRSS, in kB)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0.0


def workers_rss_mib() -> float:
    return sum(rss_mib(p.pid) for p in multiprocessing.active_children())


def slope_per_1000(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys against xs, times 1000."""
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    return 1000 * sxy / sxx if sxx else 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=5000, help="optimizer steps (default 5000)")
    ap.add_argument("--workers", type=int, default=0, help="train.num_workers (default 0)")
    ap.add_argument("--warmup", type=int, default=50, help="steps before the start sample")
    ap.add_argument("--sample-every", type=int, default=100)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--checkpoint-every", type=int, default=100)
    ap.add_argument("--max-slope", type=float, default=1.0,
                    help="MiB per 1000 steps of RSS growth over the second half that fails the soak "
                         "(default 1.0)")
    ap.add_argument("--threads", type=int, default=1, help="train.num_threads (default 1)")
    ap.add_argument("--inject-leak", type=float, default=0.0, metavar="KIB",
                    help="keep a tensor of KIB KiB alive per step, to check that the soak fails on a leak")
    ap.add_argument("--out", help="work folder (default: a temporary one, removed)")
    args = ap.parse_args()

    tmp = None
    if args.out:
        work = Path(args.out)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="seqkit_soak_")
        work = Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    cfg_path = tiny_slot_config(
        work,
        epochs=100000,  # max_steps ends the run
        max_steps=args.steps,
        eval_every=args.eval_every,
        checkpoint_every=args.checkpoint_every,
        keep_checkpoints=3,
        log_every=20,
        tensorboard=True,
        num_threads=args.threads,
        num_workers=args.workers,
        device="cpu",
    )
    write_tiny_slots(work / "data", n_train=400, n_dev=40)  # more than the tests' 60 / 20
    cfg = load_config(cfg_path)

    # what seqkit.tasks.base.train does, with a log function and a sampling hook
    task = get_task(cfg.task)(cfg)
    task.build_state()
    torch.manual_seed(cfg.train.seed)
    examples, lengths, collate = task.training_data()
    model = task.build_model()
    lines: list[str] = []
    trainer = Trainer(model, cfg.train, examples, lengths, collate,
                      evaluate=lambda m: task.evaluate(m), checkpoint_extra=_checkpoint_extra(task),
                      log=lines.append, batch_sampler=task.train_batch_sampler())

    samples: list[tuple[int, float, float, int]] = []  # step, RSS, workers' RSS, gc objects

    def sample(step: int) -> None:
        samples.append((step, rss_mib(), workers_rss_mib() if args.workers else 0.0,
                        len(gc.get_objects())))

    leaked: list[torch.Tensor] = []

    def before_forward(module, inputs):
        step = trainer.state["step"]  # steps completed before this training batch
        if module.training and args.inject_leak:
            leaked.append(torch.ones(int(args.inject_leak * 256)))  # float32: 256 per KiB
        if not module.training or step < args.warmup:
            return
        if not samples or (step % args.sample_every == 0 and samples[-1][0] != step):
            sample(step)

    model.register_forward_pre_hook(before_forward)
    print(f"soak: {args.steps} steps of slot filling ({sum(p.numel() for p in model.parameters()):,} "
          f"parameters, {len(examples)} sentences, {len(trainer.sampler)} batches an epoch), "
          f"num_workers={args.workers}, {args.threads} thread(s), torch {torch.__version__}",
          flush=True)
    t0 = time.time()
    summary = trainer.fit()
    seconds = time.time() - t0
    in_training = list(samples)
    sample(trainer.state["step"])  # after fit: includes the learning-curve plot (matplotlib)
    after_fit = samples[-1]
    if tmp is not None:
        tmp.cleanup()

    print(f"\n{'step':>6} {'RSS MiB':>8} " + (f"{'workers MiB':>11} " if args.workers else "") + "gc objects")
    for i, (step, rss, wrss, objs) in enumerate(samples):
        print(f"{step:>6} {rss:>8.1f} " + (f"{wrss:>11.1f} " if args.workers else "") + f"{objs:>10}"
              + ("  (after fit: learning-curve plot imported matplotlib)" if i == len(samples) - 1 else ""))
    samples = in_training
    steps = [s[0] for s in samples]
    rss = [s[1] for s in samples]
    half = steps[-1] / 2
    second = [(s, r) for s, r in zip(steps, rss) if s >= half]
    slope = slope_per_1000([s for s, _ in second], [r for _, r in second])
    fitted = slope * (second[-1][0] - second[0][0]) / 1000
    evals = sum(1 for ln in lines if ln.startswith("dev @"))
    # the first dev evaluation imports the metric's libraries (seqeval -> sklearn, scipy, pandas:
    # ~1100 modules, ~150 MiB, once); growth after it is what a leak would show
    settled = next((i for i, st in enumerate(steps) if st > args.eval_every), 0)
    ok = slope <= args.max_slope
    print(f"\nsummary: {summary['step']} steps ({summary['epoch']} epochs, {evals} dev evaluations, "
          f"stop: {summary['stop_reason']}) in {seconds:.0f} s ({1000 * seconds / summary['step']:.1f} ms/step); "
          f"RSS start {rss[0]:.1f} MiB (step {steps[0]}), end {rss[-1]:.1f} MiB (step {steps[-1]}), "
          f"max {max(rss):.1f} MiB, after fit {after_fit[1]:.1f} MiB, "
          f"growth {rss[-1] - rss[0]:+.1f} MiB, since step {steps[settled]} (after the first dev "
          f"evaluation) {rss[-1] - rss[settled]:+.1f} MiB; second half ({len(second)} samples from step "
          f"{second[0][0]}): slope {slope:+.2f} MiB/1000 steps (limit {args.max_slope:g}), fitted "
          f"growth {fitted:+.2f} MiB; gc objects {samples[0][3]} -> {samples[-1][3]}"
          + (f"; workers' RSS {samples[0][2]:.1f} -> {samples[-1][2]:.1f} MiB" if args.workers else "")
          + f": {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
