"""CTC prefix scoring for joint CTC/attention decoding.

Implements the CTC prefix score of Watanabe, Hori, Kim, Hershey & Hayashi (2017), "Hybrid
CTC/Attention Architecture for End-to-End Speech Recognition" (IEEE JSTSP 11(8)),
batched over hypotheses as in ESPnet's ``CTCPrefixScoreTH`` (Seki et al. 2019, "Vectorized
Beam Search for CTC-Attention-Based Speech Recognition", Interspeech).  CTC itself is Graves,
Fernandez, Gomez & Schmidhuber (2006), "Connectionist Temporal Classification", ICML.

For a label prefix ``h`` and CTC frame posteriors ``x_t(k)`` (``t < T_b``) the *prefix
probability* is the total probability of all CTC alignments whose collapsed label sequence
starts with ``h`` (i.e. the sum of ``p(h + v | X)`` over every continuation ``v``, the empty
one included)::

    psi(h) = sum_v p_ctc(h + v | X)

With the forward variables ``r^n_t(h)`` / ``r^b_t(h)`` (probability of the frames ``0..t``
collapsing to exactly ``h``, the last frame being a non-blank / a blank) and
``phi_t(g, c) = r^b_{t-1}(g) + [c != last(g)] r^n_{t-1}(g)``, the paper's prefix-score
recursion reads::

    psi(g + c)   = sum_t phi_t(g, c) x_t(c)
    r^n_t(g + c) = (r^n_{t-1}(g + c) + phi_t(g, c)) x_t(c)
    r^b_t(g + c) = (r^b_{t-1}(g + c) + r^n_{t-1}(g + c)) x_t(blank)

with ``r^b_{-1}(empty) = 1`` and every other ``r_{-1} = 0``.  The prefix probabilities of
*all* candidate next labels need only ``r(g)`` (one log-sum-exp over time per candidate);
the forward variables are extended for the one label actually appended.  The two linear
recurrences are evaluated as a parallel (Hillis-Steele) scan in the log semiring, so a step
costs ``O(log T)`` sequential tensor operations rather than ``T``.

Everything is in log space.  Padded frames (``t >= T_b``) are replaced by "blank with
probability 1", which leaves every ``r`` of the last real frame unchanged up to ``T - 1`` and
contributes nothing to ``psi``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from seqkit.search.state import State

__all__ = ["CTCPrefixScorer"]

# (hypotheses x candidates x frames) elements handled at once when scoring candidates.
_CHUNK_ELEMENTS = 1 << 23


def _log_linear_scan(a: Tensor, b: Tensor) -> Tensor:
    """Solve ``y_t = logaddexp(a_t + y_{t-1}, b_t)`` with ``y_{-1} = -inf`` along dim 1.

    ``a``, ``b``: (N, T) log-space coefficients (no ``+inf``).  Returns ``y`` (N, T).

    Each step is the map ``y -> logaddexp(a + y, b)``; maps compose associatively as
    ``(a1, b1) then (a2, b2) = (a1 + a2, logaddexp(a2 + b1, b2))``, so an inclusive
    Hillis-Steele scan (Hillis & Steele 1986, "Data Parallel Algorithms") gives every prefix
    composition in ``ceil(log2 T)`` rounds; since ``y_{-1} = -inf``, ``y_t`` is the ``b`` of
    the composition of maps ``0..t``.
    """
    t_len = a.size(1)
    d = 1
    while d < t_len:
        new_a = a[:, d:] + a[:, :-d]  # (N, T - d)
        new_b = torch.logaddexp(a[:, d:] + b[:, :-d], b[:, d:])  # (N, T - d)
        a = torch.cat([a[:, :d], new_a], dim=1)
        b = torch.cat([b[:, :d], new_b], dim=1)
        d *= 2
    return b


class CTCPrefixScorer:
    """CTC prefix scorer following the decoder-state contract (:mod:`seqkit.search.state`).

    Args:
        log_probs: (B, T, V) CTC log-posteriors (``log_softmax`` over V, which includes the
            blank); values at padded frames are ignored.  The label vocabulary is shared
            with the attention decoder, so ``V`` must equal the decoder's output size.
        lengths: (B,) long, ``1 <= lengths <= T``, the number of real frames.
        blank: the CTC blank id.  As a next token it scores ``-inf`` (it is not a label).
        eos: the end-of-sentence id.  Its score is the probability of the *whole* hypothesis
            ``log p_ctc(h | X) - log psi(h)``; ``eos`` must differ from ``blank``.

    :meth:`init_state` gives the state of the empty prefix for the B utterances;
    :meth:`step` then follows the contract ``step(tokens (N,), state) -> (scores (N, V),
    state)``: the hypothesis is extended by ``tokens`` (at the first call the tokens are the
    start symbol and extend nothing; ``eos`` and ``blank`` never extend) and the returned
    ``scores[n, c] = log psi(h_n + c) - log psi(h_n)`` are the prefix-score increments of
    every next label ``c``, so they telescope: the increments along ``c_1 .. c_L, eos`` sum
    to ``log p_ctc(c_1 .. c_L | X)``.  Every increment is ``<= 0``.

    State (every entry batch-first, so search may expand and reorder it):
    ``utt`` (N,) long, the utterance each row scores against; ``r`` (N, T + 1, 2) the log
    forward variables ``(r^n, r^b)`` of the prefix for frames ``-1 .. T - 1``; ``last``
    (N,) long, its last label (``-1`` when empty); ``psi`` (N,) its log prefix probability;
    ``started`` (N,) bool.

    The posteriors themselves stay in the scorer (one copy per utterance, not per
    hypothesis); rows refer to them through ``utt``.
    """

    def __init__(self, log_probs: Tensor, lengths: Tensor, *, blank: int = 0, eos: int) -> None:
        if log_probs.dim() != 3:
            raise ValueError(f"log_probs must be (B, T, V), got {tuple(log_probs.shape)}")
        b, t_len, v = log_probs.shape
        lengths = torch.as_tensor(lengths, device=log_probs.device).long()
        if tuple(lengths.shape) != (b,):
            raise ValueError(f"lengths must have shape ({b},), got {tuple(lengths.shape)}")
        if b and (int(lengths.min()) < 1 or int(lengths.max()) > t_len):
            raise ValueError(f"lengths must lie in [1, {t_len}]")
        if not (0 <= blank < v and 0 <= eos < v) or blank == eos:
            raise ValueError(f"need distinct blank and eos in [0, {v}), got {blank} and {eos}")
        self.blank = blank
        self.eos = eos
        self.vocab_size = v
        self.num_frames = t_len
        real = torch.arange(t_len, device=log_probs.device) < lengths.unsqueeze(1)  # (B, T)
        x = log_probs.detach().masked_fill(~real.unsqueeze(2), float("-inf"))
        x[:, :, blank] = torch.where(real, x[:, :, blank], torch.zeros_like(x[:, :, blank]))
        self.x_vt = x.transpose(1, 2).contiguous()  # (B, V, T): rows of one label over time

    def init_state(self) -> State:
        """State of the empty prefix for every utterance (B rows)."""
        x = self.x_vt
        b = x.size(0)
        neg = torch.full((b, self.num_frames + 1), float("-inf"), dtype=x.dtype, device=x.device)
        rb = torch.cat([x.new_zeros(b, 1), torch.cumsum(x[:, self.blank], dim=1)], dim=1)
        return {
            "utt": torch.arange(b, device=x.device),
            "r": torch.stack([neg, rb], dim=2),  # (B, T + 1, 2): r_{-1}^b(empty) = log 1
            "last": torch.full((b,), -1, dtype=torch.long, device=x.device),
            "psi": x.new_zeros(b),
            "started": torch.zeros(b, dtype=torch.bool, device=x.device),
        }

    def _extend(self, tokens: Tensor, state: State) -> State:
        """Append ``tokens`` to every started row (not eos/blank); return the new state."""
        utt, r, last = state["utt"], state["r"], state["last"]
        rn_prev, rb_prev = r[:, :-1, 0], r[:, :-1, 1]  # (N, T): frames -1 .. T - 2
        c = tokens.clamp(0, self.vocab_size - 1)
        xc = self.x_vt[utt, c]  # (N, T) log x_t(c)
        xb = self.x_vt[utt, self.blank]  # (N, T)
        repeat = (c == last).unsqueeze(1)
        phi = torch.where(repeat, rb_prev, torch.logaddexp(rn_prev, rb_prev))  # (N, T)
        psi = torch.logsumexp(phi + xc, dim=1)  # (N,)
        rn = _log_linear_scan(xc, phi + xc)  # (N, T)
        neg = torch.full_like(rn[:, :1], float("-inf"))
        rb = _log_linear_scan(xb, torch.cat([neg, rn[:, :-1]], dim=1) + xb)  # (N, T)
        r_new = torch.stack(
            [torch.cat([neg, rn], dim=1), torch.cat([neg, rb], dim=1)], dim=2
        )  # (N, T + 1, 2)
        ext = state["started"] & (tokens != self.eos) & (tokens != self.blank)  # (N,)
        return {
            "utt": utt,
            "r": torch.where(ext.view(-1, 1, 1), r_new, r),
            "last": torch.where(ext, c, last),
            "psi": torch.where(ext, psi, state["psi"]),
            "started": torch.ones_like(state["started"]),
        }

    def step(
        self, tokens: Tensor, state: State, candidates: Tensor | None = None
    ) -> tuple[Tensor, State]:
        """Extend by ``tokens`` (N,) and score the next labels.

        Args:
            tokens: (N,) long, the token each hypothesis just emitted (the start symbol at
                the first call).
            state: as returned by :meth:`init_state` / a previous :meth:`step`, possibly
                expanded and reordered by search.
            candidates: optional (N, K) long, the only next labels to score (ESPnet's
                partial scoring, e.g. the attention decoder's top K); the others get
                ``-inf``.  ``None`` scores the full vocabulary.

        Returns:
            scores: (N, V), ``log psi(h + c) - log psi(h)`` for labels, ``log p_ctc(h | X) -
            log psi(h)`` for ``eos``, ``-inf`` for ``blank`` (and for non-candidates).
            state: the state of the extended hypotheses.
        """
        state = self._extend(tokens, state)
        utt, r, last, psi = state["utt"], state["r"], state["last"], state["psi"]
        n = utt.size(0)
        v = self.vocab_size
        rn, rb = r[:, :-1, 0], r[:, :-1, 1]  # (N, T)
        a_all = torch.logaddexp(rn, rb)  # phi_t for c != last(h)
        cand = candidates
        if cand is None:
            cand = torch.arange(v, device=utt.device).expand(n, v)
        k = cand.size(1)
        chunk = max(1, _CHUNK_ELEMENTS // max(1, n * self.num_frames))
        parts = []
        for lo in range(0, k, chunk):
            c = cand[:, lo : lo + chunk]  # (N, k')
            xc = self.x_vt[utt.unsqueeze(1), c]  # (N, k', T)
            parts.append(torch.logsumexp(a_all.unsqueeze(1) + xc, dim=2))  # (N, k')
        psi_c = torch.cat(parts, dim=1)  # (N, K)
        # c == last(h): only paths through a blank can start a new copy of the label.
        x_last = self.x_vt[utt, last.clamp(min=0)]  # (N, T)
        psi_same = torch.logsumexp(rb + x_last, dim=1)  # (N,)
        psi_c = torch.where(cand == last.unsqueeze(1), psi_same.unsqueeze(1), psi_c)
        full = torch.logaddexp(r[:, -1, 0], r[:, -1, 1])  # (N,) log p_ctc(h | X)
        psi_c = torch.where(cand == self.eos, full.unsqueeze(1), psi_c)
        psi_c = psi_c.masked_fill(cand == self.blank, float("-inf"))
        inc = psi_c - psi.unsqueeze(1)  # (N, K)
        inc = inc.masked_fill(torch.isneginf(psi).unsqueeze(1), float("-inf"))
        if candidates is None:
            return inc, state
        scores = inc.new_full((n, v), float("-inf"))
        return scores.scatter(1, cand, inc), state
