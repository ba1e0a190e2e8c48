"""End to end through the CLI on tiny data: train -> SIGKILL -> resume -> evaluate -> predict.

Also DDP: a 2-process gloo run under torchrun.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import torch

from seqkit.train.checkpoint import load_checkpoint

from .conftest import ROOT, run_seqkit, tiny_slot_config


def weights(path):
    return load_checkpoint(path)["model"]


def test_train_kill_resume_evaluate_predict(tmp_path):
    cfg = tiny_slot_config(tmp_path, epochs=6)
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"

    ref = run_seqkit("train", str(cfg), f"train.output_dir={ref_dir}")
    ref_metrics = json.loads(ref.stdout.strip().splitlines()[-1])
    assert ref_metrics.pop("output_dir") == str(ref_dir)
    assert 0.0 <= ref_metrics["slot_f1"] <= 1.0 and ref_metrics["sentences"] == 20

    # the same run, killed with SIGKILL as soon as its first checkpoint exists
    proc = subprocess.Popen([sys.executable, "-m", "seqkit", "train", str(cfg), f"train.output_dir={run_dir}"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not (run_dir / "last.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    killed_at = load_checkpoint(run_dir / "last.pt")["trainer"]
    assert not killed_at["finished"] and killed_at["step"] >= 2
    assert not [p for p in os.listdir(run_dir) if p.endswith(".tmp")]  # no half-written checkpoint kept

    resumed = run_seqkit("train", str(cfg), f"train.output_dir={run_dir}")
    assert "resuming from" in resumed.stderr
    for name in ("last.pt", "best.pt"):
        a, b = weights(ref_dir / name), weights(run_dir / name)
        assert all(torch.equal(a[k], b[k]) for k in a), name
    resumed_metrics = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert resumed_metrics.pop("output_dir") == str(run_dir)
    assert resumed_metrics == ref_metrics

    # artefacts of the main job
    for name in ("dev.hyp.seq.out", "dev.hyp.label", "dev_metrics.json", "learning_curve.png", "metrics.jsonl",
                 "config.yaml"):
        assert (run_dir / name).stat().st_size > 0, name

    # evaluate reproduces the dev metrics from best.pt
    ev = run_seqkit("evaluate", str(cfg), f"train.output_dir={run_dir}")
    assert json.loads(ev.stdout) == ref_metrics

    # the predictions file scores the same through `seqkit score f1`
    sc = run_seqkit("score", "f1", "--ref", str(tmp_path / "data" / "dev.seq.out"),
                    "--hyp", str(run_dir / "dev.hyp.seq.out"), "--json")
    assert abs(json.loads(sc.stdout)["score"] - ref_metrics["slot_f1"]) < 1e-9

    # predict from stdin: one output line per input line, one tag per token
    sentences = "show me flights from boston to dallas\n\nwhat is the weather in denver friday\n"
    pr = run_seqkit("predict", str(cfg), f"train.output_dir={run_dir}", input=sentences)
    lines = pr.stdout.split("\n")[:-1]
    assert len(lines) == 3 and lines[1] == ""
    for src, out in zip(sentences.split("\n"), lines):
        if src:
            intent, tags = out.split("\t")
            assert intent in {"find_flight", "airfare", "get_weather"}
            assert len(tags.split()) == len(src.split())


def test_cli_errors_are_clean(tmp_path):
    cfg = tiny_slot_config(tmp_path)
    bad = run_seqkit("train", str(cfg), "train.lr_rate=1", check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "unknown key 'train.lr_rate'" in bad.stderr and str(cfg) in bad.stderr
    missing = run_seqkit("train", str(cfg), f"data.train={tmp_path}/nope", check=False)
    assert missing.returncode == 2 and "key 'data.train': file not found" in missing.stderr
    (tmp_path / "data" / "train.seq.out").write_text("O O\n" * 60)
    mism = run_seqkit("train", str(cfg), check=False)
    assert mism.returncode == 2 and "Traceback" not in mism.stderr and "train.seq.out:1" in mism.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_gloo_processes(tmp_path):
    cfg = tiny_slot_config(tmp_path, epochs=2, device="cpu")
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
         "--master_port", str(_free_port()), "-m", "seqkit.cli.main", "train", str(cfg),
         f"train.output_dir={out}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ddp: 2 ranks, weights in sync" in proc.stderr
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["trainer"]["finished"] and ckpt["trainer"]["epoch"] == 2
    assert json.loads(proc.stdout.strip().splitlines()[-1])["sentences"] == 20
