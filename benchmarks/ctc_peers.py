"""CTC decoding against pyctcdecode and flashlight-text on AN4 dev (issue 8, item 4).

One command::

    python benchmarks/ctc_peers.py            # defaults: exp/an4_pB/best.pt, beams 10 and 32, 5 repetitions

1. Computes the CTC log-probabilities of the AN4 ASR model (``exp/an4_pB/best.pt``) for every
   dev utterance once and caches them with the references in
   ``exp/bench_ctc_peers/an4_dev_logprobs.npz`` (recomputed when the checkpoint changes).
2. Creates the peers' virtual environments under ``.bench_venvs/`` (git-ignored) when they are
   missing, from PyPI with pip: ``pyctcdecode==0.5.*`` with ``numpy<2`` and ``kenlm`` (built
   from its source distribution; ``pypi-kenlm`` is tried when it fails; without either
   pyctcdecode runs without the LM), and ``flashlight-text==0.0.7`` with NumPy (its wheel
   bundles KenLM).  flashlight-text is driven directly through
   ``flashlight.lib.text.decoder`` with the calls torchaudio's
   ``torchaudio.models.decoder.ctc_decoder`` makes, so that its venv needs no torch.
3. Starts one worker per decoder (``benchmarks/ctc_peers_worker.py`` run by that venv's
   python, 1 thread: ``OMP_NUM_THREADS=1`` etc.) and, for every repetition and setting, asks
   the decoders in turn (the order rotates every repetition) for one timed pass over the
   104 utterances.  Times are taken inside the worker around the decode loop only.
4. Prints, per setting and decoder: median utterances/s, the slowest and fastest pass, WER
   (seqkit's :func:`seqkit.metrics.wer` on the first pass's transcripts; every pass must give
   the same ones) and the speed relative to seqkit (median over repetitions of the paired
   ratio ``seqkit seconds / peer seconds``).  Writes ``results.json`` and ``table.md`` into the
   work folder.

Matched settings (see benchmarks/README.md for what could not be matched): the beam width;
the word 3-gram ``exp/an4_lm/word3.arpa`` with the same natural-log weight (seqkit
``lm_weight`` = pyctcdecode ``alpha``; flashlight's ``lm_weight`` is that times ln 10 because
its KenLM scores are log10) and word bonus (pyctcdecode ``beta``, flashlight ``word_score``);
sentence start and end scored on all sides; per-frame token cut-off ``token_min_logp=-5`` and
beam threshold ``beam_prune_logp=-10`` (seqkit and pyctcdecode defaults; flashlight has
``beam_threshold=10`` and no token cut-off: ``beam_size_token`` = all tokens, as in
torchaudio); alignments of a prefix are summed (flashlight ``log_add=True``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _bench_common import Worker, cpu_name, log, pip_install, python_ok

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().with_name("ctc_peers_worker.py")

PEERS = {
    "pyctcdecode": {
        "pip": ["pyctcdecode==0.5.*", "numpy<2"],
        "optional": [["kenlm"], ["pypi-kenlm"]],  # first that installs and imports
        "optional_check": "import kenlm",
        "check": "import pyctcdecode",
    },
    "flashlight": {
        "pip": ["flashlight-text==0.0.7", "numpy"],
        "optional": [],
        "optional_check": None,
        "check": "from flashlight.lib.text.decoder import KenLM, LexiconDecoder",
    },
}


# --------------------------------------------------------------------------- log-probabilities


def compute_log_probs(args) -> Path:
    """The model's CTC log-probabilities for the dev set, cached in ``work/an4_dev_logprobs.npz``."""
    ckpt = Path(args.ckpt)
    st = ckpt.stat()
    stamp = f"{ckpt.resolve()}:{st.st_size}:{int(st.st_mtime)}"
    out = Path(args.work) / "an4_dev_logprobs.npz"
    if out.exists():
        with np.load(out, allow_pickle=False) as d:
            if str(d["stamp"]) == stamp and str(d["manifest"]) == str(args.dev):
                log(f"log-probabilities: cached {out}")
                return out
    import torch

    from seqkit.config import load_config
    from seqkit.tasks.base import load_for_inference
    from seqkit.train.trainer import move_to

    overrides = [f"train.output_dir={ckpt.parent}", "train.num_threads=1", "train.device=cpu"]
    if args.dev:
        overrides.append(f"data.dev={args.dev}")
    cfg = load_config(args.config, overrides)
    task, model = load_for_inference(cfg, ckpt)
    utts, items = task._dev(cfg.data.dev, "data.dev")
    v = task.vocab
    tokens = [v.token(i) for i in range(len(v))]
    lps: list[np.ndarray | None] = [None] * len(items)
    t0 = time.perf_counter()
    with torch.no_grad():
        order = sorted(range(len(items)), key=lambda i: items[i]["feats"].size(0))
        bs = cfg.decode.batch_size
        for start in range(0, len(order), bs):
            idx = order[start : start + bs]
            batch = move_to(task.collate([{"feats": items[i]["feats"]} for i in idx]), "cpu")
            enc, enc_lengths = model.encode(batch["feats"], batch["feat_lengths"])
            lp = model.ctc_log_probs(enc, enc_lengths).float().cpu().numpy()  # (B, T, V)
            for j, i in enumerate(idx):
                lps[i] = lp[j, : int(enc_lengths[j])]
    log(f"log-probabilities: {len(items)} utterances, model forward {time.perf_counter() - t0:.1f} s")
    lengths = np.array([x.shape[0] for x in lps])
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        out,
        log_probs=np.concatenate(lps).astype(np.float32),  # (sum T, V)
        offsets=np.concatenate([[0], np.cumsum(lengths)]),  # (N + 1,)
        ids=np.array([u.id for u in utts]),
        refs=np.array([task._norm(u.text) for u in utts]),
        audio_seconds=np.array(sum(u.duration for u in utts)),
        tokens=np.array(tokens),
        blank=np.array(model.ctc.blank),
        specials=np.array(v.specials),
        unk=np.array("<unk>"),
        eos=np.array("</s>"),
        stamp=np.array(stamp),
        manifest=np.array(str(args.dev)),
    )
    return out


