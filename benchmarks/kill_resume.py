"""Kill-and-resume soak: train tiny slot-filling, translation and ASR recipes while SIGKILLing
them over and over, and check that the resumed runs end bit-identical to uninterrupted ones.

Per task: one uninterrupted reference run; then one chain of processes on a fresh output
folder, each killed with SIGKILL: ``--kills`` at seeded random fault points
(``SEQKIT_KILL_AT``: after an optimizer step / between a checkpoint's write and its rename /
inside a dev evaluation; see ``seqkit/train/faults.py``) and ``--external`` from outside
after a random delay (anywhere: start-up, data loading, a step, evaluation, a write); then
one last process that runs to the end.  Compared with the reference: every ``*.pt``
(weights and trainer state), the metrics log and the final dev metrics (speed figures
left out).  ``--control`` also resumes one extra chain with a different seed after its
first kill, to show that the comparison does catch a run that diverged.

    python benchmarks/kill_resume.py                       # all three tasks, 6 + 3 kills each
    python benchmarks/kill_resume.py --tasks asr --kills 10 --external 5 --seed 3
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.killresume import SETUPS, chain, command, compare, random_kills, run_once  # noqa: E402

#: longer than the test's runs, so that every kill of the default chain lands before the end
EPOCHS = {"asr": 40, "slot_filling": 8, "translation": 6}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", nargs="+", default=sorted(SETUPS), choices=sorted(SETUPS))
    ap.add_argument("--kills", type=int, default=6, help="fault-point kills per task (default 6)")
    ap.add_argument("--external", type=int, default=3, help="kills at random times from outside (default 3)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, help=f"train.epochs of every task (default: {EPOCHS})")
    ap.add_argument("--control", action="store_true", help="also check that a diverged run is detected")
    ap.add_argument("--workdir", help="keep the runs here (default: a temporary folder)")
    args = ap.parse_args(argv)

    ok = True
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.workdir or tmp)
        for task in args.tasks:
            folder = base / task
            folder.mkdir(parents=True, exist_ok=True)
            cfg, overrides = SETUPS[task](folder)
            overrides = [*overrides, f"train.epochs={args.epochs or EPOCHS[task]}"]  # room for every kill
            ref = run_once(command(cfg, overrides, folder / "ref"))
            if ref.returncode != 0:
                print(f"{task}: reference run failed:\n{ref.stderr[-2000:]}", file=sys.stderr)
                return 1
            rng = random.Random(f"{task}-{args.seed}")
            kills = random_kills(args.kills, rng)
            delays = [rng.uniform(1.0, ref.seconds) for _ in range(args.external)]
            t0 = time.time()
            runs = chain(command(cfg, overrides, folder / "run"), kills, delays)
            killed = sum(r.returncode == -signal.SIGKILL for r in runs[:-1])
            diffs = compare(folder / "ref", ref, folder / "run", runs[-1]) if runs[-1].returncode == 0 else [
                f"last run failed: {runs[-1].stderr[-500:]}"]
            same = not diffs
            ok &= same
            print(f"\n## {task}: reference {ref.seconds:.1f} s; chain of {len(runs)} processes, {time.time() - t0:.1f} s")
            for i, r in enumerate(runs):
                print(f"  {i + 1:2d}. kill {r.kill or '-':<14} rc={r.returncode:<4} {r.seconds:6.1f} s  "
                      f"{'cleaned a half-written checkpoint; ' if r.removed_temp else ''}"
                      + ("found the run finished" if r.already_finished else
                         r.resumed_from.split(': ', 1)[-1] if r.resumed_from else "started from scratch"))
            print(f"  result: {'IDENTICAL to the reference' if same else 'DIFFERENT: ' + '; '.join(diffs)}")
            control = ""
            if args.control:
                cmd = command(cfg, overrides, folder / "control")
                run_once(cmd, kill_at=kills[0])
                last = run_once(cmd + ["train.seed=12345"])
                found = compare(folder / "ref", ref, folder / "control", last)
                control = "caught" if found else "MISSED"
                ok &= bool(found)
                print(f"  control (resumed with another seed): {len(found)} differences found"
                      + (f", e.g. {found[0]}" if found else " -- the comparison is blind!"))
            rows.append((task, len(kills), len(delays), killed, sum(bool(r.resumed_from) for r in runs),
                         sum(r.removed_temp for r in runs), "identical" if same else "DIFFERENT", control))
    print("\n| task | fault kills | external kills | processes killed | resumed from a checkpoint | "
          "half-written checkpoints cleaned | end state vs uninterrupted |" + (" control |" if args.control else ""))
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |" + (" --- |" if args.control else ""))
    for task, nk, ne, killed, resumed, cleaned, res, control in rows:
        print(f"| {task} | {nk} | {ne} | {killed} | {resumed} | {cleaned} | {res} |" + (f" {control} |" if args.control else ""))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
