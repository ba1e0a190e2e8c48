"""Pyramidal bidirectional LSTM encoder (the "listener" of Listen, Attend and Spell).

Chan, Jaitly, Le & Vinyals 2016, "Listen, Attend and Spell: A Neural Network for Large
Vocabulary Conversational Speech Recognition" (ICASSP), section 3.1: a BLSTM layer, then
pyramid BLSTM layers whose input at step ``t`` is the *concatenation* of the previous
layer's outputs at steps ``2t`` and ``2t + 1``::

    h^j_t = pBLSTM(h^j_{t-1}, [h^{j-1}_{2t}; h^{j-1}_{2t+1}])

so every pyramid layer halves the time axis and doubles the input width, and ``k`` of them
shorten the sequence by ``2^k`` (the paper uses 3 on top of one BLSTM, 8x).

Odd lengths: a sequence of odd length ``L`` has no partner for its last frame; that frame
is paired with a **zero frame** (the padding value), ``[h_{L-1}; 0]``, so no real frame is
ever dropped (ESPnet's pyramid drops it; SpeechBrain pools instead of concatenating).  Each
reduction maps ``L -> ceil(L / 2)``, hence after ``k`` reductions

    L_k = ceil(L / 2^k)                    (:meth:`PyramidalEncoder.output_lengths`)

and the padded time axis ``T -> ceil(T / 2^k)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqkit.nn.dropout import Dropout
from seqkit.nn.rnn import RNNEncoder

__all__ = ["PyramidalEncoder", "concat_adjacent_frames"]


def concat_adjacent_frames(x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """Concatenate frames ``2t`` and ``2t + 1``: ``(B, T, F) -> (B, ceil(T / 2), 2F)``.

    ``out[b, t] = [x[b, 2t]; x[b, 2t + 1]]`` where a frame at or past ``lengths[b]`` counts
    as zero, so an odd-length sequence's last frame is paired with zeros and padded frames
    never leak into real ones.  Returns the new tensor and lengths ``ceil(lengths / 2)``.
    """
    batch, steps, feat = x.shape
    real = torch.arange(steps, device=x.device) < lengths.to(x.device).unsqueeze(1)  # (B, T)
    x = x.masked_fill(~real.unsqueeze(-1), 0.0)
    if steps % 2:
        x = F.pad(x, (0, 0, 0, 1))  # (B, T + 1, F): a zero partner for an odd last frame
    out = x.reshape(batch, x.size(1) // 2, 2 * feat)  # (B, ceil(T/2), 2F)
    return out, (lengths + 1) // 2


class PyramidalEncoder(nn.Module):
    """BLSTM followed by ``num_reductions`` pyramid BLSTM layers (Chan et al. 2016).

    Layer 0: ``RNNEncoder(input_size, hidden_size)``, one bidirectional layer.  Pyramid
    layer ``j = 1..k``: :func:`concat_adjacent_frames` of the previous outputs (width
    ``2 * 2H``) then a one-layer bidirectional :class:`~seqkit.nn.rnn.RNNEncoder`, so it
    keeps the encoder's fast path and masking guarantee.  ``dropout`` is applied to the
    input of every layer after the first.

    Args:
        input_size: D (e.g. filterbank features).
        hidden_size: H, units per direction; outputs are 2H wide.
        num_reductions: k >= 0 pyramid layers; the time axis shrinks by ``2^k``.
        dropout: between layers.
        cell: any ``RNNEncoder`` cell (``"lstm"`` as in the paper).

    Shapes:
        x: (B, T, D), lengths: (B,) long with 1 <= lengths <= T.
        returns outputs (B, ceil(T / 2^k), 2H), exactly zero past each new length, and the
        new lengths ``ceil(lengths / 2^k)`` (B,).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_reductions: int = 3,
        dropout: float = 0.0,
        cell: str = "lstm",
    ):
        super().__init__()
        if num_reductions < 0:
            raise ValueError(f"num_reductions must be >= 0, got {num_reductions}")
        self.num_reductions = num_reductions
        self.bottom = RNNEncoder(input_size, hidden_size, 1, True, cell)
        width = self.bottom.output_size
        self.pyramid = nn.ModuleList(
            RNNEncoder(2 * width, hidden_size, 1, True, cell) for _ in range(num_reductions)
        )
        self.dropout = Dropout(dropout)
        self.output_size = width

    @staticmethod
    def output_lengths(lengths: Tensor, num_reductions: int) -> Tensor:
        """``ceil(lengths / 2^k)``: the lengths after ``k`` reductions (also for ``T``)."""
        factor = 2**num_reductions
        return (torch.as_tensor(lengths) + factor - 1) // factor

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        h, _ = self.bottom(x, lengths)  # (B, T, 2H)
        for layer in self.pyramid:
            h, lengths = concat_adjacent_frames(self.dropout(h), lengths)  # (B, ceil(T/2), 4H)
            h, _ = layer(h, lengths)  # (B, ceil(T/2), 2H)
        return h, lengths
