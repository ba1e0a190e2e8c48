"""Attentional RNN decoder with input feeding, teacher forcing and scheduled sampling.

:class:`AttentionalDecoder` is the decoder of Luong, Pham & Manning (2015), "Effective
Approaches to Attention-based Neural Machine Translation", EMNLP, with any attention of
:mod:`seqkit.nn.attention` (Bahdanau, Cho & Bengio 2015's additive attention by default).
At step ``t``, with ``y_{t-1}`` the previous token::

    x_t   = [E y_{t-1}; h~_{t-1} (input feeding); extra_t]        (N, E [+ H] [+ X])
    h_t   = StackedRNN(x_t, state_{t-1})                            top layer (N, H)
    c_t, a_t = attention(query=h_t, keys=values=memory, mask)       (N, Dm), (N, S)
    h~_t  = tanh(W_c [c_t; h_t])                                    (N, H)   Luong eq. 5
    p(y_t | y_<t, x) = softmax(W_s h~_t + b_s)                      (N, V)   Luong eq. 6

This is the "attend after the recurrence" data flow of Luong et al. (also OpenNMT's);
Bahdanau et al. attend with the previous state and feed the context into the recurrence,
which input feeding (Luong Section 3.3: ``h~_{t-1}`` is concatenated to the next input)
plays the role of.  With ``coverage=True`` the state keeps ``c^t = sum_{t'<t} a^{t'}``, the
attention sees it if it supports it (the default additive attention is then built with
its coverage term), and :meth:`AttentionalDecoder.forward` returns the coverage loss
``sum_j min(a_j^t, c_j^t)`` of See, Liu & Manning (2017), "Get To The Point", ACL, eq. 12.

Training: teacher forcing, or scheduled sampling (Bengio, Vinyals, Jaitly & Shazeer 2015,
"Scheduled Sampling for Sequence Prediction with Recurrent Neural Networks", NeurIPS) with
the decay schedules of :func:`scheduled_sampling_prob`.  Decoding: :meth:`step` follows the
search contract of ``seqkit/search/state.py``.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from seqkit.nn.activation import tanh
from seqkit.nn.attention import build_attention
from seqkit.nn.cells import TorchGRUCell, TorchLSTMCell
from seqkit.nn.dense import Linear
from seqkit.nn.dropout import Dropout
from seqkit.nn.losses import linear_cross_entropy, sequence_cross_entropy
from seqkit.search.state import State

__all__ = ["AttentionalDecoder", "scheduled_sampling_prob"]

_CELLS = {"lstm": TorchLSTMCell, "gru": TorchGRUCell}


def scheduled_sampling_prob(
    step: int,
    schedule: Literal["linear", "exponential", "inverse_sigmoid"] = "inverse_sigmoid",
    k: float = 1000.0,
    c: float = 1e-4,
    eps_min: float = 0.0,
) -> float:
    """Probability ``1 - eps_i`` of feeding the model's own prediction at training step ``i``.

    ``eps_i`` is the probability of feeding the ground truth, decayed as in Bengio et al.
    (2015), Section 2.4:

    * ``"linear"``: ``eps_i = max(eps_min, k - c i)`` (``0 <= eps_min < 1``, e.g. ``k = 1``);
    * ``"exponential"``: ``eps_i = k^i`` with ``k < 1`` (e.g. ``k = 0.999``);
    * ``"inverse_sigmoid"``: ``eps_i = k / (k + exp(i / k))`` with ``k >= 1``.

    ``eps_min`` is a floor on ``eps_i`` for every schedule (the paper uses it for the linear
    one).  Pass the result as ``sampling_prob`` to :meth:`AttentionalDecoder.forward`.
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if schedule == "linear":
        eps = k - c * step
    elif schedule == "exponential":
        if not 0 < k < 1:
            raise ValueError(f"exponential schedule needs 0 < k < 1, got {k}")
        eps = k**step
    elif schedule == "inverse_sigmoid":
        if k < 1:
            raise ValueError(f"inverse_sigmoid schedule needs k >= 1, got {k}")
        z = step / k - math.log(k)  # k / (k + e^{i/k}) = 1 / (1 + e^z), overflow-safe
        eps = math.exp(-z) / (1.0 + math.exp(-z)) if z > 0 else 1.0 / (1.0 + math.exp(z))
    else:
        raise ValueError(f"unknown schedule {schedule!r}")
    eps = min(1.0, max(eps_min, eps))
    return 1.0 - eps


