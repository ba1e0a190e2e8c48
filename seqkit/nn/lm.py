"""Recurrent language model (AWD-LSTM style) and the continuous-cache pointer.

* :class:`RNNLM`: embedding -> stacked weight-dropped LSTM/GRU layers -> linear decoder, with
  the regularisers of Merity, Keskar & Socher 2018, "Regularizing and Optimizing LSTM
  Language Models" (ICLR): embedding dropout, locked dropout on the input, between layers
  and on the output, DropConnect on the hidden-to-hidden weights, and tied input/output
  embeddings (Inan, Khosravi & Socher 2017, "Tying Word Vectors and Word Classifiers: A
  Loss Framework for Language Modeling"; Press & Wolf 2017, "Using the Output Embedding to
  Improve Language Models").  It implements the decoder-state contract of
  :mod:`seqkit.search.state` (``step``), so it can score hypotheses in shallow fusion.
* :func:`cache_pointer_log_probs` / :class:`ContinuousCache`: the continuous cache of Grave,
  Joulin & Usunier 2017, "Improving Neural Language Models with a Continuous Cache" (ICLR),
  applied at evaluation on top of any LM's distributions and hidden states.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqkit.data.batching import lengths_to_mask
from seqkit.nn.dense import Linear
from seqkit.nn.dropout import WeightDropGRU, WeightDropLSTM, embedding_dropout, locked_dropout
from seqkit.search.state import State

__all__ = ["RNNLM", "ContinuousCache", "cache_pointer_log_probs"]

_LAYERS = {"lstm": WeightDropLSTM, "gru": WeightDropGRU}


class RNNLM(nn.Module):
    """AWD-LSTM style recurrent language model (Merity, Keskar & Socher 2018).

    ``tokens -> embedding_dropout -> locked_dropout(dropout_input) -> [layer_l ->
    locked_dropout(dropout_hidden) between layers] -> locked_dropout(dropout_output) ->
    decoder``, each layer a single-layer :class:`~seqkit.nn.dropout.WeightDropLSTM` (or
    ``WeightDropGRU``) with DropConnect ``dropout_weight`` on its hidden-to-hidden matrix.

    Args:
        vocab_size: V.
        emb_dim: E, embedding size.
        hidden_size: H, size of every layer but the last.
        num_layers: L >= 1.  The last layer has E units when ``tie_weights`` (as in
            AWD-LSTM, so the decoder can share the embedding matrix), H otherwise.
        dropout_input / dropout_hidden / dropout_output: locked dropout on the embeddings,
            between layers, and on the last layer's output (AWD-LSTM's ``dropouti``,
            ``dropouth``, ``dropout``; 0.65 / 0.3 / 0.4 for its PTB model).
        dropout_embedding: word-type dropout on the embedding matrix (``dropoute``, 0.1).
        dropout_weight: DropConnect on hidden-to-hidden weights (``wdrop``, 0.5).
        tie_weights: ``decoder.weight is embedding.weight`` (Inan et al. 2017; Press & Wolf
            2017).
        cell: ``"lstm"`` or ``"gru"``.
        padding_idx: optional id whose embedding row gets no gradient.

    Shapes:
        tokens: (B, T) long.  lengths: optional (B,) long, 1 <= lengths <= T, for right
        padded batches.
        state: ``dict`` with ``"h{l}"`` (and for LSTM ``"c{l}"``) of shape (B, H_l) per
        layer l, batch first as :mod:`seqkit.search.state` requires (``torch.nn.LSTM``'s
        (1, B, H_l) per layer, with the layer axis dropped).

    All dropouts are the identity in eval mode; masks are fresh at every ``forward``.
    """

    def __init__(
        self,
        vocab_size: int,
        emb_dim: int,
        hidden_size: int,
        num_layers: int = 3,
        *,
        dropout_input: float = 0.0,
        dropout_hidden: float = 0.0,
        dropout_output: float = 0.0,
        dropout_embedding: float = 0.0,
        dropout_weight: float = 0.0,
        tie_weights: bool = True,
        cell: Literal["lstm", "gru"] = "lstm",
        padding_idx: int | None = None,
    ):
        super().__init__()
        if cell not in _LAYERS:
            raise ValueError(f"cell must be one of {sorted(_LAYERS)}, got {cell!r}")
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        for name, p in (
            ("dropout_input", dropout_input),
            ("dropout_hidden", dropout_hidden),
            ("dropout_output", dropout_output),
            ("dropout_embedding", dropout_embedding),
        ):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {p}")
        self.vocab_size = vocab_size
        self.cell = cell
        self.num_layers = num_layers
        self.tie_weights = tie_weights
        self.dropout_input = dropout_input
        self.dropout_hidden = dropout_hidden
        self.dropout_output = dropout_output
        self.dropout_embedding = dropout_embedding
        self.embedding = nn.Embedding(vocab_size, emb_dim, padding_idx=padding_idx)
        last = emb_dim if tie_weights else hidden_size
        self.layer_sizes = [hidden_size] * (num_layers - 1) + [last]
        inputs = [emb_dim] + self.layer_sizes[:-1]
        self.layers = nn.ModuleList(
            _LAYERS[cell](i, h, batch_first=True, weight_dropout=dropout_weight)
            for i, h in zip(inputs, self.layer_sizes, strict=True)
        )
        self.decoder = Linear(last, vocab_size)
        if tie_weights:
            self.decoder.weight = self.embedding.weight
        self.output_size = last
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """AWD-LSTM's init: embedding (and untied decoder) U(-0.1, 0.1), decoder bias 0."""
        with torch.no_grad():
            self.embedding.weight.uniform_(-0.1, 0.1)
            if self.embedding.padding_idx is not None:
                self.embedding.weight[self.embedding.padding_idx].zero_()
            if not self.tie_weights:
                self.decoder.weight.uniform_(-0.1, 0.1)
            self.decoder.bias.zero_()

    def _state_keys(self, layer: int) -> tuple[str, ...]:
        return (f"h{layer}", f"c{layer}") if self.cell == "lstm" else (f"h{layer}",)

    def init_state(self, batch_size: int) -> State:
        """Zero state for ``batch_size`` sequences: each entry (batch_size, H_l)."""
        ref = self.decoder.bias
        return {
            key: ref.new_zeros(batch_size, size)
            for layer, size in enumerate(self.layer_sizes)
            for key in self._state_keys(layer)
        }

    @staticmethod
    def detach_state(state: State) -> State:
        """The same state cut from the graph, for truncated back-propagation through time."""
        return {k: v.detach() for k, v in state.items()}

    def forward(
        self, tokens: Tensor, state: State | None = None, lengths: Tensor | None = None
    ) -> tuple[Tensor, State, Tensor]:
        """Run the LM over ``tokens`` from ``state`` (zeros when None).

        Returns:
            logits: (B, T, V), zero at padded positions.
            new_state: the state after each sequence's last real token (usable as the
                ``state`` of the next chunk, or by :meth:`step`).
            hiddens: (B, T, H_last), the last layer's outputs before output dropout
                (the keys/queries of :func:`cache_pointer_log_probs`), zero at padded
                positions.
        """
        b, t = tokens.shape
        emb = embedding_dropout(
            tokens,
            self.embedding.weight,
            self.dropout_embedding,
            self.training,
            self.embedding.padding_idx,
        )  # (B, T, E)
        x = locked_dropout(emb, self.dropout_input, self.training)
        new_state: State = {}
        for layer, rnn in enumerate(self.layers):
            hx = None
            if state is not None:
                keys = self._state_keys(layer)
                parts = tuple(state[k].unsqueeze(0).contiguous() for k in keys)  # (1, B, H_l)
                hx = parts if self.cell == "lstm" else parts[0]
            if lengths is None:
                x, hn = rnn(x, hx)  # (B, T, H_l)
            else:
                packed = pack_padded_sequence(
                    x, lengths.cpu(), batch_first=True, enforce_sorted=False
                )
                out, hn = rnn(packed, hx)
                x, _ = pad_packed_sequence(out, batch_first=True, total_length=t)  # (B, T, H_l)
            finals = hn if self.cell == "lstm" else (hn,)
            for key, value in zip(self._state_keys(layer), finals, strict=True):
                new_state[key] = value.squeeze(0)  # (1, B, H_l) -> (B, H_l)
            if layer < self.num_layers - 1:
                x = locked_dropout(x, self.dropout_hidden, self.training)
        hiddens = x  # (B, T, H_last)
        logits = self.decoder(locked_dropout(x, self.dropout_output, self.training))  # (B, T, V)
        if lengths is not None:
            mask = lengths_to_mask(lengths.to(tokens.device), t)  # (B, T)
            logits = logits.masked_fill(~mask.unsqueeze(-1), 0.0)
        return logits, new_state, hiddens

    def step(self, tokens: Tensor, state: State | None) -> tuple[Tensor, State]:
        """One incremental step (the :mod:`seqkit.search.state` contract).

        Shapes: tokens (N,) long; state as in :meth:`init_state` (None or ``{}`` means
        zeros); returns log-probabilities (N, V) of the next token and the new state.
        Use in eval mode (in training mode each step would draw new dropout masks).
        """
        if not state:
            state = None
        logits, new_state, _ = self.forward(tokens.unsqueeze(1), state)  # (N, 1, V)
        return F.log_softmax(logits.squeeze(1), dim=-1), new_state


