"""Masked sequence losses.

:func:`sequence_cross_entropy` is token-level cross-entropy over a padded batch of target
sequences, with optional label smoothing (Szegedy, Vanhoucke, Ioffe, Shlens & Wojna 2016,
"Rethinking the Inception Architecture for Computer Vision", CVPR, Section 7; used for
sequence models by Vaswani et al. 2017, "Attention Is All You Need").
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["sequence_cross_entropy"]

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
