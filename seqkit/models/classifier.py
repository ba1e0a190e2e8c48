"""Single-sentence classifiers (many-to-one): a BiLSTM with pooling, and Kim's CNN.

* :class:`RNNClassifier`: word embeddings -> (Bi)LSTM -> pooling (self-attention, max or
  mean) -> MLP -> class logits.  Attention pooling is the self-attentive sum of Yang et al.
  2016 / Lin et al. 2017 (:class:`~seqkit.nn.pooling.SequencePooling`) and returns its
  weights, so they can be inspected; max pooling over BiLSTM states is the encoder of
  Conneau et al. 2017 ("Supervised Learning of Universal Sentence Representations from
  Natural Language Inference Data").
* :class:`CNNClassifier`: Kim 2014 ("Convolutional Neural Networks for Sentence
  Classification", EMNLP), CNN-rand: word embeddings -> convolutions of widths 3/4/5 with
  100 maps each, ReLU, max-over-time pooling (:class:`~seqkit.nn.conv.MaskedConvMaxPool`)
  -> dropout 0.5 -> linear.

Regularisation shared by both: ``word_dropout`` replaces a real token by ``<unk>`` with that
probability (Iyyer et al. 2015, "Deep Unordered Composition Rivals Syntactic Methods for Text
Classification", drop words; Bowman et al. 2016), ``embed_dropout`` drops whole word types
from the embedding matrix (Gal & Ghahramani 2016, :func:`~seqkit.nn.dropout.embedding_dropout`),
``input_dropout`` is elementwise dropout on the word vectors.  Built from :mod:`seqkit.nn`
parts only.

Batch keys: ``tokens`` (B, T) long with ``pad_id`` at padding, ``lengths`` (B,) long >= 1,
``labels`` (B,) long (training; ``IGNORE`` for an unknown label).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from ..nn.conv import MaskedConvMaxPool
from ..nn.dropout import embedding_dropout
from ..nn.pooling import SequencePooling
from ..nn.rnn import RNNEncoder

IGNORE = -100  # label id excluded from the loss (a label unseen in training)


class _Classifier(nn.Module):
    """Embedding with word/type/element dropout, the loss and ``predict``; subclasses encode."""

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        emb_dim: int,
        word_dropout: float,
        embed_dropout: float,
        input_dropout: float,
        label_smoothing: float,
        pad_id: int,
        unk_id: int,
    ):
        super().__init__()
        self.pad_id, self.unk_id = pad_id, unk_id
        self.num_classes = num_classes
        self.word_dropout, self.embed_dropout = word_dropout, embed_dropout
        self.label_smoothing = label_smoothing
        self.embed = nn.Embedding(vocab_size, emb_dim, padding_idx=pad_id)
        self.input_drop = nn.Dropout(input_dropout)

    def embed_tokens(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens (B, T) -> word vectors (B, T, E) and the (B, T) mask of real positions."""
        mask = tokens != self.pad_id  # (B, T)
        if self.training and self.word_dropout > 0:
            drop = (torch.rand(tokens.shape, device=tokens.device) < self.word_dropout) & mask
            tokens = tokens.masked_fill(drop, self.unk_id)
        x = embedding_dropout(
            tokens, self.embed.weight, self.embed_dropout, self.training, self.pad_id
        )
        return self.input_drop(x), mask  # (B, T, E)

    def encode(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(logits (B, C), attention weights (B, T) or None)."""
        raise NotImplementedError

    def forward(self, batch: dict) -> dict:
        logits, _ = self.encode(batch)
        loss = F.cross_entropy(
            logits, batch["labels"], ignore_index=IGNORE, label_smoothing=self.label_smoothing
        )
        return {"loss": loss, "n": int((batch["labels"] != IGNORE).sum())}

    @torch.no_grad()
    def predict(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(class probabilities (B, C), attention weights (B, T) or None)."""
        logits, attn = self.encode(batch)
        return logits.float().softmax(-1), attn


class RNNClassifier(_Classifier):
    """BiLSTM (or GRU/Elman) encoder + pooling + MLP.

    Args:
        pooling: ``attention`` (weights returned by :meth:`predict`), ``max`` or ``mean``.
        mlp_hidden: width of the hidden tanh layer of the classifier; 0: a linear layer.
        dropout: between RNN layers, on the pooled vector and in the MLP.

    Shapes: tokens (B, T) -> logits (B, C); attention (B, T), zero at padding.
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        emb_dim: int = 300,
        hidden_size: int = 300,
        num_layers: int = 1,
        cell: Literal["lstm", "gru", "rnn"] = "lstm",
        pooling: Literal["attention", "max", "mean"] = "attention",
        mlp_hidden: int = 0,
        dropout: float = 0.5,
        word_dropout: float = 0.0,
        embed_dropout: float = 0.0,
        input_dropout: float = 0.0,
        label_smoothing: float = 0.0,
        pad_id: int = 0,
        unk_id: int = 1,
    ):
        super().__init__(
            vocab_size,
            num_classes,
            emb_dim,
            word_dropout,
            embed_dropout,
            input_dropout,
            label_smoothing,
            pad_id,
            unk_id,
        )
        self.encoder = RNNEncoder(emb_dim, hidden_size, num_layers, True, cell, dropout)
        h = self.encoder.output_size
        self.pool = SequencePooling(h, pooling)
        self.drop = nn.Dropout(dropout)
        if mlp_hidden > 0:
            self.out = nn.Sequential(
                nn.Linear(h, mlp_hidden),
                nn.Tanh(),
                nn.Dropout(dropout),
                nn.Linear(mlp_hidden, num_classes),
            )
        else:
            self.out = nn.Linear(h, num_classes)

    def encode(self, batch: dict):
        x, mask = self.embed_tokens(batch["tokens"])  # (B, T, E)
        h, _ = self.encoder(x, batch["lengths"])  # (B, T, 2H), zero at padding
        pooled, attn = self.pool(h, mask)  # (B, 2H), (B, T) or None
        return self.out(self.drop(pooled)), attn  # (B, C)


class CNNClassifier(_Classifier):
    """Kim (2014) CNN: convolutions of several widths, max-over-time, dropout, linear.

    Shapes: tokens (B, T) -> logits (B, C); no attention weights (``None``).
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        emb_dim: int = 300,
        widths: Sequence[int] = (3, 4, 5),
        num_filters: int = 100,
        dropout: float = 0.5,
        word_dropout: float = 0.0,
        embed_dropout: float = 0.0,
        input_dropout: float = 0.0,
        label_smoothing: float = 0.0,
        pad_id: int = 0,
        unk_id: int = 1,
    ):
        super().__init__(
            vocab_size,
            num_classes,
            emb_dim,
            word_dropout,
            embed_dropout,
            input_dropout,
            label_smoothing,
            pad_id,
            unk_id,
        )
        self.conv = MaskedConvMaxPool(emb_dim, widths, num_filters, "relu")
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(self.conv.output_size, num_classes)

    def encode(self, batch: dict):
        x, mask = self.embed_tokens(batch["tokens"])  # (B, T, E)
        feats = self.conv(x, mask)  # (B, 3 * 100)
        return self.out(self.drop(feats)), None
