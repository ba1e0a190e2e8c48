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

Shared by both: optional character-CNN token features (Ma & Hovy 2016), and regularisation:
``word_dropout`` replaces a real token by ``<unk>`` with that probability (the word dropout of
Bowman et al. 2016, "Generating Sentences from a Continuous Space"; Iyyer et al. 2015 delete the
word instead), ``embed_dropout`` drops whole word types from the embedding matrix (Gal &
Ghahramani 2016, :func:`~seqkit.nn.dropout.embedding_dropout`), ``input_dropout`` is
elementwise dropout on the token vectors, and ``adversarial_eps`` adds the loss of the
sentence with its token vectors moved against the gradient (Miyato et al. 2017,
:func:`~seqkit.nn.adversarial.adversarial_perturbation`).  Built from :mod:`seqkit.nn` parts
only.

Batch keys: ``tokens`` (B, T) long with ``pad_id`` at padding, ``lengths`` (B,) long >= 1,
``labels`` (B,) long (training; ``IGNORE`` for an unknown label), ``chars`` (B, T, C) long
(only with character features).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from ..nn.adversarial import adversarial_perturbation
from ..nn.conv import MaskedConvMaxPool
from ..nn.dense import Linear
from ..nn.dropout import Dropout, embedding_dropout
from ..nn.embedding import CharCNN
from ..nn.pooling import SequencePooling
from ..nn.rnn import RNNEncoder

IGNORE = -100  # label id excluded from the loss (a label unseen in training)


