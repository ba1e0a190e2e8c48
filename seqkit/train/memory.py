"""Process-level memory allocator settings for CPU training and decoding.

A training or decoding step on the CPU allocates and frees the same large tensors every
step (logits of (tokens, vocabulary), their gradients, the dense gradient of an embedding).
With glibc's defaults, freed memory at the top of the heap is handed back to the kernel
almost at once (``M_TOP_PAD`` 128 KiB), so the next step takes fresh pages again and pays a
page fault per 4 KiB page.  :func:`tune_malloc` asks glibc to keep a pad of freed memory at
the top of the heap and to serve blocks of up to 32 MiB from the heap, the way the jemalloc /
tcmalloc ``LD_PRELOAD`` advice for PyTorch on CPU avoids the same cost, without a
preloaded library.  It changes no result, only where memory comes from; the price is that
the process keeps up to ``top_pad_mb`` of freed memory mapped.

Measured with ``benchmarks/nmt_peers.py`` (the Multi30k model, 1 thread, 2-core AMD EPYC
VM): training 2,665 -> 3,102 target tokens/s (medians of two runs, off and on) (``benchmarks/README.md``); RSS stays flat in
``benchmarks/soak.py``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["tune_malloc"]

# mallopt(3) parameter numbers (glibc malloc.h)
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_MAX = 32 << 20  # glibc's upper bound on 64-bit (HEAP_MAX_SIZE / 2)

_applied: int | None = None


def tune_malloc(top_pad_mb: int | None) -> bool:
    """Set glibc's ``M_TOP_PAD`` to ``top_pad_mb`` MiB and ``M_MMAP_THRESHOLD`` to 32 MiB.

    ``None`` or ``0`` leaves the allocator alone.  Returns True when the settings were
    applied (now or by an earlier call with the same value); False off Linux/glibc or when
    ``mallopt`` refuses.  Process-wide and idempotent.
    """
    global _applied
    if not top_pad_mb:
        return False
    if top_pad_mb < 0 or top_pad_mb > 2047:
        raise ValueError(f"top_pad_mb must be in 0..2047, got {top_pad_mb}")
    if _applied == top_pad_mb:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_TOP_PAD, top_pad_mb << 20) == 1
    ok = mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX) == 1 and ok
    if ok:
        _applied = top_pad_mb
    return ok
