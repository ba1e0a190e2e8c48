"""Joint slot tagging and intent detection.

A BiLSTM tagger with an intent head over a pooled sentence vector (Hakkani-Tür et al.
2016, "Multi-Domain Joint Semantic Frame Parsing using Bi-directional RNN-LSTM";
Liu & Lane 2016 for attention pooling), optionally with character-CNN word features
(Ma & Hovy 2016) and a linear-chain CRF output layer with BIO constraints
(Lample et al. 2016).  With ``slot_attention`` it is the attention BiRNN of Liu & Lane
(2016, "Attention-Based Recurrent Neural Network Models for Joint Intent Detection and Slot
Filling", Interspeech): each position's tag is predicted from its encoder state ``h_i`` and
an attention context ``c_i = sum_j a_ij h_j`` over the whole (masked) sentence.  Built from
:mod:`seqkit.nn` parts only.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from ..nn.attention import build_attention
from ..nn.crf import CRF
from ..nn.dense import Linear
from ..nn.dropout import Dropout
from ..nn.embedding import CharCNN
from ..nn.pooling import SequencePooling
from ..nn.rnn import RNNEncoder

IGNORE = -100  # tag id excluded from the loss (padding, labels unseen in training)


class JointTagger(nn.Module):
    """Slot tags (per token) + intent (per sentence).

    Batch keys (``forward``/``predict``):
        tokens (B, T) long, word ids, ``pad_id`` at padding;
        lengths (B,) long;
        chars (B, T, C) long, optional (needed when ``num_chars > 0``);
        tags (B, T) long, gold tag ids, ``IGNORE`` at padding (training only);
        intents (B,) long, gold intent ids, ``IGNORE`` if unknown (training only).

    ``forward`` returns ``{"loss", "n"}``: token-mean slot loss plus
    ``intent_weight`` × intent cross-entropy.
    """

    def __init__(
        self,
        vocab_size: int,
        num_tags: int,
        num_intents: int,
        emb_dim: int = 100,
        hidden_size: int = 200,
        num_layers: int = 1,
        cell: Literal["lstm", "gru", "rnn"] = "lstm",
        dropout: float = 0.3,
        word_dropout: float = 0.0,
        num_chars: int = 0,
        char_dim: int = 32,
        char_filters: int = 64,
        crf: bool = False,
        crf_constraints: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
        pooling: Literal["attention", "mean", "max"] = "attention",
        slot_attention: Literal["none", "additive", "general", "dot"] = "none",
        intent_weight: float = 1.0,
        pad_id: int = 0,
        unk_id: int = 1,
        char_pad_id: int = 0,
    ):
        super().__init__()
        self.pad_id, self.unk_id = pad_id, unk_id
        self.word_dropout = word_dropout
        self.intent_weight = intent_weight
        self.embed = nn.Embedding(vocab_size, emb_dim, padding_idx=pad_id)
        self.chars = CharCNN(num_chars, char_dim, char_filters, pad_id=char_pad_id) if num_chars else None
        in_dim = emb_dim + (self.chars.output_size if self.chars else 0)
        self.drop = Dropout(dropout)
        self.encoder = RNNEncoder(in_dim, hidden_size, num_layers, True, cell, dropout)
        h = self.encoder.output_size
        self.slot_attention = None
        if slot_attention != "none":
            self.slot_attention = build_attention(slot_attention, h, h)
        self.slot_out = Linear(2 * h if self.slot_attention is not None else h, num_tags)
        self.pool = SequencePooling(h, pooling)
        self.intent_out = Linear(h, num_intents)
        self.crf = None
        if crf:
            allowed, start, end = crf_constraints if crf_constraints is not None else (None, None, None)
            self.crf = CRF(num_tags, allowed, start, end)

    def encode(self, batch: dict):
        tokens, lengths = batch["tokens"], batch["lengths"]
        mask = tokens != self.pad_id  # (B, T)
        if self.training and self.word_dropout > 0:
            drop = (torch.rand(tokens.shape, device=tokens.device) < self.word_dropout) & mask
            tokens = tokens.masked_fill(drop, self.unk_id)
        x = self.embed(tokens)  # (B, T, E)
        if self.chars is not None:
            x = torch.cat([x, self.chars(batch["chars"])], dim=-1)  # (B, T, E + F)
        h, _ = self.encoder(self.drop(x), lengths)  # (B, T, 2H)
        h = self.drop(h)
        feats = h if self.slot_attention is None else torch.cat([h, self._contexts(h, mask)], -1)
        emissions = self.slot_out(feats)  # (B, T, K)
        pooled, attn = self.pool(h, mask)  # (B, 2H)
        return emissions, self.intent_out(pooled), mask, attn

    def _contexts(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Liu & Lane slot attention: one query per position over all positions.

        h: (B, T, D), mask: (B, T) -> contexts (B, T, D), zero at padded positions.
        """
        b, t, d = h.shape
        keys = h.repeat_interleave(t, dim=0)  # (B * T, T, D): sentence b repeated per query
        kmask = mask.repeat_interleave(t, dim=0)  # (B * T, T)
        context, _ = self.slot_attention(h.reshape(b * t, d), keys, kmask)  # (B * T, D)
        return context.view(b, t, d) * mask.unsqueeze(-1)

    def forward(self, batch: dict) -> dict:
        emissions, intent_logits, mask, _ = self.encode(batch)
        tags = batch["tags"]
        n = int(mask.sum())
        if self.crf is not None:
            known = mask & (tags != IGNORE)
            slot_loss = self.crf(emissions, tags.masked_fill(~known, 0), mask, reduction="sum") / max(n, 1)
        else:
            slot_loss = F.cross_entropy(emissions.flatten(0, 1), tags.flatten(), ignore_index=IGNORE)
        intent_loss = F.cross_entropy(intent_logits, batch["intents"], ignore_index=IGNORE)
        return {"loss": slot_loss + self.intent_weight * intent_loss, "n": n}

    @torch.no_grad()
    def predict(self, batch: dict) -> tuple[list[list[int]], torch.Tensor, torch.Tensor | None]:
        """Return (tag ids per sentence, intent ids (B,), attention weights (B, T) or None)."""
        emissions, intent_logits, mask, attn = self.encode(batch)
        if self.crf is not None:
            paths = self.crf.decode(emissions, mask)
        else:
            best = emissions.argmax(-1)
            paths = [best[i, : int(n)].tolist() for i, n in enumerate(batch["lengths"])]
        return paths, intent_logits.argmax(-1), attn
