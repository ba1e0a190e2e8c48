"""Copy networks: pointer-generator and CopyNet, over an extended vocabulary.

Both models decode into the *extended vocabulary* of a batch: ids ``0 .. V-1`` are the
decoder's vocabulary and ids ``V .. V + n_oov - 1`` are per-batch slots for source words
that are not in it (source OOVs).  Example ``b`` uses the first ``len(oovs[b])`` slots in
the order its OOVs first occur in its source; repeated OOVs share one slot.  Slots that an
example does not use get probability exactly 0 (log-probability ``-inf``).  The helpers
:func:`extend_source`, :func:`extend_target`, :func:`extended_to_tokens`,
:func:`collate_copy_batch` and :func:`oov_to_unk` build and read these ids; the function
:func:`extended_log_probs` (the scatter of copy probabilities onto word ids, summing the
mass of repeated source words) is shared by both models.

* :class:`PointerGeneratorDecoder` -- See, Liu & Manning (2017), "Get To The Point:
  Summarization with Pointer-Generator Networks", ACL: a soft switch
  ``p_gen = sigmoid(w_h . c_t + w_s . s_t + w_x . x_t + b)`` mixes the decoder's
  vocabulary distribution with the attention distribution scattered onto source words,
  ``P(w) = p_gen P_vocab(w) + (1 - p_gen) sum_{i: x_i = w} a_i``, plus the coverage
  mechanism and coverage loss ``sum_i min(a_i^t, c_i^t)``.
* :class:`CopyNetDecoder` -- Gu, Lu, Li & Li (2016), "Incorporating Copying Mechanism in
  Sequence-to-Sequence Learning", ACL: generate-mode scores over the vocabulary and
  copy-mode scores ``tanh(h_j^T W_c) s_t`` over source positions share ONE softmax; the
  probabilities of a word from both modes are summed; the next decoder input carries a
  "selective read" of the encoder states at the source positions equal to the previous
  output.

Both wrap :class:`seqkit.nn.decoder.AttentionalDecoder` (which does the embedding,
recurrence and attentive read) and follow the search contract of ``seqkit/search/state.py``:
``step(tokens (N,), state) -> (log_probs (N, V + n_oov), state)``, where ``tokens`` are
extended ids (ids ``>= V`` are fed to the embedding as UNK) and every state tensor is
batch-first.  State keys added by this module start with ``copy_``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqkit.data.batching import pad_sequences
from seqkit.data.vocab import UNK, Vocab
from seqkit.nn.decoder import AttentionalDecoder
from seqkit.nn.dense import Linear
from seqkit.search.state import State

__all__ = [
    "CopyBatch",
    "CopyNetDecoder",
    "PointerGeneratorDecoder",
    "collate_copy_batch",
    "extend_source",
    "extend_target",
    "extended_log_probs",
    "extended_to_tokens",
    "oov_to_unk",
]

_NEG_INF = float("-inf")


# --------------------------------------------------------------------------------------
# extended-vocabulary helpers (shared by both models)
# --------------------------------------------------------------------------------------


def extend_source(tokens: Sequence[str], vocab: Vocab) -> tuple[list[int], list[str]]:
    """Source tokens -> (extended ids, this example's OOV list).

    A token in ``vocab`` gets its id; a token not in it gets ``len(vocab) + k`` where ``k``
    is its index in the returned OOV list (order of first occurrence; a repeated OOV keeps
    its slot).  See et al. (2017), Section 2.2.
    """
    v = len(vocab)
    oovs: list[str] = []
    slot: dict[str, int] = {}
    ids = []
    for tok in tokens:
        if tok in vocab:
            ids.append(vocab.index(tok))
        else:
            if tok not in slot:
                slot[tok] = len(oovs)
                oovs.append(tok)
            ids.append(v + slot[tok])
    return ids, oovs


def extend_target(tokens: Sequence[str], vocab: Vocab, oovs: Sequence[str]) -> list[int]:
    """Target tokens -> extended ids: vocabulary id, else the slot of a source OOV, else UNK.

    A target word that is neither in ``vocab`` nor among the example's source ``oovs``
    cannot be copied, so it is UNK (``vocab.index`` raises ``KeyError`` without an UNK).
    """
    v = len(vocab)
    slot = {w: v + k for k, w in enumerate(oovs)}
    return [vocab.index(t) if t in vocab or t not in slot else slot[t] for t in tokens]


def extended_to_tokens(
    ids: Sequence[int] | Tensor,
    vocab: Vocab,
    oovs: Sequence[str],
    strip_specials: bool = True,
) -> list[str]:
    """Extended ids -> words (ids ``>= len(vocab)`` name the example's source OOVs).

    With ``strip_specials`` it stops at EOS and drops the other specials except UNK, like
    :meth:`seqkit.data.vocab.Vocab.decode`.  An id beyond ``len(vocab) + len(oovs)`` raises
    ``IndexError``.
    """
    v = len(vocab)
    eos = vocab.eos_id
    drop = {vocab.index(s) for s in vocab.specials if s != UNK}
    out: list[str] = []
    for i in ids:
        i = int(i)
        if strip_specials:
            if i == eos:
                break
            if i in drop:
                continue
        if i >= v:
            if i - v >= len(oovs):
                raise IndexError(
                    f"extended id {i} has no OOV word: vocabulary size {v}, {len(oovs)} OOVs"
                )
            out.append(oovs[i - v])
        else:
            out.append(vocab.token(i))
    return out


def oov_to_unk(ids: Tensor, vocab_size: int, unk_id: int) -> Tensor:
    """Map extended ids ``>= vocab_size`` to ``unk_id`` (same shape), e.g. decoder inputs."""
    return ids.masked_fill(ids >= vocab_size, unk_id)


@dataclass
class CopyBatch:
    """A padded batch in the extended-vocabulary convention (see :func:`collate_copy_batch`).

    Fields (B examples, source length S, target length L):
        src_ids: (B, S) long, vocabulary ids with OOVs as UNK (the encoder's input).
        src_ext_ids: (B, S) long, extended ids.
        src_lengths: (B,) long.
        oovs: B lists of OOV words, slot ``k`` of example ``b`` is ``oovs[b][k]``.
        n_oov: ``max(len(o) for o in oovs)``, the number of extended slots of the batch.
        tgt_in: (B, L) long or None, ``[BOS] + target`` extended ids (teacher forcing input).
        tgt_out: (B, L) long or None, ``target + [EOS]`` extended ids (the labels).
        tgt_lengths: (B,) long or None, ``len(target) + 1``.
    """

    src_ids: Tensor
    src_ext_ids: Tensor
    src_lengths: Tensor
    oovs: list[list[str]]
    n_oov: int
    tgt_in: Tensor | None = None
    tgt_out: Tensor | None = None
    tgt_lengths: Tensor | None = None


def collate_copy_batch(
    sources: Sequence[Sequence[str]],
    vocab: Vocab,
    targets: Sequence[Sequence[str]] | None = None,
) -> CopyBatch:
    """Build a :class:`CopyBatch` from token lists (padding with ``vocab.pad_id``, else 0).

    Needs UNK in ``vocab``, and BOS/EOS when ``targets`` are given.
    """
    if vocab.unk_id is None:
        raise ValueError("collate_copy_batch needs a vocabulary with an UNK symbol")
    pad = vocab.pad_id if vocab.pad_id is not None else 0
    ext, oovs = zip(*(extend_source(s, vocab) for s in sources)) if sources else ((), ())
    oovs = [list(o) for o in oovs]
    src_ext, src_len = pad_sequences(list(ext), pad_value=pad)
    src_ids = oov_to_unk(src_ext, len(vocab), vocab.unk_id)
    batch = CopyBatch(src_ids, src_ext, src_len, oovs, max((len(o) for o in oovs), default=0))
    if targets is not None:
        if vocab.bos_id is None or vocab.eos_id is None:
            raise ValueError("collate_copy_batch needs BOS and EOS in the vocabulary for targets")
        tgt = [extend_target(t, vocab, o) for t, o in zip(targets, oovs, strict=True)]
        batch.tgt_in, batch.tgt_lengths = pad_sequences([[vocab.bos_id, *t] for t in tgt], pad)
        batch.tgt_out, _ = pad_sequences([[*t, vocab.eos_id] for t in tgt], pad)
    return batch


def _safe_log(p: Tensor) -> Tensor:
    """``log p`` with ``-inf`` (and a zero gradient, never NaN) where ``p == 0``."""
    pos = p > 0
    return torch.where(pos, torch.where(pos, p, torch.ones_like(p)).log(), _NEG_INF)


def extended_log_probs(
    gen_log_probs: Tensor, copy_log_probs: Tensor, src_ext_ids: Tensor, ext_size: int
) -> Tensor:
    """Log of the extended-vocabulary distribution from generation and copy terms.

    Computes, stably in log space (a scatter log-sum-exp),
    ``log( pad(exp(gen_log_probs)) + scatter_add(exp(copy_log_probs), src_ext_ids) )``:
    the copy mass of every source position is added to the id of its word, so repeated
    source words have their mass summed, and extended slots ``>= V`` receive copy mass only.

    Args:
        gen_log_probs: (N, V), the (already weighted) generation log-probabilities.
        copy_log_probs: (N, S), the (already weighted) copy log-probabilities of source
            positions, ``-inf`` at padding.
        src_ext_ids: (N, S) long, extended ids of the source positions, each ``< ext_size``.
        ext_size: ``V + n_oov``.

    Returns (N, ext_size); ``-inf`` (with zero gradient) where no term contributes.
    """
    v = gen_log_probs.size(-1)
    base = F.pad(gen_log_probs, (0, ext_size - v), value=_NEG_INF)  # (N, V + n_oov)
    m = base.scatter_reduce(1, src_ext_ids, copy_log_probs, reduce="amax", include_self=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m)).detach()  # per-slot shift
    total = torch.exp(base - m).scatter_add(
        1, src_ext_ids, torch.exp(copy_log_probs - m.gather(1, src_ext_ids))
    )
    return _safe_log(total) + m


def _init_copy_state(
    state: State, memory_mask: Tensor, src_ext_ids: Tensor, n_oov: int | None, vocab_size: int
) -> State:
    """Add ``copy_src_ids`` (B, S) and ``copy_oov_slots`` (B, n_oov) bool to ``state``.

    ``copy_oov_slots[b, k]`` is True iff slot ``k`` occurs in example ``b``'s source; its
    width carries ``n_oov`` through search (no host sync needed to size the output).
    """
    ids = torch.where(memory_mask, src_ext_ids, torch.zeros_like(src_ext_ids))  # padding -> 0
    if n_oov is None:
        n_oov = max(int(ids.max()) + 1 - vocab_size, 0) if ids.numel() else 0
    elif ids.numel() and int(ids.max()) >= vocab_size + n_oov:
        raise ValueError(f"src_ext_ids has an id >= vocab_size + n_oov = {vocab_size + n_oov}")
    slots = torch.zeros(ids.size(0), vocab_size + n_oov, dtype=torch.bool, device=ids.device)
    slots.scatter_(1, ids, memory_mask)  # padding writes only into slot 0 < V, dropped below
    return dict(state, copy_src_ids=ids, copy_oov_slots=slots[:, vocab_size:])


class PointerGeneratorDecoder(nn.Module):
    """Pointer-generator decoder (See, Liu & Manning 2017, "Get To The Point").

    At step ``t``, with attention ``a^t`` over the ``S`` source positions, context
    ``h*_t``, decoder state ``s_t`` and decoder input ``x_t`` (the embedding of the previous
    word, UNK for extended ids)::

        p_gen = sigmoid(w_h . h*_t + w_s . s_t + w_x . x_t + b)
        P(w)  = p_gen P_vocab(w) + (1 - p_gen) sum_{i: x_i = w} a^t_i     over V + n_oov

    ``P_vocab`` is the :class:`~seqkit.nn.decoder.AttentionalDecoder`'s own softmax output;
    ``h*_t``, ``s_t``, ``x_t`` are its ``context``, ``hidden`` (top layer) and ``embedded``.
    With ``coverage=True`` the decoder's attention sees the coverage vector
    ``c^t = sum_{t' < t} a^{t'}`` and the coverage loss ``covloss_t = sum_i min(a^t_i, c^t_i)``
    is returned and weighted by ``coverage_weight`` (lambda) in :meth:`loss` (Section 2.3).

    Args: those of :class:`~seqkit.nn.decoder.AttentionalDecoder` (``vocab_size`` is V) and
        ``unk_id``, the id fed to the embedding for extended ids ``>= V``.

    Shapes (B batch, S source, L target, Dm memory):
        memory (B, S, Dm), memory_mask (B, S) bool, src_ext_ids (B, S) long (extended ids,
        values at padding ignored), tokens_in (B, L) extended ids;
        log-probabilities are (..., V + n_oov) with ``n_oov`` the number of OOV slots.
    """

    def __init__(
        self,
        vocab_size: int,
        emb_dim: int,
        hidden_size: int,
        memory_size: int,
        *,
        unk_id: int,
        attention: str | nn.Module = "additive",
        num_layers: int = 1,
        cell: str = "lstm",
        input_feeding: bool = True,
        dropout: float = 0.0,
        tie_embeddings: bool = False,
        coverage: bool = False,
        coverage_weight: float = 1.0,
        pad_id: int = 0,
        bridge: bool = True,
    ):
        super().__init__()
        if not 0 <= unk_id < vocab_size:
            raise ValueError(f"unk_id must be in [0, {vocab_size}), got {unk_id}")
        self.decoder = AttentionalDecoder(
            vocab_size,
            emb_dim,
            hidden_size,
            memory_size,
            attention=attention,
            num_layers=num_layers,
            cell=cell,
            input_feeding=input_feeding,
            dropout=dropout,
            tie_embeddings=tie_embeddings,
            coverage=coverage,
            pad_id=pad_id,
            bridge=bridge,
        )
        self.vocab_size = vocab_size
        self.unk_id = unk_id
        self.coverage = coverage
        self.coverage_weight = coverage_weight
        self.switch = Linear(memory_size + hidden_size + emb_dim, 1)  # w_h, w_s, w_x, b

    def init_state(
        self,
        memory: Tensor,
        memory_mask: Tensor,
        src_ext_ids: Tensor,
        n_oov: int | None = None,
        enc_final=None,
    ) -> State:
        """The decoder's state (with coverage: its ``coverage`` (B, S), the sum of past
        attention) plus ``copy_src_ids`` (B, S) and ``copy_oov_slots`` (B, n_oov) bool.

        ``n_oov`` defaults to the largest extended id in ``src_ext_ids`` minus ``V - 1``.
        """
        state = self.decoder.init_state(memory, memory_mask, enc_final)
        return _init_copy_state(state, memory_mask, src_ext_ids, n_oov, self.vocab_size)

    def _step(self, tokens: Tensor, state: State) -> tuple[dict[str, Tensor], State]:
        src = state["copy_src_ids"]
        ext_size = self.vocab_size + state["copy_oov_slots"].size(1)
        out, new_state = self.decoder.core(oov_to_unk(tokens, self.vocab_size, self.unk_id), state)
        weights = out["weights"]  # (N, S), exactly 0 at padding
        z = self.switch(torch.cat([out["context"], out["hidden"], out["embedded"]], -1))  # (N, 1)
        vocab_logp = torch.log_softmax(self.decoder.logits(out["output"]), -1)  # (N, V)
        gen = F.logsigmoid(z) + vocab_logp
        copy = F.logsigmoid(-z) + _safe_log(weights)  # (N, S)
        res = {
            "log_probs": extended_log_probs(gen, copy, src, ext_size),
            "vocab_log_probs": vocab_logp,
            "weights": weights,
            "p_gen": torch.sigmoid(z).squeeze(-1),
        }
        if self.coverage:  # c^t: the decoder's coverage before this step's update
            res["coverage_loss"] = torch.minimum(weights, state["coverage"]).sum(-1)  # (N,)
        return res, new_state

    def step(self, tokens: Tensor, state: State) -> tuple[Tensor, State]:
        """tokens (N,) extended ids -> (log-probabilities (N, V + n_oov), new state)."""
        res, state = self._step(tokens, state)
        return res["log_probs"], state

    def forward(
        self,
        tokens_in: Tensor,
        memory: Tensor,
        memory_mask: Tensor,
        src_ext_ids: Tensor,
        n_oov: int | None = None,
        enc_final=None,
    ) -> dict[str, Tensor]:
        """Teacher forcing over ``tokens_in`` (B, L) (extended ids, BOS first).

        Returns ``log_probs`` (B, L, V + n_oov), ``vocab_log_probs`` (B, L, V) (log
        ``P_vocab``), attention ``weights`` (B, L, S), ``p_gen`` (B, L) and, with coverage,
        ``coverage_loss`` (B, L) (``sum_i min(a^t_i, c^t_i)`` per step).
        """
        state = self.init_state(memory, memory_mask, src_ext_ids, n_oov, enc_final)
        steps = []
        for t in range(tokens_in.size(1)):
            res, state = self._step(tokens_in[:, t], state)
            steps.append(res)
        return {k: torch.stack([r[k] for r in steps], dim=1) for k in steps[0]}

    def loss(self, outputs: dict[str, Tensor], targets: Tensor, target_mask: Tensor) -> Tensor:
        """See et al. (2017) eq. 13 averaged over real target tokens.

        ``mean_t [-log P(w*_t) + coverage_weight * covloss_t]`` over positions where
        ``target_mask`` (B, L) is True; ``targets`` (B, L) are extended ids.
        """
        logp = outputs["log_probs"].gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        per_tok = -logp
        if self.coverage:
            per_tok = per_tok + self.coverage_weight * outputs["coverage_loss"]
        per_tok = torch.where(target_mask, per_tok, torch.zeros_like(per_tok))
        return per_tok.sum() / target_mask.sum().clamp(min=1)


class CopyNetDecoder(nn.Module):
    """CopyNet decoder (Gu, Lu, Li & Li 2016, "Incorporating Copying Mechanism in
    Sequence-to-Sequence Learning").

    Scores at step ``t`` (``h_j`` the encoder states = ``memory``)::

        generate mode  psi_g(v)   = v^T W_o s_t            for v in V (UNK included)
        copy mode      psi_c(x_j) = tanh(h_j^T W_c) s_t     for source positions j

    ONE softmax over the ``V + S`` scores (padded positions excluded); then
    ``p(y) = p(y, g) + p(y, c)`` with ``p(y, c) = sum_{j: x_j = y} p(x_j, c)``, so a source
    OOV gets probability only by copying and a source word in V gets both (eqs. 4-8).
    Generation uses the :class:`~seqkit.nn.decoder.AttentionalDecoder`'s own projection of its
    attentional output (its ``logits``, the ``W_o s_t`` term); copy scores use its top-layer
    recurrent state ``hidden`` as ``s_t``.

    Selective read (Section 3.3): the decoder input at step ``t`` is
    ``[e(y_{t-1}); zeta(y_{t-1})]`` with ``zeta = sum_j rho_tj h_j``,
    ``rho_tj = p(x_j, c | s_{t-1}) / K`` at the positions with ``x_j = y_{t-1}`` (0
    elsewhere) and ``K`` their sum; ``zeta = 0`` when ``y_{t-1}`` is not in the source
    (and at the first step).  ``zeta`` is passed as the decoder's ``extra_input``, the
    embedding sees UNK for ids ``>= V``; the attentive read is the decoder's attention.

    Args: those of :class:`~seqkit.nn.decoder.AttentionalDecoder` (``vocab_size`` is V, which
        must contain UNK) and ``unk_id``.

    Shapes: as :class:`PointerGeneratorDecoder`; ``memory`` (B, S, Dm) are the ``h_j``.
    """

    def __init__(
        self,
        vocab_size: int,
        emb_dim: int,
        hidden_size: int,
        memory_size: int,
        *,
        unk_id: int,
        attention: str | nn.Module = "additive",
        num_layers: int = 1,
        cell: str = "lstm",
        input_feeding: bool = True,
        dropout: float = 0.0,
        tie_embeddings: bool = False,
        pad_id: int = 0,
        bridge: bool = True,
    ):
        super().__init__()
        if not 0 <= unk_id < vocab_size:
            raise ValueError(f"unk_id must be in [0, {vocab_size}), got {unk_id}")
        self.decoder = AttentionalDecoder(
            vocab_size,
            emb_dim,
            hidden_size,
            memory_size,
            attention=attention,
            num_layers=num_layers,
            cell=cell,
            input_feeding=input_feeding,
            dropout=dropout,
            tie_embeddings=tie_embeddings,
            extra_input_size=memory_size,
            pad_id=pad_id,
            bridge=bridge,
        )
        self.vocab_size = vocab_size
        self.unk_id = unk_id
        self.copy_proj = Linear(memory_size, hidden_size, bias=False)  # W_c

    def init_state(
        self,
        memory: Tensor,
        memory_mask: Tensor,
        src_ext_ids: Tensor,
        n_oov: int | None = None,
        enc_final=None,
    ) -> State:
        """The decoder's state (it holds ``memory`` (B, S, Dm) and ``mask`` (B, S), read here
        too) plus ``copy_src_ids`` (B, S), ``copy_oov_slots`` (B, n_oov), ``copy_keys``
        (B, S, H) = ``tanh(W_c h_j)`` and ``copy_prev`` (B, S), the previous step's
        copy-mode probabilities ``p(x_j, c)`` (zeros before the first step)."""
        state = self.decoder.init_state(memory, memory_mask, enc_final)
        state = _init_copy_state(state, memory_mask, src_ext_ids, n_oov, self.vocab_size)
        state["copy_keys"] = torch.tanh(self.copy_proj(memory))  # (B, S, H)
        state["copy_prev"] = memory.new_zeros(memory_mask.shape)
        return state

    def selective_read(self, tokens: Tensor, state: State) -> Tensor:
        """zeta(y_{t-1}) (N, Dm) for previous extended ids ``tokens`` (N,)."""
        match = (state["copy_src_ids"] == tokens.unsqueeze(1)) & state["mask"]  # (N, S)
        r = torch.where(match, state["copy_prev"], torch.zeros_like(state["copy_prev"]))
        k = r.sum(-1, keepdim=True)
        rho = r / torch.where(k > 0, k, torch.ones_like(k))
        return torch.bmm(rho.unsqueeze(1), state["memory"]).squeeze(1)  # (N, Dm)

    def _step(self, tokens: Tensor, state: State) -> tuple[dict[str, Tensor], State]:
        src, mask = state["copy_src_ids"], state["mask"]
        ext_size = self.vocab_size + state["copy_oov_slots"].size(1)
        zeta = self.selective_read(tokens, state)
        inp = oov_to_unk(tokens, self.vocab_size, self.unk_id)
        out, new_state = self.decoder.core(inp, state, extra_input=zeta)
        gen_scores = self.decoder.logits(out["output"])  # (N, V)
        copy_scores = torch.bmm(state["copy_keys"], out["hidden"].unsqueeze(-1)).squeeze(-1)
        copy_scores = copy_scores.masked_fill(~mask, _NEG_INF)  # (N, S)
        joint = torch.log_softmax(torch.cat([gen_scores, copy_scores], -1), -1)  # one softmax
        gen, copy = joint[:, : self.vocab_size], joint[:, self.vocab_size :]
        new_state["copy_prev"] = copy.exp()
        res = {
            "log_probs": extended_log_probs(gen, copy, src, ext_size),
            "gen_scores": gen_scores,
            "copy_scores": copy_scores,
            "weights": out["weights"],
            "selective_read": zeta,
            "embedded": out["embedded"],
        }
        return res, new_state

    def step(self, tokens: Tensor, state: State) -> tuple[Tensor, State]:
        """tokens (N,) extended ids -> (log-probabilities (N, V + n_oov), new state)."""
        res, state = self._step(tokens, state)
        return res["log_probs"], state

    def forward(
        self,
        tokens_in: Tensor,
        memory: Tensor,
        memory_mask: Tensor,
        src_ext_ids: Tensor,
        n_oov: int | None = None,
        enc_final=None,
    ) -> dict[str, Tensor]:
        """Teacher forcing over ``tokens_in`` (B, L) (extended ids, BOS first).

        Returns ``log_probs`` (B, L, V + n_oov), ``gen_scores`` (B, L, V), ``copy_scores``
        (B, L, S) (``-inf`` at padding), attention ``weights`` (B, L, S),
        ``selective_read`` (B, L, Dm) and ``embedded`` (B, L, E).
        """
        state = self.init_state(memory, memory_mask, src_ext_ids, n_oov, enc_final)
        steps = []
        for t in range(tokens_in.size(1)):
            res, state = self._step(tokens_in[:, t], state)
            steps.append(res)
        return {k: torch.stack([r[k] for r in steps], dim=1) for k in steps[0]}

    def loss(self, outputs: dict[str, Tensor], targets: Tensor, target_mask: Tensor) -> Tensor:
        """Mean negative log-likelihood of ``targets`` (B, L) extended ids over real tokens."""
        logp = outputs["log_probs"].gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        nll = torch.where(target_mask, -logp, torch.zeros_like(logp))
        return nll.sum() / target_mask.sum().clamp(min=1)
