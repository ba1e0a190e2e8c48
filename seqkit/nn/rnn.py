"""Masked recurrent encoders over padded batches.

:class:`RNNEncoder` runs ``torch.nn.LSTM/GRU/RNN`` (the fused fast path on CPU and
GPU) over a packed batch, so padded positions never influence real positions in
either direction; padded output positions are exactly zero.

References: Hochreiter & Schmidhuber 1997 (LSTM); Cho et al. 2014 (GRU);
Elman 1990 (simple RNN); Schuster & Paliwal 1997 (bidirectional RNN).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

_CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


class RNNEncoder(nn.Module):
    """Deep (bi)directional RNN over a padded batch.

    Args:
        input_size: D, features per input position.
        hidden_size: H, units per direction.
        num_layers: stacked layers, with ``dropout`` between them.
        bidirectional: concatenate forward and backward states (output 2H).
        cell: ``"lstm"``, ``"gru"`` or ``"rnn"`` (Elman, tanh).

    Shapes:
        x: (B, T, D) float; lengths: (B,) long, 1 <= lengths <= T.
        returns: outputs (B, T, H * directions), zero at padded positions, and the
        final states as ``torch.nn.LSTM`` returns them (for LSTM a tuple (h, c), each
        (layers * directions, B, H)).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = True,
        cell: Literal["lstm", "gru", "rnn"] = "lstm",
        dropout: float = 0.0,
    ):
        super().__init__()
        if cell not in _CELLS:
            raise ValueError(f"cell must be one of {sorted(_CELLS)}, got {cell!r}")
        self.rnn = _CELLS[cell](
            input_size,
            hidden_size,
            num_layers=num_layers,
            bidirectional=bidirectional,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.output_size = hidden_size * (2 if bidirectional else 1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor):
        total = x.size(1)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, state = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=total)  # (B, T, H*dirs)
        return out, state
