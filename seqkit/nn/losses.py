"""Masked sequence losses.

:func:`sequence_cross_entropy` is token-level cross-entropy over a padded batch of target
sequences, with optional label smoothing (Szegedy, Vanhoucke, Ioffe, Shlens & Wojna 2016,
"Rethinking the Inception Architecture for Computer Vision", CVPR, Section 7; used for
sequence models by Vaswani et al. 2017, "Attention Is All You Need").

:func:`linear_cross_entropy` is the same loss fused with the output projection that makes
the logits, computed a block of rows at a time (the idea of Liger Kernel's
``FusedLinearCrossEntropy`` and of Wijmans et al. 2025, "Cut Your Losses in Large-Vocabulary
Language Models", here in plain torch for the CPU): the (N, V) logits, their log-softmax
and their gradient are never held whole.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .dense import linear, mm_t

__all__ = ["linear_cross_entropy", "sequence_cross_entropy"]

_REDUCTIONS = ("none", "sentence_sum", "sentence_mean", "sum", "token_mean")


def sequence_cross_entropy(
    logits: Tensor,
    targets: Tensor,
    pad_id: int = 0,
    label_smoothing: float = 0.0,
    reduction: str = "token_mean",
) -> Tensor:
    """Masked (label-smoothed) cross-entropy of ``targets`` under ``logits``.

    Per position, with ``p = softmax(logits)``, ``V`` classes and ``eps = label_smoothing``
    (torch's ``cross_entropy(label_smoothing=eps)``, which this calls)::

        loss_t = (1 - eps) * (-log p[y_t]) + eps * mean_k(-log p[k])

    i.e. cross-entropy against ``(1 - eps) * onehot(y_t) + eps / V`` (the smoothing mass is
    spread over all ``V`` classes, padding included).  Positions where ``targets == pad_id``
    (torch's ``ignore_index``, so ``-100`` works too) contribute exactly 0.

    ``logits`` may also be log-probabilities (``log_softmax`` is idempotent), but with
    ``label_smoothing > 0`` a ``-inf`` entry (e.g. an impossible class of a copy model)
    makes the loss infinite.

    Args:
        logits: (B, L, V) float.
        targets: (B, L) long; ``pad_id`` at padded positions.
        pad_id: the ignored target id.
        label_smoothing: eps in [0, 1].
        reduction: ``"none"`` -> (B, L) (0 at padding); ``"sentence_sum"`` -> (B,) each
            sentence's summed loss; ``"sentence_mean"`` -> scalar, the mean over sentences
            of their summed loss; ``"sum"`` -> scalar total; ``"token_mean"`` -> scalar,
            the total divided by the number of real target tokens (0 if there are none).
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if logits.dim() != 3 or targets.shape != logits.shape[:2]:
        raise ValueError(
            f"expected logits (B, L, V) and targets (B, L), got {tuple(logits.shape)} "
            f"and {tuple(targets.shape)}"
        )
    b, n, v = logits.shape
    loss = F.cross_entropy(
        logits.reshape(b * n, v),
        targets.reshape(b * n),
        ignore_index=pad_id,
        label_smoothing=label_smoothing,
        reduction="none",
    ).view(b, n)  # (B, L), 0 where ignored
    if reduction == "none":
        return loss
    if reduction == "sentence_sum":
        return loss.sum(dim=1)
    if reduction == "sentence_mean":
        return loss.sum(dim=1).mean()
    if reduction == "sum":
        return loss.sum()
    n_tokens = (targets != pad_id).sum().clamp(min=1)
    return loss.sum() / n_tokens


# Rows per block in :func:`linear_cross_entropy`: blocks of about this many logits (8 MiB of
# float32), small enough for glibc to serve from the heap (no fresh pages per block) and
# large enough to keep the products efficient.
_BLOCK_ELEMENTS = 1 << 21


class _LinearCrossEntropy(torch.autograd.Function):
    """Summed label-smoothed cross-entropy of ``x W^T + b``; gradients made in the forward."""

    @staticmethod
    def forward(ctx, x, weight, bias, targets, ignore_index: int, eps: float, rows: int, grad_mode: bool):
        # x (N, K), weight (V, K), bias (V,) or None, targets (N,) -> scalar sum over rows.
        # needs_input_grad is also set under no_grad: grad_mode is the caller's grad mode.
        n, v = x.shape[0], weight.shape[0]
        want_x = grad_mode and ctx.needs_input_grad[0]
        want_w = grad_mode and ctx.needs_input_grad[1]
        want_b = grad_mode and bias is not None and ctx.needs_input_grad[2]
        grad = want_x or want_w or want_b
        total = x.new_zeros(())
        gx = torch.empty_like(x) if want_x else None  # (N, K)
        gw = None
        gb = torch.zeros_like(bias) if want_b else None  # (V,)
        w_t = weight.t().contiguous() if want_x else None  # (K, V), for dx = g W
        g_t = x.new_empty(v, n) if want_w else None  # (V, N): g^T, for dW = g^T x at the end
        for lo in range(0, n, rows):
            xc, yc = x[lo : lo + rows], targets[lo : lo + rows]  # (c, K), (c,)
            z = mm_t(xc, weight, bias)  # (c, V) logits
            keep = yc != ignore_index  # (c,)
            y = torch.where(keep, yc, 0).unsqueeze(1)  # (c, 1)
            lse = torch.logsumexp(z, dim=1, keepdim=True)  # (c, 1)
            z_y = z.gather(1, y)  # (c, 1)
            row = lse - (1.0 - eps) * z_y  # (c, 1)
            if eps:
                row = row - eps * z.mean(dim=1, keepdim=True)
            total = total + row.squeeze(1)[keep].sum()
            if not grad:
                continue
            # d row / d z = softmax(z) - (1 - eps) onehot(y) - eps / V; 0 on ignored rows
            g = z.sub_(lse).exp_()  # (c, V), in place over the logits
            if eps:
                g.sub_(eps / v)
            g.scatter_add_(1, y, g.new_full(y.shape, -(1.0 - eps)))
            g.mul_(keep.unsqueeze(1).to(g.dtype))
            if want_x:
                gx[lo : lo + rows] = mm_t(g, w_t)  # (c, K)
            if want_w:
                g_t[:, lo : lo + rows] = g.t()
            if want_b:
                gb.add_(g.sum(0))
        if want_w:  # one product over all rows (per-block products accumulated into dW
            # were slower: MKL's addmm_, or oneDNN plus an add, in a check on the dev CPU)
            gw = mm_t(g_t, x.t())  # (V, K)
        ctx.save_for_backward(gx, gw, gb)
        return total

    @staticmethod
    def backward(ctx, grad_total):
        gx, gw, gb = ctx.saved_tensors
        scale = lambda t: None if t is None else t * grad_total  # noqa: E731
        return scale(gx), scale(gw), scale(gb), None, None, None, None, None


def linear_cross_entropy(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    targets: Tensor,
    pad_id: int = 0,
    label_smoothing: float = 0.0,
    reduction: str = "token_mean",
    block_rows: int | None = None,
) -> Tensor:
    """``sequence_cross_entropy(linear(x, weight, bias), targets, ...)`` without the logits.

    Same value as the unfused loss (to float32 rounding) and the same gradients for ``x``,
    ``weight`` and ``bias``.  The rows are processed ``block_rows`` at a time (default:
    blocks of about 2^21 logits); in each block the logits are made, their log-sum-exp taken,
    and, when a gradient is wanted, the logits are turned in place into
    ``softmax - (1 - eps) onehot - eps / V``, multiplied into ``dx`` at once and kept
    transposed for one ``dW = g^T x`` product after the last block.  The backward only scales
    these by the incoming gradient, so the result is differentiable once, and the gradient
    work is done in the forward (skipped when no input requires a gradient or grad mode is
    off).  Off the CPU and under CPU autocast it computes the unfused loss instead (the fused
    path is measured on the CPU only).

    What it saves: the log-softmax of the whole (N, V) logits, its backward, the zero-filled
    one-hot gradient and the sum of the two gradients, each a pass over N x V floats in fresh
    memory (arrays of more than 32 MiB come from ``mmap`` even with the trainer's malloc
    setting).  Measured on the dev CPU (``benchmarks/kernel_speed.py``): 1.22x / 1.37x for the
    translation output layer (1995 x 512 x 7999, 1 / 2 threads), but 0.88x / 0.80x for the
    PTB LM's (700 x 400 x 10000), so the translation decoder uses it
    (:meth:`~seqkit.nn.decoder.AttentionalDecoder.token_loss`) and the LM does not.

    Args:
        x: (..., K) float, the inputs of the output projection (after any dropout).
        weight: (V, K); bias: (V,) or None.
        targets: (...) long, ``pad_id`` where ignored.
        pad_id, label_smoothing: as in :func:`sequence_cross_entropy`.
        reduction: ``"sum"`` or ``"token_mean"`` (the total over the real targets).
        block_rows: rows per block (>= 1).

    Returns a scalar.
    """
    if reduction not in ("sum", "token_mean"):
        raise ValueError(f"reduction must be 'sum' or 'token_mean', got {reduction!r}")
    if x.shape[:-1] != targets.shape:
        raise ValueError(
            f"expected x (..., K) and targets (...), got {tuple(x.shape)} and {tuple(targets.shape)}"
        )
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    if block_rows is not None and block_rows < 1:
        raise ValueError(f"block_rows must be >= 1, got {block_rows}")
    x2 = x.reshape(1, -1, x.shape[-1])  # (1, N, K)
    y = targets.reshape(1, -1)  # (1, N)
    if x.device.type != "cpu" or torch.is_autocast_enabled("cpu"):  # measured on the CPU only
        return sequence_cross_entropy(linear(x2, weight, bias), y, pad_id, label_smoothing, reduction)
    rows = block_rows or max(1, _BLOCK_ELEMENTS // weight.shape[0])
    total = _LinearCrossEntropy.apply(
        x2[0].contiguous(), weight, bias, y[0], pad_id, float(label_smoothing), rows,
        torch.is_grad_enabled(),
    )
    if reduction == "sum":
        return total
    return total / (y != pad_id).sum().clamp(min=1)
