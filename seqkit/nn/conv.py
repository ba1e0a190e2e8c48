"""Masked convolution + max-over-time pooling over a padded batch of word vectors.

:class:`MaskedConvMaxPool` is the feature extractor of Kim 2014 ("Convolutional Neural
Networks for Sentence Classification", EMNLP; after Collobert et al. 2011, "Natural
Language Processing (Almost) from Scratch"): several filter widths, a ReLU feature map
per filter, and the maximum of each map over time, concatenated into one fixed-size
sentence vector.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MaskedConvMaxPool"]


class MaskedConvMaxPool(nn.Module):
    """Convolutions of several widths over time, then max-over-time pooling (Kim 2014).

    Every sequence is convolved as if it were alone and zero-padded by ``w - 1`` on both
    sides (a "wide" convolution, Kalchbrenner et al. 2014, as Kim's code pads each sentence),
    so a sentence shorter than the widest filter still gets features.  Inputs at padded
    positions are replaced by zeros first, and output windows that hold no real position
    (``t > len + w - 2`` in the wide output) are excluded from the maximum: batch padding
    never wins the max, and a padded batch gives exactly the features of each sequence
    alone.

    Args:
        input_size: D, features per position (the word-vector size).
        widths: filter widths (Kim: 3, 4, 5).
        num_filters: feature maps per width (Kim: 100).
        activation: ``"relu"`` (Kim), ``"tanh"`` or ``"none"``, applied before the max.

    Shapes:
        x: (B, T, D) float; mask: (B, T) bool, True at real positions (a non-empty prefix).
        returns: (B, len(widths) * num_filters); width-major (the maps of ``widths[0]`` first).
    """

    def __init__(
        self,
        input_size: int,
        widths: Sequence[int] = (3, 4, 5),
        num_filters: int = 100,
        activation: str = "relu",
    ):
        super().__init__()
        widths = [int(w) for w in widths]
        if not widths or min(widths) < 1:
            raise ValueError(f"widths must be a non-empty list of positive ints, got {widths}")
        if activation not in ("relu", "tanh", "none"):
            raise ValueError(f"activation must be relu, tanh or none, got {activation!r}")
        self.widths = widths
        self.activation = activation
        self.convs = nn.ModuleList(nn.Conv1d(input_size, num_filters, w) for w in widths)
        self.output_size = len(widths) * num_filters

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        lengths = mask.sum(1)  # (B,)
        if int(lengths.min()) < 1:
            raise ValueError("MaskedConvMaxPool: every sequence needs at least one real position")
        x = x.masked_fill(~mask.unsqueeze(-1), 0.0).transpose(1, 2)  # (B, D, T)
        feats = []
        for w, conv in zip(self.widths, self.convs):
            h = conv(F.pad(x, (w - 1, w - 1)))  # (B, F, T + w - 1)
            if self.activation == "relu":
                h = torch.relu(h)
            elif self.activation == "tanh":
                h = torch.tanh(h)
            steps = torch.arange(h.size(2), device=h.device)  # (T + w - 1,)
            valid = steps.unsqueeze(0) < (lengths + w - 1).unsqueeze(1)  # (B, T + w - 1)
            h = h.masked_fill(~valid.unsqueeze(1), float("-inf"))
            feats.append(h.amax(dim=2))  # (B, F)
        return torch.cat(feats, dim=1)  # (B, len(widths) * F)