class _Classifier(nn.Module):
    """Token representations with word/type/element dropout, the loss and ``predict``.

    Keyword arguments shared by both classifiers:
        word_dropout: train-time chance to replace a real token by ``unk_id``.
        embed_dropout: train-time chance to drop a word type (every occurrence in the batch).
        input_dropout: elementwise dropout on the token vectors.
        label_smoothing: of the cross-entropy loss.
        adversarial_eps: > 0: adversarial training (Miyato et al. 2017).  Each training step
            also runs the sentence with its token vectors (before input dropout) moved by
            ``eps * ||x|| * g / ||g||`` (norms over the sentence, ``g`` the gradient of the
            clean loss) and adds ``adversarial_weight`` times that loss.  Costs a second
            forward pass and a backward pass to the inputs.
        adversarial_weight: weight of the adversarial loss.
        emb_init_std: word vectors start as N(0, std^2) (None: torch's N(0, 1)).
        num_chars, char_dim, char_filters, char_pad_id: with ``num_chars > 0`` each token
            vector is extended by character-CNN features (:class:`~seqkit.nn.embedding.CharCNN`,
            Ma & Hovy 2016) computed from ``batch["chars"]`` (B, T, C); the characters of a
            token replaced by word dropout are kept.

    ``self.input_size`` is the size of a token vector (``emb_dim`` + ``char_filters``).
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        emb_dim: int,
        *,
        word_dropout: float = 0.0,
        embed_dropout: float = 0.0,
        input_dropout: float = 0.0,
        label_smoothing: float = 0.0,
        adversarial_eps: float = 0.0,
        adversarial_weight: float = 1.0,
        pad_id: int = 0,
        unk_id: int = 1,
        emb_init_std: float | None = None,
        num_chars: int = 0,
        char_dim: int = 32,
        char_filters: int = 0,
        char_pad_id: int = 0,
    ):
        super().__init__()
        self.pad_id, self.unk_id = pad_id, unk_id
        self.num_classes = num_classes
        self.word_dropout, self.embed_dropout = word_dropout, embed_dropout
        self.label_smoothing = label_smoothing
        self.adversarial_eps, self.adversarial_weight = adversarial_eps, adversarial_weight
        self.embed = nn.Embedding(vocab_size, emb_dim, padding_idx=pad_id)
        if emb_init_std is not None:  # torch's default is N(0, 1)
            nn.init.normal_(self.embed.weight, 0.0, emb_init_std)
            with torch.no_grad():
                self.embed.weight[pad_id].zero_()
        self.chars = None
        if num_chars > 0 and char_filters > 0:
            self.chars = CharCNN(num_chars, char_dim, char_filters, pad_id=char_pad_id)
        self.input_size = emb_dim + (char_filters if self.chars is not None else 0)
        self.input_drop = Dropout(input_dropout)

    def token_vectors(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """batch -> token vectors (B, T, input_size) before input dropout, and the (B, T) mask
        of real positions."""
        tokens = batch["tokens"]  # (B, T)
        mask = tokens != self.pad_id  # (B, T)
        if self.training and self.word_dropout > 0:
            drop = (torch.rand(tokens.shape, device=tokens.device) < self.word_dropout) & mask
            tokens = tokens.masked_fill(drop, self.unk_id)
        x = embedding_dropout(
            tokens, self.embed.weight, self.embed_dropout, self.training, self.pad_id
        )  # (B, T, E)
        if self.chars is not None:
            x = torch.cat([x, self.chars(batch["chars"])], dim=-1)  # (B, T, E + F)
        return x, mask

    def classify(
        self, x: torch.Tensor, mask: torch.Tensor, batch: dict
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Token vectors (B, T, input_size) after input dropout -> (logits (B, C), attention
        weights (B, T) or None)."""
        raise NotImplementedError

    def encode(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(logits (B, C), attention weights (B, T) or None)."""
        x, mask = self.token_vectors(batch)
        return self.classify(self.input_drop(x), mask, batch)

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(
            logits, labels, ignore_index=IGNORE, label_smoothing=self.label_smoothing
        )

    def forward(self, batch: dict) -> dict:
        x, mask = self.token_vectors(batch)
        logits, _ = self.classify(self.input_drop(x), mask, batch)
        loss = self._loss(logits, batch["labels"])
        out = {"n": int((batch["labels"] != IGNORE).sum())}
        if self.training and self.adversarial_eps > 0 and torch.is_grad_enabled():
            (grad,) = torch.autograd.grad(loss, x, retain_graph=True)
            r = adversarial_perturbation(grad, x, mask, self.adversarial_eps)  # (B, T, D)
            adv_logits, _ = self.classify(self.input_drop(x + r), mask, batch)
            loss = loss + self.adversarial_weight * self._loss(adv_logits, batch["labels"])
        out["loss"] = loss
        return out

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
        **kw: the token-representation options of :class:`_Classifier`.

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
        **kw,
    ):
        super().__init__(vocab_size, num_classes, emb_dim, **kw)
        self.encoder = RNNEncoder(self.input_size, hidden_size, num_layers, True, cell, dropout)
        h = self.encoder.output_size
        self.pool = SequencePooling(h, pooling)
        self.drop = Dropout(dropout)
        if mlp_hidden > 0:
            self.out = nn.Sequential(
                Linear(h, mlp_hidden),
                nn.Tanh(),
                Dropout(dropout),
                Linear(mlp_hidden, num_classes),
            )
        else:
            self.out = Linear(h, num_classes)

    def classify(self, x: torch.Tensor, mask: torch.Tensor, batch: dict):
        h, _ = self.encoder(x, batch["lengths"])  # (B, T, 2H), zero at padding
        pooled, attn = self.pool(h, mask)  # (B, 2H), (B, T) or None
        return self.out(self.drop(pooled)), attn  # (B, C)


class CNNClassifier(_Classifier):
    """Kim (2014) CNN: convolutions of several widths, max-over-time, dropout, linear.

    ``**kw``: the token-representation options of :class:`_Classifier`.

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
        **kw,
    ):
        super().__init__(vocab_size, num_classes, emb_dim, **kw)
        self.conv = MaskedConvMaxPool(self.input_size, widths, num_filters, "relu")
        self.drop = Dropout(dropout)
        self.out = Linear(self.conv.output_size, num_classes)

    def classify(self, x: torch.Tensor, mask: torch.Tensor, batch: dict):
        feats = self.conv(x, mask)  # (B, len(widths) * num_filters)
        return self.out(self.drop(feats)), None
