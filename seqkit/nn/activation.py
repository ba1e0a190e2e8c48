"""``tanh`` for float32 CPU tensors through numpy's SIMD kernel.

torch 2.11's CPU ``tanh`` kernel is slow on the project's dev machine (AMD EPYC, AVX-512): on
one thread a (13, 96, 256) float32 tensor -- the location-aware attention's ``W q + V k + U f``
of one AN4 decoder step -- took 680 us, 10x torch's own ``sigmoid`` of the same tensor and 13x
numpy's ``np.tanh`` (53 us; a one-off check).  Forward + backward, :func:`tanh` is 4.3-5.0x
faster than ``torch.tanh`` at the attentions' shapes on 1 thread and 2.2-3.2x on 2 threads
(``python benchmarks/kernel_speed.py``, two runs).  The additive and location-aware attentions apply
``tanh`` to a (B, S, A) tensor at every decoder step, which made it the largest element-wise
cost of the attention decoders.

:func:`tanh` computes the forward with ``np.tanh`` on the tensor's memory (no copy of the
input) and the backward with torch's ``tanh_backward`` (``grad * (1 - y^2)``, which is fast).
numpy's float32 ``tanh`` is within 1.4 ulp of the exact value (torch's within 0.5 ulp;
measured over 1.2e7 values from 1e-6 to 10 in scale), so results agree with ``torch.tanh``
to float32 rounding, not bit for bit.  It falls back to ``torch.tanh``:

* for tensors not on the CPU or not float32 (bf16/fp16), and for tensors with fewer than
  ``_MIN_NUMEL`` elements (where the autograd function's own overhead outweighs the faster
  kernel);
* under ``torch.compile`` tracing;
* when switched off with :func:`set_fast_tanh` or ``SEQKIT_FAST_TANH=0`` in the environment
  (read once, at import).

Second derivatives work (the backward is made of differentiable torch ops on the saved
output).  Shapes: any -> the same.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import Tensor

__all__ = ["fast_tanh_enabled", "set_fast_tanh", "tanh"]

_ENABLED = os.environ.get("SEQKIT_FAST_TANH", "1") not in ("0", "false", "no", "")

# Crossover measured on the dev machine (a one-off check, not a shipped benchmark): below
# ~4096 elements torch.tanh (2.1 ns/element) costs less than the autograd function's overhead.
_MIN_NUMEL = 4096


def set_fast_tanh(enabled: bool) -> bool:
    """Switch the numpy route of :func:`tanh` on or off for this process; returns the
    previous setting."""
    global _ENABLED
    previous = _ENABLED
    _ENABLED = bool(enabled)
    return previous


def fast_tanh_enabled() -> bool:
    """Whether :func:`tanh` sends large float32 CPU tensors to numpy."""
    return _ENABLED


def _np_tanh(x: Tensor) -> Tensor:
    y = torch.empty(x.shape, dtype=x.dtype)  # contiguous; numpy reads x with its strides
    np.tanh(x.detach().numpy(), out=y.numpy())
    return y


class _NumpyTanh(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        y = _np_tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)


def _applies(x: Tensor) -> bool:
    return (
        _ENABLED
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and x.numel() >= _MIN_NUMEL
        and not x.is_conj()
        and not x.is_neg()
        and not torch.compiler.is_compiling()
    )


def tanh(x: Tensor) -> Tensor:
    """``torch.tanh(x)``, through numpy's kernel where it applies (see the module docstring)."""
    if not _applies(x):
        return torch.tanh(x)
    if torch.is_grad_enabled() and x.requires_grad:
        return _NumpyTanh.apply(x)
    return _np_tanh(x)
