"""Attentional RNN encoder-decoder for translation (optionally with a pointer-generator copy).

The model of Bahdanau, Cho & Bengio (2015) / Luong, Pham & Manning (2015) as JoeyNMT and
OpenNMT-py build it, from :mod:`seqkit.nn` parts only::

    source ids (B, S) -> Embedding -> RNNEncoder (bidirectional, deep)  memory (B, S, 2He)
    enc_final = [top forward h at len-1; top backward h at 0]           (B, 2He)
    AttentionalDecoder(memory, mask, enc_final): input feeding, Bahdanau/Luong attention,
        bridge from enc_final, tied output embedding                     logits (B, L, V)
    loss: label-smoothed token cross-entropy (Szegedy et al. 2016)

With ``copy="pointer_generator"`` the decoder is :class:`~seqkit.nn.copy.PointerGeneratorDecoder`
(See, Liu & Manning 2017, optional coverage), with ``copy="copynet"``
:class:`~seqkit.nn.copy.CopyNetDecoder` (Gu et al. 2016), both over the batch's extended
vocabulary (source OOVs get per-batch slots); their loss is the copy model's NLL (no label
smoothing).

Search: :meth:`Seq2Seq.start` returns ``(stepper, state)`` for
:func:`seqkit.search.greedy_search` / :func:`seqkit.search.beam_search`.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from ..data.batching import lengths_to_mask
from ..nn.copy import CopyNetDecoder, PointerGeneratorDecoder
from ..nn.decoder import AttentionalDecoder
from ..nn.dropout import Dropout
from ..nn.rnn import RNNEncoder
from ..search.state import State


class Seq2Seq(nn.Module):
    """Source -> target with attention.

    Batch keys: ``src`` (B, S) long source ids (``pad_id`` at padding), ``src_lengths`` (B,),
    ``tgt_in`` (B, L) ``[BOS, y_1 .. y_{L-1}]`` and ``tgt_out`` (B, L) ``[y_1 .. y_{L-1}, EOS]``
    (``pad_id`` at padding).  With ``copy``: also ``src_ext`` (B, S) extended source ids and
    ``n_oov`` (int); ``tgt_in``/``tgt_out`` then hold extended ids.

    Args:
        src_vocab / tgt_vocab: vocabulary sizes.  emb_dim: E (both sides).
        enc_hidden: per direction.  dec_hidden: H (= E when ``tie_embeddings``).
        share_embeddings: one embedding matrix for source and target (joint vocabulary,
            ``src_vocab == tgt_vocab``).
    """

    def __init__(
        self,
        src_vocab: int,
        tgt_vocab: int,
        emb_dim: int = 256,
        enc_hidden: int = 256,
        dec_hidden: int = 256,
        enc_layers: int = 1,
        dec_layers: int = 1,
        cell: Literal["lstm", "gru"] = "lstm",
        attention: str = "additive",
        dropout: float = 0.3,
        label_smoothing: float = 0.1,
        tie_embeddings: bool = True,
        share_embeddings: bool = False,
        copy: Literal["none", "pointer_generator", "copynet"] = "none",
        coverage: bool = False,
        coverage_weight: float = 1.0,
        pad_id: int = 0,
        unk_id: int = 1,
    ):
        super().__init__()
        if share_embeddings and src_vocab != tgt_vocab:
            raise ValueError(f"share_embeddings needs one vocabulary, got sizes {src_vocab} and {tgt_vocab}")
        if copy not in ("none", "pointer_generator", "copynet"):
            raise ValueError(f"copy must be 'none', 'pointer_generator' or 'copynet', got {copy!r}")
        if coverage and copy == "copynet":
            raise ValueError("coverage is not available with copy='copynet'")
        self.pad_id = pad_id
        self.copy = copy != "none"
        self.label_smoothing = label_smoothing
        self.src_embed = nn.Embedding(src_vocab, emb_dim, padding_idx=pad_id)
        self.drop = Dropout(dropout)
        self.encoder = RNNEncoder(emb_dim, enc_hidden, enc_layers, True, cell, dropout)
        memory = 2 * enc_hidden
        common = dict(
            attention=attention, num_layers=dec_layers, cell=cell, input_feeding=True,
            dropout=dropout, tie_embeddings=tie_embeddings, coverage=coverage, pad_id=pad_id, bridge=True,
        )
        if copy == "pointer_generator":
            self.decoder = PointerGeneratorDecoder(
                tgt_vocab, emb_dim, dec_hidden, memory, unk_id=unk_id, coverage_weight=coverage_weight, **common
            )
            dec = self.decoder.decoder
        elif copy == "copynet":
            del common["coverage"]
            self.decoder = CopyNetDecoder(tgt_vocab, emb_dim, dec_hidden, memory, unk_id=unk_id, **common)
            dec = self.decoder.decoder
        else:
            self.decoder = AttentionalDecoder(tgt_vocab, emb_dim, dec_hidden, memory, **common)
            dec = self.decoder
        if share_embeddings:
            dec.embedding.weight = self.src_embed.weight
            if tie_embeddings:
                dec.out_proj.weight = self.src_embed.weight

    def encode(self, src: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(memory (B, S, 2He), mask (B, S) bool, enc_final (B, 2He))."""
        mask = lengths_to_mask(lengths.to(src.device), src.size(1))
        memory, state = self.encoder(self.drop(self.src_embed(src)), lengths)  # (B, S, 2He)
        h_n = state[0] if isinstance(state, tuple) else state  # (layers * 2, B, He)
        enc_final = torch.cat([h_n[-2], h_n[-1]], dim=-1)  # top layer: forward, backward
        return memory, mask, enc_final

    def start(self, batch: dict) -> tuple[nn.Module, State]:
        """The stepper (the decoder) and its initial state for ``batch``'s sources."""
        memory, mask, enc_final = self.encode(batch["src"], batch["src_lengths"])
        if self.copy:
            return self.decoder, self.decoder.init_state(
                memory, mask, batch["src_ext"], batch["n_oov"], enc_final=enc_final
            )
        return self.decoder, self.decoder.init_state(memory, mask, enc_final)

    def forward(self, batch: dict) -> dict:
        """``{"loss", "n", "weights"}``: token-mean loss, target tokens, attention (B, L, S)."""
        memory, mask, enc_final = self.encode(batch["src"], batch["src_lengths"])
        tgt_out = batch["tgt_out"]
        real = tgt_out != self.pad_id  # (B, L)
        if self.copy:
            out = self.decoder(batch["tgt_in"], memory, mask, batch["src_ext"], batch["n_oov"], enc_final)
            loss = self.decoder.loss(out, tgt_out, real)
        else:
            out = self.decoder(batch["tgt_in"], memory, mask, enc_final, project=False)
            loss = self.decoder.token_loss(out, tgt_out, self.pad_id, self.label_smoothing)
        return {"loss": loss, "n": int(real.sum()), "weights": out["weights"]}