def _mix(model_lp: Tensor, cache_p: Tensor, empty: Tensor, lambda_: float) -> Tensor:
    """log((1 - lambda) p_model + lambda p_cache); rows with an empty cache keep the model."""
    log_cache = torch.log(torch.where(cache_p > 0, cache_p, torch.ones_like(cache_p)))
    log_cache = log_cache.masked_fill(cache_p <= 0, float("-inf"))  # words absent from the cache
    log_keep = math.log1p(-lambda_) if lambda_ < 1 else float("-inf")
    log_lam = math.log(lambda_) if lambda_ > 0 else float("-inf")
    mixed = torch.logaddexp(model_lp + log_keep, log_cache + log_lam)
    return torch.where(empty.unsqueeze(-1), model_lp, mixed)


def cache_pointer_log_probs(
    model_log_probs: Tensor,
    hiddens: Tensor,
    targets: Tensor,
    cache_size: int,
    theta: float,
    lambda_: float,
    history: tuple[Tensor, Tensor] | None = None,
    chunk_size: int = 1024,
) -> Tensor:
    """Continuous-cache pointer mixture (Grave, Joulin & Usunier 2017).

    For position t of one text, with ``h_t = hiddens[t]`` the hidden state that predicts
    ``targets[t]`` (= x_{t+1}), the cache holds the previous ``cache_size`` pairs
    ``(h_i, targets[i])``, i in [t - cache_size, t - 1], and::

        p_cache(w) = sum_{i in window, targets[i] = w} exp(theta h_t . h_i)
                     / sum_{i in window} exp(theta h_t . h_i)
        p(w)       = (1 - lambda) p_model(w) + lambda p_cache(w)

    At the beginning of a text the window holds whatever precedes t (fewer than
    ``cache_size`` pairs), and at t = 0 with no ``history`` the cache is empty and
    ``p = p_model`` exactly.  (The AWD-LSTM ``pointer.py`` script instead skips the cache
    until a full window is available.)

    Args:
        model_log_probs: (T, V) log p_model(. | x_<=t), rows normalised.
        hiddens: (T, H) the LM's last-layer outputs (e.g. :class:`RNNLM`'s ``hiddens``).
        targets: (T,) long, the next token at each position.
        cache_size: window length (>= 0; 0 gives the model).
        theta: inverse temperature of the pointer scores.
        lambda_: interpolation weight of the cache, in [0, 1].
        history: optional ``(hiddens (M, H), targets (M,))`` of the M positions preceding
            position 0 (M <= cache_size is enough), to continue a text across calls.
        chunk_size: query positions per block; memory is O(chunk_size * (chunk_size +
            cache_size) + chunk_size * V) beyond the output.

    Returns:
        (T, V) log p(w) of the mixture (differentiable w.r.t. the inputs).
    """
    if model_log_probs.dim() != 2 or hiddens.dim() != 2 or targets.dim() != 1:
        raise ValueError("expected model_log_probs (T, V), hiddens (T, H) and targets (T,)")
    t_len, vocab = model_log_probs.shape
    if hiddens.size(0) != t_len or targets.size(0) != t_len:
        raise ValueError("model_log_probs, hiddens and targets must have the same length T")
    if cache_size < 0:
        raise ValueError(f"cache_size must be >= 0, got {cache_size}")
    if not 0.0 <= lambda_ <= 1.0:
        raise ValueError(f"lambda_ must be in [0, 1], got {lambda_}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if history is not None:
        hist_h, hist_w = history
        keys = torch.cat([hist_h.to(hiddens.dtype), hiddens], dim=0)  # (M + T, H)
        words = torch.cat([hist_w.to(targets.device), targets], dim=0)  # (M + T,)
        offset = hist_h.size(0)
    else:
        keys, words, offset = hiddens, targets, 0
    if cache_size == 0 or t_len == 0:
        return model_log_probs
    dtype = torch.promote_types(model_log_probs.dtype, hiddens.dtype)
    out = []
    for start in range(0, t_len, chunk_size):
        stop = min(start + chunk_size, t_len)
        q_pos = torch.arange(start, stop, device=hiddens.device) + offset  # global positions
        lo = max(0, offset + start - cache_size)
        hi = offset + stop - 1  # keys strictly before the last query
        k_pos = torch.arange(lo, hi, device=hiddens.device)
        scores = theta * hiddens[start:stop] @ keys[lo:hi].T  # (n, K)
        diff = q_pos.unsqueeze(1) - k_pos.unsqueeze(0)  # (n, K)
        valid = (diff >= 1) & (diff <= cache_size)
        empty = ~valid.any(dim=1)  # (n,) only the very first position of a text
        scores = scores.masked_fill(~valid, float("-inf"))
        scores = scores.masked_fill(empty.unsqueeze(1), 0.0)  # keep softmax finite
        attn = torch.softmax(scores.to(dtype), dim=1) * valid  # (n, K)
        cache_p = attn.new_zeros(stop - start, vocab).scatter_add(
            1, words[lo:hi].unsqueeze(0).expand(stop - start, -1), attn
        )  # (n, V)
        out.append(_mix(model_log_probs[start:stop].to(dtype), cache_p, empty, lambda_))
    return torch.cat(out, dim=0)


class ContinuousCache:
    """Stateful continuous cache (Grave, Joulin & Usunier 2017) for evaluation loops.

    Feed consecutive chunks of one or several parallel texts; each call returns the
    mixture log-probabilities of :func:`cache_pointer_log_probs` and then appends the
    chunk's ``(hiddens, targets)`` to the cache (keeping the last ``cache_size``), so
    feeding a text chunk by chunk gives the same result as one call on the whole text.

    Shapes per call: either one text, ``model_log_probs`` (T, V), ``hiddens`` (T, H),
    ``targets`` (T,), or S parallel texts (e.g. the columns of a batchified corpus)
    ``(S, T, V)``, ``(S, T, H)``, ``(S, T)`` with a separate cache per text; the number
    of texts must stay the same until :meth:`reset`.  Stored hiddens are detached.
    """

    def __init__(self, cache_size: int, theta: float, lambda_: float):
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {cache_size}")
        if not 0.0 <= lambda_ <= 1.0:
            raise ValueError(f"lambda_ must be in [0, 1], got {lambda_}")
        self.cache_size = cache_size
        self.theta = theta
        self.lambda_ = lambda_
        self.reset()

    def reset(self) -> None:
        """Forget every text (start of a new document / evaluation)."""
        self._history: list[tuple[Tensor, Tensor] | None] | None = None

    def __call__(self, model_log_probs: Tensor, hiddens: Tensor, targets: Tensor) -> Tensor:
        single = model_log_probs.dim() == 2
        if single:
            model_log_probs, hiddens, targets = (
                model_log_probs.unsqueeze(0),
                hiddens.unsqueeze(0),
                targets.unsqueeze(0),
            )
        n_texts = model_log_probs.size(0)
        if self._history is None:
            self._history = [None] * n_texts
        elif len(self._history) != n_texts:
            raise ValueError(
                f"got {n_texts} parallel texts but the cache holds {len(self._history)}; "
                "call reset() first"
            )
        out = []
        for s in range(n_texts):
            out.append(
                cache_pointer_log_probs(
                    model_log_probs[s],
                    hiddens[s],
                    targets[s],
                    self.cache_size,
                    self.theta,
                    self.lambda_,
                    history=self._history[s],
                )
            )
            prev = self._history[s]
            h, w = hiddens[s].detach(), targets[s]
            if prev is not None:
                h, w = torch.cat([prev[0], h]), torch.cat([prev[1], w])
            keep = min(self.cache_size, h.size(0))
            self._history[s] = (h[h.size(0) - keep :], w[w.size(0) - keep :])
        result = torch.stack(out)  # (S, T, V)
        return result[0] if single else result