class AttentionalDecoder(nn.Module):
    """RNN decoder over an encoder memory (Luong, Pham & Manning 2015; see the module doc).

    Args:
        vocab_size: V.  emb_dim: E.  hidden_size: H (every layer; also the size of ``h~``).
        memory_size: Dm, the size of the encoder states it attends to.
        attention: a kind for :func:`~seqkit.nn.attention.build_attention` (query size H,
            key size Dm; ``"additive"`` gets ``coverage=coverage``) or a module with the
            :mod:`seqkit.nn.attention` interface.
        num_layers: stacked ``LSTMCell`` / ``GRUCell`` layers (``cell``).
        input_feeding: feed ``h~_{t-1}`` with the next input (Luong Section 3.3).
        dropout: on the embedding, between layers and on ``h~`` before the projection.
        tie_embeddings: share the output projection with the embedding (Press & Wolf 2017,
            "Using the Output Embedding to Improve Language Models"); needs ``H == E``,
            ``ValueError`` otherwise.
        extra_input_size: X, a per-step extra input concatenated to the RNN input (e.g.
            CopyNet's selective read); :meth:`core` then requires ``extra_input``.
        coverage: keep the coverage vector in the state and return the coverage loss.
        pad_id: the embedding's ``padding_idx``.
        bridge: a layer ``tanh(W enc_final + b)`` that initialises every layer's ``h``
            (and ``c``) from a pooled/final encoder state (B, Dm).

    Attributes: ``output_size`` (H_out = H), ``attention``, ``embedding``, ``out_proj``.
    """

    def __init__(
        self,
        vocab_size: int,
        emb_dim: int,
        hidden_size: int,
        memory_size: int,
        attention: str | nn.Module = "additive",
        num_layers: int = 1,
        cell: Literal["lstm", "gru"] = "lstm",
        input_feeding: bool = True,
        dropout: float = 0.0,
        tie_embeddings: bool = False,
        extra_input_size: int = 0,
        coverage: bool = False,
        pad_id: int = 0,
        bridge: bool = True,
    ):
        super().__init__()
        if cell not in _CELLS:
            raise ValueError(f"cell must be one of {sorted(_CELLS)}, got {cell!r}")
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        if tie_embeddings and hidden_size != emb_dim:
            raise ValueError(
                f"tie_embeddings needs hidden_size == emb_dim (the attentional vector is "
                f"projected by the embedding matrix), got {hidden_size} != {emb_dim}"
            )
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.output_size = hidden_size
        self.memory_size = memory_size
        self.num_layers = num_layers
        self.cell = cell
        self.input_feeding = input_feeding
        self.extra_input_size = extra_input_size
        self.coverage = coverage
        self.pad_id = pad_id

        if isinstance(attention, str):
            kw = {"coverage": True} if coverage and attention == "additive" else {}
            attention = build_attention(attention, hidden_size, memory_size, **kw)
        elif getattr(attention, "supports_coverage", False) and not coverage:
            raise ValueError("the attention module has a coverage term: pass coverage=True")
        self.attention = attention
        self.embedding = nn.Embedding(vocab_size, emb_dim, padding_idx=pad_id)
        in_size = emb_dim + (hidden_size if input_feeding else 0) + extra_input_size
        self.cells = nn.ModuleList(
            _CELLS[cell](in_size if i == 0 else hidden_size, hidden_size) for i in range(num_layers)
        )
        self.combine = Linear(memory_size + hidden_size, hidden_size, bias=False)  # W_c
        self.out_proj = Linear(hidden_size, vocab_size)  # W_s, b_s
        if tie_embeddings:
            self.out_proj.weight = self.embedding.weight
        n_init = num_layers * (2 if cell == "lstm" else 1)
        self.bridge = Linear(memory_size, n_init * hidden_size) if bridge else None
        self.drop = Dropout(dropout)

    # ------------------------------------------------------------------ state

    def init_state(
        self, memory: Tensor, memory_mask: Tensor, enc_final: Tensor | None = None
    ) -> State:
        """Initial decoding state (every entry batch-first, see ``seqkit/search/state.py``).

        Args:
            memory: (B, S, Dm) encoder states (keys and values of the attention).
            memory_mask: (B, S) bool, True at real positions.
            enc_final: optional (B, Dm) pooled/final encoder state; with ``bridge`` the
                initial ``h`` (and ``c``) of layer ``l`` are slices of
                ``tanh(W enc_final + b)``; zeros when omitted.  ``ValueError`` when given
                without a bridge.

        Returns the dict with ``memory`` (B, S, Dm), ``mask`` (B, S), ``proj_keys``
        (the attention's key projection), ``h{l}`` (and ``c{l}`` for LSTM) (B, H) for each
        layer ``l``, ``feed`` (B, H) (``h~_{t-1}``, zeros; with input feeding),
        ``prev_weights`` (B, S) (uniform over real keys before the first step) and, with
        coverage, ``coverage`` (B, S) zeros.
        """
        b = memory.size(0)
        n_init = self.num_layers * (2 if self.cell == "lstm" else 1)
        if enc_final is not None:
            if self.bridge is None:
                raise ValueError("enc_final needs bridge=True")
            init = torch.tanh(self.bridge(enc_final)).view(b, n_init, self.hidden_size)
        else:
            init = memory.new_zeros(b, n_init, self.hidden_size)
        mask_f = memory_mask.to(memory.dtype)
        state: State = {
            "memory": memory,
            "mask": memory_mask,
            "proj_keys": self.attention.project_keys(memory),
            "prev_weights": mask_f / mask_f.sum(dim=1, keepdim=True),  # (B, S)
        }
        for i in range(self.num_layers):
            state[f"h{i}"] = init[:, i]
            if self.cell == "lstm":
                state[f"c{i}"] = init[:, self.num_layers + i]
        if self.input_feeding:
            state["feed"] = memory.new_zeros(b, self.hidden_size)
        if self.coverage:
            state["coverage"] = memory.new_zeros(memory_mask.shape)
        return state

    # ------------------------------------------------------------------ one step

    def core(
        self,
        prev_tokens: Tensor,
        state: State,
        extra_input: Tensor | None = None,
        embedded: Tensor | None = None,
    ) -> tuple[dict[str, Tensor], State]:
        """One decoder step without the vocabulary projection.

        Args:
            prev_tokens: (N,) long, the previous token of each row (BOS first).
            state: from :meth:`init_state` (possibly expanded / reordered by search).
            extra_input: (N, X), required iff ``extra_input_size > 0``.
            embedded: (N, E), ``dropout(embedding(prev_tokens))`` when the caller made it
                already (teacher forcing embeds all steps in one call); else made here.

        Returns ``(out, new_state)``; ``out`` holds ``output`` (N, H) the attentional vector
        ``h~_t``, ``context`` (N, Dm), ``weights`` (N, S) (0 at padding), ``hidden`` (N, H)
        the top layer's ``h_t`` and ``embedded`` (N, E) (the embedding after dropout, as fed
        to the RNN).  ``new_state`` has the new ``h``/``c``, ``feed = h~_t``,
        ``prev_weights = a_t`` and ``coverage += a_t``; ``state`` is not modified.
        """
        if (extra_input is None) != (self.extra_input_size == 0):
            raise ValueError(
                f"extra_input is required iff extra_input_size > 0 "
                f"(extra_input_size={self.extra_input_size})"
            )
        emb = self.drop(self.embedding(prev_tokens)) if embedded is None else embedded  # (N, E)
        parts = [emb]
        if self.input_feeding:
            parts.append(state["feed"])
        if extra_input is not None:
            parts.append(extra_input)
        x = torch.cat(parts, dim=-1)  # (N, E [+ H] [+ X])
        new_state = dict(state)
        for i, cell in enumerate(self.cells):
            if self.cell == "lstm":
                h, c = cell(x, (state[f"h{i}"], state[f"c{i}"]))
                new_state[f"c{i}"] = c
            else:
                h = cell(x, state[f"h{i}"])
            new_state[f"h{i}"] = h
            x = self.drop(h)
        kw = {}
        if self.attention.needs_prev_weights:
            kw["prev_weights"] = state["prev_weights"]
        if self.coverage and self.attention.supports_coverage:
            kw["coverage"] = state["coverage"]
        context, weights = self.attention(
            h, state["memory"], state["mask"], proj_keys=state["proj_keys"], **kw
        )  # (N, Dm), (N, S)
        output = tanh(self.combine(torch.cat([context, h], dim=-1)))  # (N, H)
        if self.input_feeding:
            new_state["feed"] = output
        new_state["prev_weights"] = weights
        if self.coverage:
            new_state["coverage"] = state["coverage"] + weights
        out = {
            "output": output,
            "context": context,
            "weights": weights,
            "hidden": h,
            "embedded": emb,
        }
        return out, new_state

    def logits(self, output: Tensor) -> Tensor:
        """Vocabulary scores ``W_s dropout(h~) + b_s``: (..., H) -> (..., V)."""
        return self.out_proj(self.drop(output))

    def token_loss(
        self, out: dict[str, Tensor], targets: Tensor, pad_id: int, label_smoothing: float = 0.0
    ) -> Tensor:
        """Token-mean label-smoothed cross-entropy of ``targets`` (B, L) under the output of
        :meth:`forward`: from its ``logits`` when present, else (``project=False``) from its
        ``outputs`` through :func:`~seqkit.nn.losses.linear_cross_entropy` (on the CPU the
        logits are then never held whole)."""
        if "logits" in out:
            return sequence_cross_entropy(out["logits"], targets, pad_id, label_smoothing)
        x = self.drop(out["outputs"])  # (B, L, H)
        w, b = self.out_proj.weight, self.out_proj.bias
        return linear_cross_entropy(x, w, b, targets, pad_id, label_smoothing)

    def step(self, tokens: Tensor, state: State) -> tuple[Tensor, State]:
        """Search contract: ``tokens`` (N,) -> (log-probabilities (N, V), new state)."""
        out, state = self.core(tokens, state)
        return torch.log_softmax(self.logits(out["output"]), dim=-1), state

    # ------------------------------------------------------------------ training

    def forward(
        self,
        tokens_in: Tensor,
        memory: Tensor,
        memory_mask: Tensor,
        enc_final: Tensor | None = None,
        sampling_prob: float = 0.0,
        sampling: Literal["sample", "argmax"] = "sample",
        generator: torch.Generator | None = None,
        project: bool = True,
    ) -> dict[str, Tensor]:
        """Decode ``tokens_in`` (B, L) = ``[BOS, y_1 .. y_{L-1}]`` with teacher forcing.

        Scheduled sampling (Bengio et al. 2015): in training mode with
        ``sampling_prob > 0``, at every step ``t >= 1`` and independently for each row, the
        input is with probability ``sampling_prob`` the model's own prediction for
        position ``t - 1`` instead of ``tokens_in[:, t]``.  The prediction is drawn from
        the model's distribution (``sampling="sample"``, the paper's choice) or is its
        argmax (``"argmax"``); it is taken from detached logits (no gradient flows through
        the choice, as in the paper).  Randomness (the per-row coin and the sample) uses
        ``generator``, which must live on ``tokens_in``'s device, or the global RNG.  In
        eval mode ``sampling_prob`` is ignored.  Targets are unchanged, so positions whose
        target is padding stay masked by the loss.

        Returns a dict with ``logits`` (B, L, V), attention ``weights`` (B, L, S),
        ``inputs`` (B, L) the tokens actually fed and, with coverage, ``coverage_loss``
        (B, L) = ``sum_j min(a_j^t, c_j^t)`` (not masked: multiply by the target mask).
        With ``project=False`` and no scheduled sampling, ``outputs`` (B, L, H) (the
        attentional vectors ``h~_t``) replace ``logits``: :meth:`token_loss` then computes the
        loss without materialising the logits.
        """
        if not 0.0 <= sampling_prob <= 1.0:
            raise ValueError(f"sampling_prob must be in [0, 1], got {sampling_prob}")
        if sampling not in ("sample", "argmax"):
            raise ValueError(f"sampling must be 'sample' or 'argmax', got {sampling!r}")
        scheduled = self.training and sampling_prob > 0.0
        state = self.init_state(memory, memory_mask, enc_final)
        b, steps = tokens_in.shape
        logits, outputs, weights, fed, cov_loss = [], [], [], [], []
        # teacher-forced inputs embedded in one call: one (V, E) embedding gradient, not L
        embedded = None if scheduled else self.drop(self.embedding(tokens_in)).unbind(1)
        for t in range(steps):
            inp = tokens_in[:, t]
            if scheduled and t > 0:
                prev = logits[-1].detach()  # (B, V)
                if sampling == "argmax":
                    pred = prev.argmax(dim=-1)
                else:
                    probs = torch.softmax(prev.float(), dim=-1)
                    pred = torch.multinomial(probs, 1, generator=generator).squeeze(1)
                draw = torch.rand(b, generator=generator, device=tokens_in.device)
                inp = torch.where(draw < sampling_prob, pred, inp)  # (B,)
            out, new_state = self.core(inp, state, embedded=None if scheduled else embedded[t])
            if self.coverage:
                cov_loss.append(torch.minimum(out["weights"], state["coverage"]).sum(-1))
            state = new_state
            if scheduled:  # the next input may be sampled from these
                logits.append(self.logits(out["output"]))  # (B, V)
            else:
                outputs.append(out["output"])  # (B, H)
            weights.append(out["weights"])
            fed.append(inp)
        res = {
            "weights": torch.stack(weights, dim=1),  # (B, L, S)
            "inputs": torch.stack(fed, dim=1),  # (B, L)
        }
        if scheduled:
            res["logits"] = torch.stack(logits, 1)  # (B, L, V)
        elif project:  # teacher forcing: one (B * L, H) x (H, V) product, not L small ones
            res["logits"] = self.logits(torch.stack(outputs, 1))  # (B, L, V)
        else:
            res["outputs"] = torch.stack(outputs, 1)  # (B, L, H)
        if self.coverage:
            res["coverage_loss"] = torch.stack(cov_loss, dim=1)  # (B, L)
        return res
