"""Affine maps ``y = x W^T + b`` that run float32 CPU products through oneDNN.

On CPUs where torch's default CPU matrix product (MKL's sgemm) runs well below oneDNN's
rate -- on the AMD EPYC dev machine of this project a 2048^3 float32 product runs at 120
GFLOP/s per thread through MKL and 262 through oneDNN (``benchmarks/machine_limit.py``) --
:func:`linear` sends the forward product and
both backward products (``dx = dy W``, ``dW = dy^T x``) to oneDNN's inner-product primitive
(``torch.ops.mkldnn._linear_pointwise`` on plain dense tensors, no layout conversion).
Everywhere else it is ``torch.nn.functional.linear``:

* tensors not on the CPU, or not float32 (bf16/fp16, and any CPU autocast region);
* when torch was built without oneDNN, or the op is missing;
* when switched off with :func:`set_onednn_linear` or ``SEQKIT_ONEDNN_LINEAR=0`` in the
  environment (read once, at import).

The results agree with ``F.linear`` to float32 rounding (a different summation order), not
bit for bit.  The oneDNN path is differentiable once: a second derivative through it (e.g.
``create_graph=True``) raises an error; :func:`set_onednn_linear` (False) avoids it.

:class:`Linear` is ``torch.nn.Linear`` with its product computed by :func:`linear`: same
parameters, same ``state_dict`` keys, same initialisation, same results to float32 rounding
(``seqkit.nn.cells.TorchLSTMCell`` / ``TorchGRUCell`` do the same for torch's cells).
:func:`addmm_t` is ``torch.addmm(xp, h, weight.t())`` the same way.

Shapes: ``x (..., K)``, ``weight (N, K)``, ``bias (N,)`` or None -> ``(..., N)``.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

__all__ = [
    "Linear",
    "addmm_t",
    "linear",
    "mm_t",
    "onednn_applies",
    "onednn_linear_enabled",
    "set_onednn_linear",
    "weight_grad",
]


def _op_available() -> bool:
    try:
        return torch.backends.mkldnn.is_available() and hasattr(
            torch.ops.mkldnn, "_linear_pointwise"
        )
    except (AttributeError, RuntimeError):
        return False


_AVAILABLE = _op_available()
_ENABLED = _AVAILABLE and os.environ.get("SEQKIT_ONEDNN_LINEAR", "1") not in (
    "0",
    "false",
    "no",
    "",
)


def set_onednn_linear(enabled: bool) -> bool:
    """Switch the oneDNN path on or off for this process; returns the previous setting.

    Switching on where the op is unavailable leaves it off (``F.linear`` everywhere).
    """
    global _ENABLED
    previous = _ENABLED
    _ENABLED = bool(enabled) and _AVAILABLE
    return previous


def onednn_linear_enabled() -> bool:
    """Whether :func:`linear` sends float32 CPU products to oneDNN."""
    return _ENABLED


# Below these sizes oneDNN's per-call overhead outweighs its faster kernel (a one-off check on
# the dev machine, not a shipped benchmark: an (8, 64) x (64, 64) product took 3 us through
# F.linear and 15 us through oneDNN, and matrix-vector products with N = 1 were 1.6-10x slower).
_MIN_OUT_FEATURES = 32
_MIN_MACS = 1 << 20


def _mm_t(a: Tensor, b: Tensor, bias: Tensor | None = None) -> Tensor:
    """``a (M, K) @ b (N, K)^T [+ bias (N,)] -> (M, N)`` through oneDNN's inner product."""
    return torch.ops.mkldnn._linear_pointwise(a, b, bias, "none", [], "")


# dW = g^T x, from the (M, N) gradient of a product with many rows M (>= this) and N > K, runs
# faster as (x^T g)^T, where oneDNN's output features are the larger N: 1.19x / 1.34x (1 / 2
# threads) at M 1995, N 7999, K 512, and 3.0x / 3.4-4.3x when K < 32 at any M (the location-aware
# attention's (1248, 10) -> 256 projection); with few rows the direct order is as fast or
# faster (``python benchmarks/kernel_speed.py``, two runs).
_SWAP_MIN_ROWS = 512


def weight_grad(grad_t: Tensor, x_t: Tensor) -> Tensor:
    """``dW = g^T x`` (N, K) from ``grad_t = g^T`` (N, M) and ``x_t = x^T`` (K, M), through
    oneDNN in whichever operand order runs faster (a transposed view when swapped)."""
    n, m = grad_t.shape
    k = x_t.shape[0]
    if n > k and (k < _MIN_OUT_FEATURES or m >= _SWAP_MIN_ROWS):
        return _mm_t(x_t, grad_t).t()  # (K, N) -> (N, K)
    return _mm_t(grad_t, x_t)  # (N, K)


class _OneDNNLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:  # x (M, K)
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _mm_t(x, weight, bias)  # (M, N)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):  # grad (M, N)
        x, weight = ctx.saved_tensors
        grad = grad.contiguous()
        gx = _mm_t(grad, weight.t()) if ctx.needs_input_grad[0] else None  # (M, K)
        gw = weight_grad(grad.t(), x.t()) if ctx.needs_input_grad[1] else None  # (N, K)
        gb = grad.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None  # (N,)
        return gx, gw, gb


def onednn_applies(x: Tensor, weight: Tensor) -> bool:
    """Whether :func:`linear` (x, weight) takes the oneDNN route (enabled, float32 CPU tensors,
    no CPU autocast, and a product large enough to gain)."""
    if not (
        _ENABLED
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
    ):
        return False
    n = weight.shape[0]
    return n >= _MIN_OUT_FEATURES and x.numel() * n >= _MIN_MACS


def mm_t(a: Tensor, b: Tensor, bias: Tensor | None = None) -> Tensor:
    """``a (M, K) @ b (N, K)^T [+ bias (N,)] -> (M, N)`` without autograd: oneDNN where
    :func:`onednn_applies`, else ``F.linear``.  For code that makes its own gradients."""
    if onednn_applies(a, b):
        return _mm_t(a.contiguous(), b, bias)
    return F.linear(a, b, bias)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x (..., K) @ weight (N, K)^T + bias (N,) -> (..., N)``; see the module docstring."""
    if not onednn_applies(x, weight):
        return F.linear(x, weight, bias)
    lead = x.shape[:-1]
    x2 = x.reshape(-1, x.shape[-1]).contiguous()  # (M, K)
    if torch.is_grad_enabled() and (
        x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)
    ):
        y = _OneDNNLinear.apply(x2, weight, bias)
    else:
        y = _mm_t(x2, weight, bias)
    return y.reshape(*lead, weight.shape[0])  # (..., N)


class Linear(nn.Linear):
    """``torch.nn.Linear`` whose forward is :func:`linear` (oneDNN on float32 CPU tensors)."""

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight, self.bias)


def addmm_t(xp: Tensor, h: Tensor, weight: Tensor) -> Tensor:
    """``xp (B, N) + h (B, K) @ weight (N, K)^T -> (B, N)``, as ``torch.addmm(xp, h, weight.t())``."""
    if onednn_applies(h, weight):
        return xp + linear(h, weight)
    return torch.addmm(xp, h, weight.t())
