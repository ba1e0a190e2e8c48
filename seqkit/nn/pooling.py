"""Masked pooling of a sequence into one vector (many-to-one models).

``attention`` pooling is the self-attentive sum of Lin et al. 2017 / Yang et al. 2016
(one learned query over tanh-projected states); ``mean`` and ``max`` ignore padding.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from seqkit.nn.dense import Linear


class SequencePooling(nn.Module):
    """Pool (B, T, H) states into (B, H) under a (B, T) bool mask of real positions.

    ``forward`` returns ``(pooled, weights)``; ``weights`` is (B, T) for attention
    pooling (zero at padded positions; rows sum to 1) and ``None`` otherwise.
    """

    def __init__(self, hidden_size: int, mode: Literal["attention", "mean", "max"] = "attention"):
        super().__init__()
        if mode not in ("attention", "mean", "max"):
            raise ValueError(f"pooling mode must be attention, mean or max, got {mode!r}")
        self.mode = mode
        if mode == "attention":
            self.proj = Linear(hidden_size, hidden_size)
            self.query = Linear(hidden_size, 1, bias=False)

    def forward(self, h: torch.Tensor, mask: torch.Tensor):
        if self.mode == "mean":
            m = mask.unsqueeze(-1).to(h.dtype)
            return (h * m).sum(1) / m.sum(1).clamp_min(1.0), None
        if self.mode == "max":
            return h.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1), None
        scores = self.query(torch.tanh(self.proj(h))).squeeze(-1)  # (B, T)
        weights = scores.masked_fill(~mask, float("-inf")).softmax(-1)  # (B, T)
        return torch.bmm(weights.unsqueeze(1), h).squeeze(1), weights  # (B, H)
