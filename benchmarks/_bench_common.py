"""Pieces the benchmark scripts share (torch-free): the CPU's name, logging, pip installs into
peer venvs, and the JSON-lines worker process a peer benchmark drives (one request per line
on stdin, one JSON answer per line on stdout; ``{"op": "quit"}`` ends it)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

#: one thread everywhere in a worker: the peer comparisons are single-threaded
THREAD_ENV = {k: "1" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def pip_install(py: Path, pkgs: list[str], logf) -> int:
    """``py -m pip install pkgs`` with its output in ``logf``; the exit status."""
    logf.write(f"\n$ pip install {' '.join(pkgs)}\n")
    logf.flush()
    cmd = [str(py), "-m", "pip", "install", "--disable-pip-version-check", *pkgs]
    return subprocess.run(cmd, stdout=logf, stderr=subprocess.STDOUT).returncode


def python_ok(py: Path, code: str) -> bool:
    """Whether ``py -c code`` exits 0 (e.g. the peer's packages import)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([str(py), "-c", code], capture_output=True, env=env).returncode == 0


class Worker:
    """A worker process: ``argv`` run from the repository root with ``env`` added to this
    process's environment (plus :data:`THREAD_ENV`), stderr to ``errlog``."""

    def __init__(self, side: str, argv: list[str], root: Path, errlog: Path, env: dict | None = None,
                 close_timeout: float = 120):
        self.side = side
        self.errlog = errlog
        self.close_timeout = close_timeout
        self.err = open(errlog, "w", encoding="utf-8")
        full_env = {**os.environ, **THREAD_ENV, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err,
                                     text=True, cwd=root, env=full_env)

    def ask(self, cmd: dict) -> dict:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"worker {self.side} died: see {self.errlog}")
        return json.loads(line)

    def close(self) -> None:
        try:
            self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        self.proc.wait(timeout=self.close_timeout)
        self.err.close()