# --------------------------------------------------------------------------- peer venvs


def ensure_venv(root: Path, name: str) -> dict:
    """Create ``root/name`` with the peer's packages unless it is there already."""
    spec = PEERS[name]
    d = root / name
    py = d / "bin" / "python"
    marker = d / "bench_spec.json"
    want = {"pip": spec["pip"], "optional": spec["optional"]}
    if marker.exists() and py.exists():
        info = json.loads(marker.read_text())
        if info.get("want") == want and python_ok(py, spec["check"]):
            return info
    root.mkdir(parents=True, exist_ok=True)
    (root / ".gitignore").write_text("*\n")  # belt and braces: the repo's .gitignore lists it too
    logpath = root / f"{name}.install.log"
    log(f"venv {d}: creating and installing {' '.join(spec['pip'])} (log {logpath})")
    t0 = time.perf_counter()
    with open(logpath, "a", encoding="utf-8") as logf:
        if not py.exists():
            subprocess.run([sys.executable, "-m", "venv", str(d)], check=True)
        if pip_install(py, spec["pip"], logf) != 0 or not python_ok(py, spec["check"]):
            raise SystemExit(f"installing {spec['pip']} into {d} failed: see {logpath}")
        installed, failed = None, []
        for alt in spec["optional"]:
            if pip_install(py, alt, logf) == 0 and python_ok(py, spec["optional_check"]):
                installed = alt
                break
            failed.append(alt)
    info = {"want": want, "optional_installed": installed, "optional_failed": failed,
            "install_seconds": round(time.perf_counter() - t0, 1)}
    marker.write_text(json.dumps(info, indent=1) + "\n")
    log(f"venv {d}: done in {info['install_seconds']} s; optional {installed}, failed {failed}")
    return info


# --------------------------------------------------------------------------- settings


