"""seqkit.train.memory.tune_malloc: glibc keeps freed memory for the next step's tensors."""

import ctypes
import platform
import subprocess
import sys
import textwrap

import pytest

from seqkit.config import TrainConfig
from seqkit.train.memory import tune_malloc

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def test_off_values_and_range():
    assert tune_malloc(None) is False
    assert tune_malloc(0) is False
    with pytest.raises(ValueError, match="top_pad_mb"):
        tune_malloc(-1)
    with pytest.raises(ValueError, match="top_pad_mb"):
        tune_malloc(4096)
    assert TrainConfig().malloc_top_pad_mb == 256


# In a fresh process: a 20 MiB tensor, made and freed, as a training step's logits are;
# glibc's mallinfo2() says where its memory came from and what the heap kept.
_PROBE = textwrap.dedent(
    """
    import ctypes, sys, torch
    from seqkit.train.memory import tune_malloc

    class Info(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                                    "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = Info
    applied = tune_malloc(int(sys.argv[1]))
    before = libc.mallinfo2()
    t = torch.ones(5 << 20)
    during = libc.mallinfo2()
    del t
    after = libc.mallinfo2()
    mb = lambda x: x / (1 << 20)
    print(applied, mb(during.hblkhd - before.hblkhd), mb(during.arena - before.arena), mb(after.fordblks))
    """
)


def _probe(top_pad_mb: int) -> tuple[str, float, float, float]:
    out = subprocess.run([sys.executable, "-c", _PROBE, str(top_pad_mb)], capture_output=True, text=True,
                         check=True).stdout.split()
    return out[0], float(out[1]), float(out[2]), float(out[3])


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_large_blocks_come_from_the_heap_and_stay_for_reuse():
    if not hasattr(ctypes.CDLL("libc.so.6"), "mallinfo2"):
        pytest.skip("glibc < 2.33 has no mallinfo2")
    # glibc's defaults: the 20 MiB block is mmap()ed and handed back to the kernel on free
    applied, mmapped, heap, free_after = _probe(0)
    assert applied == "False" and mmapped >= 20 and heap < 20 and free_after < 20
    # tuned: it comes from the heap, and after the free the heap keeps it for the next step
    applied, mmapped, heap, free_after = _probe(256)
    assert applied == "True" and mmapped < 1 and heap >= 20 and free_after >= 20
