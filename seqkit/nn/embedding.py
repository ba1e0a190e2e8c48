"""Word representations: a character CNN for word-internal features.

:class:`CharCNN` follows Ma & Hovy 2016 ("End-to-end Sequence Labeling via
Bi-directional LSTM-CNNs-CRF") and Kim et al. 2016: embed the characters of each
word, convolve, max-pool over the characters.  It gives unseen words a useful
representation from their spelling.
"""

from __future__ import annotations

import torch
from torch import nn


class CharCNN(nn.Module):
    """Character CNN word features.

    Shapes:
        chars: (B, T, C) long character ids, ``pad_id`` where a word is shorter than C
        (and for padded words).
        returns: (B, T, num_filters) float; padded characters never contribute.
    """

    def __init__(
        self,
        num_chars: int,
        char_dim: int = 32,
        num_filters: int = 64,
        kernel_size: int = 3,
        pad_id: int = 0,
    ):
        super().__init__()
        self.pad_id = pad_id
        self.embed = nn.Embedding(num_chars, char_dim, padding_idx=pad_id)
        self.conv = nn.Conv1d(char_dim, num_filters, kernel_size, padding=kernel_size // 2)
        self.output_size = num_filters

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        b, t, c = chars.shape
        flat = chars.reshape(b * t, c)  # (B*T, C)
        h = self.conv(self.embed(flat).transpose(1, 2))  # (B*T, F, C)
        mask = (flat != self.pad_id).unsqueeze(1)  # (B*T, 1, C)
        h = h.masked_fill(~mask, float("-inf")).amax(dim=2)  # (B*T, F)
        h = torch.where(torch.isfinite(h), h, torch.zeros_like(h))  # all-pad words -> 0
        return h.reshape(b, t, -1)  # (B, T, F)