def settings(args, have_kenlm: bool) -> list[dict]:
    """Rows of the table: a label and the sides with their worker configs."""
    prune = {"token_min_logp": -5.0, "beam_prune_logp": -10.0}
    fl_extra = {"beam_size_token": None, "log_add": True}
    rows = []
    if not args.no_greedy:
        rows.append({"label": "greedy", "beam": 1, "lm": "none", "sides": {"seqkit": {"method": "greedy"}}})
    for beam in args.beams if not args.no_lm_free else []:
        base = {"method": "beam", "beam": beam, "lm": False, "lm_weight": 0.0, "word_bonus": 0.0, **prune}
        rows.append({"label": f"beam {beam}", "beam": beam, "lm": "none", "sides": {
            "seqkit": base,
            "pyctcdecode": {**base, "unk_score_offset": 0.0},
            "flashlight": {**base, **fl_extra},
        }})
    combos = [(w, b) for w in args.lm_weight for b in args.word_bonus]
    for beam in args.beams:
        for w, b in combos:
            base = {"method": "beam", "beam": beam, "lm": True, "lm_weight": w, "word_bonus": b, **prune}
            sides = {"seqkit": base}
            if have_kenlm:
                sides["pyctcdecode"] = {**base, "unk_score_offset": 0.0}
            sides["flashlight"] = {**base, **fl_extra}
            rows.append({"label": f"beam {beam} + LM", "beam": beam,
                         "lm": f"word 3-gram, weight {w:g}, word bonus {b:g}", "sides": sides})
    if have_kenlm and args.beams and not args.no_oov_row:
        beam, (w, b) = args.beams[0], combos[0]
        base = {"method": "beam", "beam": beam, "lm": True, "lm_weight": w, "word_bonus": b, **prune}
        rows.append({"label": f"beam {beam} + LM, pyctcdecode's OOV penalty", "beam": beam,
                     "lm": f"word 3-gram, weight {w:g}, word bonus {b:g}; pyctcdecode "
                     "unk_score_offset -10 (its default)",
                     "sides": {"seqkit": base, "pyctcdecode": {**base, "unk_score_offset": -10.0}}})
    return rows


def machine() -> dict:
    cpu = cpu_name()
    try:
        import torch

        tv = torch.__version__
    except ImportError:
        tv = None
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "python": platform.python_version(),
            "torch": tv, "decode_threads": 1}


