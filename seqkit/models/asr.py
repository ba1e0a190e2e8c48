"""Speech recognition models: CTC, Listen-Attend-Spell, and joint CTC/attention, from ``seqkit.nn``.

::

    features (B, T, F) -> SpecAugment (training) -> front end (frame stacking / 2-D conv)
        -> encoder: flat BiLSTM stack (DeepSpeech-like) or pyramidal BiLSTM (LAS listener)
        -> enc (B, T', D)
    CTC:       CTCHead(enc) -> log-probs (B, T', V)          (Graves et al. 2006)
    attention: AttentionalDecoder(enc), location-aware attention (Chorowski et al. 2015),
               input feeding, label smoothing                (Chan et al. 2016, the speller)
    loss = ctc_weight * CTC + (1 - ctc_weight) * attention   (Kim, Hori & Watanabe 2017,
           "Joint CTC-Attention based End-to-End Speech Recognition using Multi-task Learning")

``ctc_weight = 1`` is a pure CTC model (no decoder is built), ``0`` a pure LAS model (no CTC
head).  One vocabulary serves both: id ``blank`` (= the padding id) is the CTC blank, BOS and
EOS are the decoder's start and end symbols.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from ..nn.ctc import CTCHead
from ..nn.decoder import AttentionalDecoder
from ..nn.dropout import Dropout
from ..nn.frontend import ConvSubsampling, SpecAugment, stack_frames, stacked_lengths
from ..nn.losses import sequence_cross_entropy
from ..nn.pyramidal import PyramidalEncoder
from ..nn.rnn import RNNEncoder
from ..search.state import State


def pyramid_reductions(enc_layers: int, reductions: int | None) -> int:
    """Time-halving layers of a pyramidal encoder (``None``: all but the first layer)."""
    return enc_layers - 1 if reductions is None else reductions


def time_reduction(front: str, stack: int, encoder: str, enc_layers: int, reductions: int | None) -> int:
    """Input frames per encoder frame: the front end's (stack k, conv 4) times the pyramid's."""
    k = stack if front == "stack" else 4 if front == "conv" else 1
    return k * 2 ** pyramid_reductions(enc_layers, reductions) if encoder == "pyramidal" else k


class ASRModel(nn.Module):
    """Encoder with a CTC head and/or an attentional speller.

    Batch keys: ``feats`` (B, T, F) float, ``feat_lengths`` (B,) long; for training
    ``targets`` (B, S) label ids (``pad_id`` past ``target_lengths``), ``target_lengths``
    (B,), ``tgt_in`` (B, S + 1) ``[BOS, y]`` and ``tgt_out`` (B, S + 1) ``[y, EOS]``.

    Args:
        input_size: F.  vocab_size: V (blank/pad, unk, BOS, EOS and the units).
        front: ``"none"``, ``"stack"`` (``stack`` frames, ``stack``-fold shorter) or
            ``"conv"`` (:class:`~seqkit.nn.frontend.ConvSubsampling`, 4x).
        encoder: ``"blstm"``: ``enc_layers`` BiLSTM layers; ``"pyramidal"``: one BiLSTM,
            ``reductions`` pyramid layers (default ``enc_layers - 1``), each halving the time
            axis, and BiLSTM layers up to ``enc_layers`` in all.
        enc_hidden: units per direction.  ctc_weight: the multi-task weight (see module doc).
        dec_hidden / emb_dim / dec_layers / attention: the speller (used when
            ``ctc_weight < 1``).
    """

    def __init__(
        self,
        input_size: int,
        vocab_size: int,
        front: Literal["none", "stack", "conv"] = "stack",
        stack: int = 3,
        conv_channels: int = 32,
        encoder: Literal["blstm", "pyramidal"] = "blstm",
        enc_hidden: int = 256,
        enc_layers: int = 4,
        reductions: int | None = None,
        dropout: float = 0.2,
        ctc_weight: float = 1.0,
        emb_dim: int = 128,
        dec_hidden: int = 256,
        dec_layers: int = 1,
        attention: str = "location",
        label_smoothing: float = 0.1,
        specaugment: SpecAugment | None = None,
        pad_id: int = 0,
    ):
        super().__init__()
        if not 0.0 <= ctc_weight <= 1.0:
            raise ValueError(f"ctc_weight must be in [0, 1], got {ctc_weight}")
        if front not in ("none", "stack", "conv") or encoder not in ("blstm", "pyramidal"):
            raise ValueError(f"unknown front {front!r} or encoder {encoder!r}")
        self.front, self.stack, self.encoder_kind = front, stack, encoder
        self.ctc_weight, self.label_smoothing, self.pad_id = ctc_weight, label_smoothing, pad_id
        self.specaugment = specaugment
        if front == "conv":
            self.conv = ConvSubsampling(input_size, conv_channels, 2 * enc_hidden)
            size = self.conv.output_size
        else:
            size = input_size * (stack if front == "stack" else 1)
        if encoder == "blstm":
            self.encoder = RNNEncoder(size, enc_hidden, enc_layers, True, "lstm", dropout)
            self.top = None
        else:
            k = pyramid_reductions(enc_layers, reductions)
            if not 0 <= k <= enc_layers - 1:
                raise ValueError(f"reductions must be in [0, enc_layers - 1], got {k}")
            self.encoder = PyramidalEncoder(size, enc_hidden, k, dropout)
            rest = enc_layers - 1 - k
            self.top = RNNEncoder(2 * enc_hidden, enc_hidden, rest, True, "lstm", dropout) if rest else None
        self.reduction = time_reduction(front, stack, encoder, enc_layers, reductions)
        self.drop = Dropout(dropout)
        d = 2 * enc_hidden
        self.ctc = CTCHead(d, vocab_size, blank=pad_id) if ctc_weight > 0 else None
        self.decoder = None
        if ctc_weight < 1:
            self.decoder = AttentionalDecoder(
                vocab_size, emb_dim, dec_hidden, d, attention=attention, num_layers=dec_layers,
                input_feeding=True, dropout=dropout, pad_id=pad_id, bridge=False,
            )

    def encoded_lengths(self, lengths: Tensor) -> Tensor:
        """Encoder frames for ``lengths`` input frames: ``ceil(lengths / reduction)`` (each
        stage takes a ceiling, and nested ceilings of integer divisions compose)."""
        return stacked_lengths(torch.as_tensor(lengths), self.reduction)

    def encode(self, feats: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(enc (B, T', 2 enc_hidden), enc_lengths (B,)), zero past each length."""
        x = self.specaugment(feats) if self.specaugment is not None else feats
        if self.front == "stack":
            x, lengths = stack_frames(x, lengths, self.stack)  # (B, T/k, kF)
        elif self.front == "conv":
            x, lengths = self.conv(x, lengths)  # (B, T/4, D)
        out = self.encoder(self.drop(x), lengths)
        if self.encoder_kind == "pyramidal":
            enc, lengths = out  # (B, T'/2^r, 2H)
            if self.top is not None:
                enc = self.top(self.drop(enc), lengths)[0]  # (B, T'/2^r, 2H)
        else:
            enc = out[0]  # (B, T', 2H)
        return self.drop(enc), lengths

    def ctc_log_probs(self, enc: Tensor, enc_lengths: Tensor) -> Tensor:
        """(B, T', V) CTC log-posteriors (zero rows at padding)."""
        if self.ctc is None:
            raise ValueError("this model has no CTC head (ctc_weight = 0)")
        return self.ctc(enc, enc_lengths)

    def start(self, enc: Tensor, enc_lengths: Tensor) -> tuple[nn.Module, State]:
        """The speller and its initial search state (B rows)."""
        if self.decoder is None:
            raise ValueError("this model has no attention decoder (ctc_weight = 1)")
        mask = torch.arange(enc.size(1), device=enc.device) < enc_lengths.to(enc.device).unsqueeze(1)
        return self.decoder, self.decoder.init_state(enc, mask)

    def forward(self, batch: dict) -> dict:
        """``{"loss", "n", "ctc_loss", "att_loss", "weights"}`` (token-mean losses; ``n``
        target tokens, EOS included when there is a decoder)."""
        enc, enc_lengths = self.encode(batch["feats"], batch["feat_lengths"])
        out: dict = {}
        loss = enc.new_zeros(())
        n = int(batch["target_lengths"].sum())
        if self.ctc is not None:
            lp = self.ctc(enc, enc_lengths)  # (B, T', V)
            ctc = self.ctc.loss(lp, enc_lengths, batch["targets"], batch["target_lengths"], reduction="sum")
            ctc = ctc / max(n, 1)
            out["ctc_loss"] = ctc.detach()
            loss = loss + self.ctc_weight * ctc
        if self.decoder is not None:
            mask = torch.arange(enc.size(1), device=enc.device) < enc_lengths.unsqueeze(1)
            dec = self.decoder(batch["tgt_in"], enc, mask)
            att = sequence_cross_entropy(dec["logits"], batch["tgt_out"], self.pad_id, self.label_smoothing)
            out["att_loss"] = att.detach()
            out["weights"] = dec["weights"]
            loss = loss + (1 - self.ctc_weight) * att
            n = int((batch["tgt_out"] != self.pad_id).sum())
        out.update(loss=loss, n=n)
        return out
