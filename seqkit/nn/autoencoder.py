"""Sequence-to-sequence autoencoder for audio segments (Audio Word2Vec).

Chung, Wu, Shen, Lee & Lee 2016, "Audio Word2Vec: Unsupervised Learning of Audio Segment
Representations using Sequence-to-sequence Autoencoder" (Interspeech), Section 2: an encoder
RNN reads the acoustic features ``x_1 .. x_T`` of a segment and its final state is the
fixed-size representation ``z``; a decoder RNN initialised from ``z`` reconstructs
``x_1 .. x_T``; the loss is the mean squared error.  The *denoising* variant (DSA) corrupts
the input and keeps the clean target (Vincent et al. 2008, "Extracting and Composing Robust
Features with Denoising Autoencoders", ICML).

Here::

    x (B, T, F) -> [corrupt: Gaussian noise, random feature masking; training only, DSA]
      -> RNNEncoder (uni/bidirectional, deep) or PyramidalEncoder
      -> final states [forward at T-1; backward at 0]  (B, 2H or H)
      -> Linear -> z (B, E)                                 the embedding
    z -> Linear + tanh -> initial (h, c) of an LSTM decoder whose input at every step is z
      (no teacher forcing: all it knows of the segment is z) -> Linear -> y (B, T, F)
    loss = masked MSE(y, x)  (optionally of x reversed within each length)

Decoder outputs at step ``t`` depend only on ``z`` and steps ``< t``, so padding past a
segment's length never changes its real outputs; the loss ignores padded frames.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seqkit.data.batching import lengths_to_mask
from seqkit.nn.dense import Linear
from seqkit.nn.dropout import Dropout
from seqkit.nn.pyramidal import PyramidalEncoder
from seqkit.nn.rnn import RNNEncoder, reverse_padded

__all__ = ["SequenceAutoencoder", "corrupt_features"]


def corrupt_features(x: Tensor, noise_std: float = 0.0, mask_prob: float = 0.0,
                     generator: torch.Generator | None = None) -> Tensor:
    """``x`` (B, T, F) with Gaussian noise of std ``noise_std`` and each value zeroed with
    probability ``mask_prob`` (masking noise of Vincent et al. 2008)."""
    if noise_std > 0:
        x = x + noise_std * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    if mask_prob > 0:
        keep = torch.rand(x.shape, generator=generator, device=x.device) >= mask_prob
        x = x * keep
    return x


class SequenceAutoencoder(nn.Module):
    """SA / DSA of Chung et al. 2016 (see the module docstring).

    Args:
        input_size: F, features per frame (the paper: 13 MFCCs).
        hidden_size: H, units per encoder direction and of the decoder LSTM.
        emb_dim: E, the embedding size (the paper: 100).
        num_layers: encoder layers (for ``reductions > 0``: the pyramid's layers are
            1 + ``reductions``, and this is ignored).
        bidirectional: bidirectional encoder.
        reductions: > 0 uses a :class:`~seqkit.nn.pyramidal.PyramidalEncoder` with that many
            time-halving layers (always bidirectional).
        noise_std / mask_prob: input corruption in training mode (DSA); 0 / 0 is the SA.
        reverse_target: reconstruct the segment backwards (the decoder starts from the end
            the encoder saw last).
        dropout: between encoder layers and on ``z`` before the decoder.

    Shapes: ``x`` (B, T, F), ``lengths`` (B,) long, 1 <= lengths <= T.
    :meth:`embed` -> (B, E); :meth:`forward` -> ``{"loss", "n", "embedding", "output"}``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int = 128,
        emb_dim: int = 100,
        num_layers: int = 1,
        bidirectional: bool = True,
        reductions: int = 0,
        noise_std: float = 0.0,
        mask_prob: float = 0.0,
        reverse_target: bool = False,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.input_size, self.hidden_size, self.emb_dim = input_size, hidden_size, emb_dim
        self.noise_std, self.mask_prob, self.reverse_target = noise_std, mask_prob, reverse_target
        self.pyramidal = reductions > 0
        if self.pyramidal:
            self.encoder = PyramidalEncoder(input_size, hidden_size, reductions, dropout)
            self.bidirectional = True
        else:
            self.encoder = RNNEncoder(input_size, hidden_size, num_layers, bidirectional, "lstm", dropout)
            self.bidirectional = bidirectional
        final = hidden_size * (2 if self.bidirectional else 1)
        self.to_embedding = Linear(final, emb_dim)
        self.drop = Dropout(dropout)
        self.bridge = Linear(emb_dim, 2 * hidden_size)  # initial (h, c) of the decoder
        self.decoder = nn.LSTM(emb_dim, hidden_size, batch_first=True)
        self.out = Linear(hidden_size, input_size)

    def embed(self, x: Tensor, lengths: Tensor) -> Tensor:
        """The segment embeddings ``z``: (B, T, F) -> (B, E)."""
        if self.pyramidal:
            out, lengths = self.encoder(x, lengths)  # (B, T / 2^r, 2H)
        else:
            out, _ = self.encoder(x, lengths)  # (B, T, H * dirs), zero at padding
        lengths = lengths.to(out.device)
        rows = torch.arange(out.size(0), device=out.device)
        h = self.hidden_size
        last = out[rows, lengths - 1, :h]  # forward direction after the last real frame
        if self.bidirectional:
            last = torch.cat([last, out[:, 0, h:]], dim=-1)  # backward direction after frame 0
        return self.to_embedding(last)  # (B, E)

    def decode(self, z: Tensor, steps: int) -> Tensor:
        """Reconstruction (B, steps, F) from embeddings ``z`` (B, E)."""
        h0, c0 = torch.tanh(self.bridge(self.drop(z))).chunk(2, dim=-1)  # (B, H) each
        inputs = self.drop(z).unsqueeze(1).expand(-1, steps, -1)  # (B, steps, E)
        out, _ = self.decoder(inputs, (h0.unsqueeze(0).contiguous(), c0.unsqueeze(0).contiguous()))
        return self.out(out)  # (B, steps, F)

    def forward(self, x: Tensor, lengths: Tensor) -> dict:
        """Masked mean squared reconstruction error of the clean ``x`` (per frame value)."""
        inp = corrupt_features(x, self.noise_std, self.mask_prob) if self.training else x
        z = self.embed(inp, lengths)
        y = self.decode(z, x.size(1))  # (B, T, F)
        target = reverse_padded(x, lengths) if self.reverse_target else x
        mask = lengths_to_mask(lengths.to(x.device), x.size(1)).unsqueeze(-1)  # (B, T, 1)
        n = int(lengths.sum()) * x.size(2)
        loss = ((y - target) ** 2 * mask).sum() / max(n, 1)
        return {"loss": loss, "n": int(lengths.sum()), "embedding": z, "output": y}