# --------------------------------------------------------------------------- main


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="recipes/asr/an4/config.yaml")
    p.add_argument("--ckpt", default="exp/an4_pB/best.pt")
    p.add_argument("--dev", default="data/an4/dev.jsonl")
    p.add_argument("--lm", default="exp/an4_lm/word3.arpa", help="word n-gram (ARPA) for all sides")
    p.add_argument("--lm-weight", default="0.5",
                   help="natural-log LM weight(s), comma-separated (default: the recipe's 0.5)")
    p.add_argument("--word-bonus", default="0", help="word bonus(es), comma-separated")
    p.add_argument("--no-greedy", action="store_true", help="leave out the greedy row")
    p.add_argument("--no-lm-free", action="store_true", help="leave out the rows without an LM")
    p.add_argument("--no-oov-row", action="store_true",
                   help="leave out the row with pyctcdecode's default OOV penalty")
    p.add_argument("--beams", default="10,32", help="comma-separated beam widths")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--work", default="exp/bench_ctc_peers")
    p.add_argument("--venvs", default=".bench_venvs")
    p.add_argument("--sides", default="seqkit,pyctcdecode,flashlight")
    args = p.parse_args()
    args.beams = [int(b) for b in args.beams.split(",") if b]
    args.lm_weight = [float(x) for x in args.lm_weight.split(",") if x]
    args.word_bonus = [float(x) for x in args.word_bonus.split(",") if x]
    sides = args.sides.split(",")
    os.chdir(ROOT)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    load = [os.getloadavg()]

    npz = compute_log_probs(args)
    with np.load(npz, allow_pickle=False) as d:
        refs = [str(r) for r in d["refs"]]
        frames = int(d["offsets"][-1])
        audio = float(d["audio_seconds"])
    n = len(refs)

    pythons = {"seqkit": Path(sys.executable)}
    installs = {}
    for side in sides:
        if side != "seqkit":
            installs[side] = ensure_venv(Path(args.venvs), side)
            pythons[side] = Path(args.venvs) / side / "bin" / "python"
    have_kenlm = "pyctcdecode" in installs and installs["pyctcdecode"]["optional_installed"] is not None
    if "pyctcdecode" in installs and not have_kenlm:
        log("kenlm did not install: pyctcdecode runs without the LM")

    rows = settings(args, have_kenlm)
    for row in rows:
        row["sides"] = {s: c for s, c in row["sides"].items() if s in sides}
    workers = {s: Worker(s, [str(pythons[s]), str(WORKER), s, str(npz), args.lm], ROOT, work / f"worker_{s}.log",
                          close_timeout=60) for s in sides}
    versions = {s: w.ask({"op": "info"})["versions"] for s, w in workers.items()}
    log(f"decoding {n} utterances ({frames} frames, {audio:.1f} s audio), {args.reps} repetitions")
    times: dict[tuple[int, str], list[float]] = {}
    hyps: dict[tuple[int, str], list[str]] = {}
    stable: dict[tuple[int, str], bool] = {}
    try:
        for rep in range(args.reps):
            for r, row in enumerate(rows):
                names = list(row["sides"])
                k = rep % len(names)
                for side in names[k:] + names[:k]:  # alternate; the first side rotates
                    res = workers[side].ask({"op": "run", "cfg": row["sides"][side]})
                    times.setdefault((r, side), []).append(res["seconds"])
                    if (r, side) not in hyps:
                        hyps[(r, side)] = res["hyps"]
                        stable[(r, side)] = True
                    elif res["hyps"] != hyps[(r, side)]:
                        stable[(r, side)] = False
            load.append(os.getloadavg())
            log(f"  repetition {rep + 1}/{args.reps} done ({time.perf_counter() - t_start:.0f} s)")
    finally:
        for w in workers.values():
            w.close()

    from seqkit.metrics import wer

    table = []
    for r, row in enumerate(rows):
        for side in row["sides"]:
            ts = times[(r, side)]
            med = statistics.median(ts)
            ratio = None
            if side != "seqkit" and "seqkit" in row["sides"]:
                ratio = statistics.median(a / b for a, b in zip(times[(r, "seqkit")], ts, strict=True))
            w = wer(refs, hyps[(r, side)], worst=0)
            same = None
            if side != "seqkit" and "seqkit" in row["sides"]:
                same = sum(a == b for a, b in zip(hyps[(r, side)], hyps[(r, "seqkit")], strict=True))
            odd = sum(("<" in h) or ("\u2047" in h) for h in hyps[(r, side)])
            table.append({
                "setting": row["label"], "decoder": side, "beam": row["beam"], "lm": row["lm"],
                "utt_per_s": n / med, "utt_per_s_min": n / max(ts), "utt_per_s_max": n / min(ts),
                "median_seconds": med, "seconds": ts, "rtf": med / audio, "wer": 100 * w["score"],
                "errors": w["errors"], "ref_words": w["ref_words"], "speed_vs_seqkit": ratio,
                "same_hyps_every_rep": stable[(r, side)], "hyps_with_special_tokens": odd,
                "transcripts_equal_to_seqkit": same, "cfg": row["sides"][side], "hyps": hyps[(r, side)],
            })
    info = {"machine": machine(), "versions": versions, "installs": installs,
            "loadavg_1_5_15": load, "utterances": n, "frames": frames, "audio_seconds": audio,
            "reps": args.reps, "wall_seconds": time.perf_counter() - t_start, "args": vars(args)}
    md = [
        "| setting | decoder | LM | utt/s (median) | min-max | WER % | speed vs seqkit |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in table:
        ratio = "" if e["speed_vs_seqkit"] is None else f"{e['speed_vs_seqkit']:.2f}x"
        flag = "" if e["same_hyps_every_rep"] else " (hyps differ across reps!)"
        md.append(f"| {e['setting']} | {e['decoder']} | {e['lm']} | {e['utt_per_s']:.1f} | "
                  f"{e['utt_per_s_min']:.1f}-{e['utt_per_s_max']:.1f} | {e['wer']:.2f}{flag} | {ratio} |")
    m = info["machine"]
    lo = [x[0] for x in load]
    md.append("")
    md.append(f"{n} utterances, {frames} frames, {audio:.1f} s audio; {args.reps} repetitions; "
              f"CPU {m['cpu']} ({m['logical_cpus']} logical), 1 decoding thread per side; "
              f"torch {m['torch']}; load average (1 min) {min(lo):.2f}-{max(lo):.2f} during the run; "
              f"wall {info['wall_seconds']:.0f} s")
    md.append("versions: " + "; ".join(f"{s}: " + ", ".join(f"{k} {v}" for k, v in vs.items())
                                       for s, vs in versions.items()))
    (work / "results.json").write_text(json.dumps({"info": info, "table": table}, indent=1) + "\n")
    (work / "table.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
