"""Adversarial perturbation of input vectors (Miyato et al. 2017).

Miyato, Dai and Goodfellow, "Adversarial Training Methods for Semi-Supervised Text
Classification" (ICLR 2017): the adversarial example of a text is its sequence of word vectors
moved by ``r = eps * g / ||g||_2`` where ``g`` is the gradient of the loss with respect to those
vectors and the norm is taken over the whole sequence; training adds the loss of the perturbed
sequence to the clean loss.  Miyato et al. normalise the embeddings so that one absolute
``eps`` fits every word; here ``relative=True`` (the default) instead scales ``eps`` by the norm
of each sequence's own vectors, which does the same job without touching the embeddings.
"""

from __future__ import annotations

import torch


def adversarial_perturbation(
    grad: torch.Tensor,
    x: torch.Tensor,
    mask: torch.Tensor,
    eps: float,
    relative: bool = True,
) -> torch.Tensor:
    """The fast-gradient perturbation of each sequence, zero at padding.

    Args:
        grad: (B, T, D) gradient of the loss with respect to ``x``.
        x: (B, T, D) the input vectors (only their norm is used, with ``relative``).
        mask: (B, T) bool, True at real positions.
        eps: size of the perturbation: ``||r_b||_2 = eps`` over the real positions of
            sequence ``b``, or ``eps * ||x_b||_2`` with ``relative``.
        relative: scale by the norm of the sequence's own vectors.

    Returns:
        (B, T, D) detached perturbation ``r``.
    """
    m = mask.unsqueeze(-1).to(grad.dtype)  # (B, T, 1)
    g = grad.detach() * m
    g_norm = g.flatten(1).norm(dim=1).clamp_min(1e-12)  # (B,)
    scale = torch.full_like(g_norm, eps)
    if relative:
        scale = scale * (x.detach() * m).flatten(1).norm(dim=1)  # (B,)
    return g * (scale / g_norm).view(-1, 1, 1)  # (B, T, D)
