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

# The checkout this file lies in comes first on sys.path, so that a benchmark run from another
# checkout (a git worktree of an earlier commit) measures that checkout's seqkit rather than
# the one the virtual environment's editable install points to.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path[:1]:
    sys.path.insert(0, str(ROOT))

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


def peer_venv(root: Path, name: str, installs: list[list[str]], check: str) -> Path:
    """The python of the venv ``root/name``, created when missing or broken: ``installs`` are
    pip argument lists run in order (log in ``root/name.install.log``); torch (and whatever
    else the peer shares with seqkit) comes from this interpreter's site-packages through a
    ``.pth`` file read after the venv's own packages, so pip sees it and installs nothing twice.
    ``check`` is code that must run in the finished venv."""
    d = root / name
    py = d / "bin" / "python"
    if py.exists() and python_ok(py, check):
        return py
    root.mkdir(parents=True, exist_ok=True)
    (root / ".gitignore").write_text("*\n")
    logpath = root / f"{name}.install.log"
    what = " + ".join(" ".join(args) for args in installs)
    log(f"venv {d}: creating, installing {what} (log {logpath})")
    with open(logpath, "a", encoding="utf-8") as logf:
        if not py.exists():
            subprocess.run([sys.executable, "-m", "venv", str(d)], check=True)
        import sysconfig

        main_sp = sysconfig.get_paths()["purelib"]
        sp = next((d / "lib").glob("python3*/site-packages"))
        (sp / "zzz_main_venv.pth").write_text(main_sp + "\n")  # appended after the venv's own packages
        if any(pip_install(py, args, logf) for args in installs) or not python_ok(py, check):
            raise SystemExit(f"installing {what} into {d} failed: see {logpath}")
    return py


def serve(handle) -> None:
    """A worker's loop: one JSON request per stdin line, ``handle(request) -> dict`` answered
    as one JSON line on stdout, until ``{"op": "quit"}``."""
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "quit":
            break
        sys.stdout.write(json.dumps(handle(cmd)) + "\n")
        sys.stdout.flush()


class NullLog(list):
    """Stands in for seqkit's metrics log when a worker drives ``Trainer._loop`` itself."""

    def log(self, *a, **k):
        pass

    def write(self, *a, **k):
        pass


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



def median_seconds(fn, repeats: int, warmup: int = 2, sync=lambda: None) -> float:
    """Median wall time of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls; ``sync``
    waits for queued device work before each clock reading."""
    import statistics
    import time

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _median_gflops(fn, flops: float, repeats: int, sync=lambda: None) -> float:
    """GFLOP/s of ``fn`` (``flops`` per call) from :func:`median_seconds` (two warm-up calls)."""
    return flops / median_seconds(fn, repeats, sync=sync) / 1e9


def sgemm_gflops(n: int = 2048, repeats: int = 10, device: str = "cpu") -> float:
    """Median GFLOP/s of an n^3 float32 ``a @ b`` (MKL on CPU, cuBLAS on CUDA)."""
    import torch

    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    return _median_gflops(lambda: a @ b, 2 * n**3, repeats, sync)


def onednn_sgemm_gflops(n: int = 2048, repeats: int = 10) -> float | None:
    """Median GFLOP/s of an n^3 float32 product through oneDNN (torch's mkldnn linear), or None
    where torch was built without it.  ``a @ b`` on CPU calls MKL's sgemm, which on AMD CPUs can
    run at half the rate oneDNN reaches (measured on the 2-core AMD EPYC VM: 210 against 472
    GFLOP/s), so the machine's sgemm rate is the larger of the two."""
    import torch

    if not torch.backends.mkldnn.is_available():
        return None
    a, w = torch.randn(n, n).to_mkldnn(), torch.randn(n, n).to_mkldnn()
    return _median_gflops(lambda: torch._C._nn.mkldnn_linear(a, w), 2 * n**3, repeats)
