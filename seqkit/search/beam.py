"""Greedy and batched beam search over the decoder-state contract.

Any object with ``step(tokens (N,), state) -> (log_probs (N, V), state)`` (see
:mod:`seqkit.search.state`) can be searched.  Beam search runs the whole batch at once:
``B`` sentences x ``beam`` hypotheses are ``N = B * beam`` rows of the state, so there is
**one** ``step`` call per model per time step, a top-k over ``beam * V`` candidates per
sentence, and sentences leave the batch as soon as they are finished.

Scoring (all terms are sums over the steps of a hypothesis ``y_1 .. y_n``)::

    log P(y) = (1 - lambda) log P_dec(y) + lambda log P_ctc(y) + sum_i w_i log P_i(y)

* joint CTC/attention decoding with ``ctc=(lambda, scorer, state)``: Watanabe, Hori, Kim,
  Hershey & Hayashi (2017), "Hybrid CTC/Attention Architecture for End-to-End Speech
  Recognition" (IEEE JSTSP), scored by :class:`~seqkit.search.ctc_prefix_score.CTCPrefixScorer`
  (optionally only for the ``ctc_topk`` best tokens of the other terms, as ESPnet does);
* shallow fusion with ``scorers=[(w, lm, lm_state), ...]``: Gulcehre et al. (2015), "On Using
  Monolingual Corpora in Neural Machine Translation" (arXiv:1503.03535); any object following
  the step contract (e.g. :class:`seqkit.nn.lm.RNNLM`) is a scorer;
* finished hypotheses are ranked by the GNMT length-normalised score ``log P(y) / lp(n)``
  with ``lp(n) = ((5 + n) / 6) ** alpha`` (Wu et al. 2016, "Google's Neural Machine
  Translation System", arXiv:1609.08144, Section 7; the coverage penalty is not implemented),
  where ``n`` is the number of decoding steps of the hypothesis (its tokens plus EOS).

Lengths.  At most ``max_len`` tokens are generated per sentence, EOS included (as
``max_new_tokens`` in Hugging Face transformers): a finished hypothesis has at most
``max_len - 1`` tokens before its EOS.  EOS is forbidden (score ``-inf``) while a hypothesis
has fewer than ``min_len`` tokens.  Returned token lists never contain BOS or EOS.

All step scores must be ``<= 0`` (log-probabilities, CTC prefix-score increments) and all
weights ``>= 0``; the exact early-stopping rule of :func:`beam_search` relies on it.
Search runs under ``torch.no_grad()``; put the models in ``eval()`` mode first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import torch
from torch import Tensor

from seqkit.search.state import State, expand_state, select_state

__all__ = [
    "GreedyResult",
    "Hypothesis",
    "Stepper",
    "beam_search",
    "beam_search_per_sentence",
    "gnmt_length_penalty",
    "greedy_search",
]

_NEG_INF = float("-inf")


class Stepper(Protocol):
    """Anything following the decoder-state contract of :mod:`seqkit.search.state`."""

    def step(self, tokens: Tensor, state: State) -> tuple[Tensor, State]: ...


#: ``(weight, model, initial state with B rows)``; a model with an empty initial state
#: (e.g. ``RNNLM`` with ``{}``) builds its own rows at its first step.
WeightedScorer = tuple[float, Stepper, State]


def gnmt_length_penalty(length: Tensor | int | float, alpha: float) -> Tensor:
    """GNMT length penalty ``lp(n) = ((5 + n) / 6) ** alpha`` (Wu et al. 2016, Section 7).

    ``length``: a number or a tensor of any shape; returns a float64 tensor of that shape.
    """
    n = torch.as_tensor(length, dtype=torch.float64)
    return ((5.0 + n) / 6.0) ** alpha


@dataclass
class Hypothesis:
    """One output of :func:`beam_search`.

    Attributes:
        tokens: the output token ids, without BOS and EOS.
        score: the ranking score ``log_prob / lp(length)``.
        log_prob: the fused log-probability of the hypothesis (EOS included when finished).
        length: decoding steps, ``len(tokens) + 1`` if finished else ``len(tokens)``.
        finished: False for a hypothesis that reached ``max_len`` without EOS (returned only
            when a sentence has fewer than ``nbest`` finished hypotheses).
        components: the *unweighted* sum of each model's step scores: ``"decoder"``,
            ``"ctc"`` (with ``ctc``) and ``"scorer0"``, ``"scorer1"``, ... (``scorers``).
    """

    tokens: list[int]
    score: float
    log_prob: float
    length: int
    finished: bool
    components: dict[str, float] = field(default_factory=dict)


@dataclass
class GreedyResult:
    """Output of :func:`greedy_search`.

    Attributes:
        tokens: (B, L) long, the output tokens without BOS/EOS, ``pad`` after ``lengths``.
        lengths: (B,) long, tokens per sentence (EOS not counted).
        scores: (B,) float (the models' dtype, at least float32), the fused log-probability
            of each output (EOS included when finished).
        finished: (B,) bool, False where ``max_len`` was reached without EOS.
    """

    tokens: Tensor
    lengths: Tensor
    scores: Tensor
    finished: Tensor


def _per_sentence(value: int | Tensor, b: int, name: str) -> Tensor:
    """An int or a (B,) tensor as a (B,) long CPU tensor."""
    t = torch.as_tensor(value).long().cpu()
    if t.dim() == 0:
        t = t.expand(b).clone()
    if tuple(t.shape) != (b,):
        raise ValueError(f"{name} must be an int or a ({b},) tensor, got shape {tuple(t.shape)}")
    return t


def _batch_info(state: State) -> tuple[int, torch.device]:
    if not state:
        raise ValueError("the decoder state is empty: cannot tell the batch size")
    first = next(iter(state.values()))
    return first.size(0), first.device


class _Entry:
    """One model with its state, and the state keys that are *static* for search.

    A key is static while the model has returned, at every step since the state was
    expanded for the beam, the very tensor it was given, unmodified (same object, same
    in-place version counter): encoder memory, masks, key projections, CTC utterance ids.
    Its ``beam`` rows of a sentence are then copies of one row, so reordering hypotheses
    *within* a sentence leaves it unchanged and :meth:`reorder` skips the copy.
    """

    def __init__(self, weight: float, model, state: State) -> None:
        self.weight = weight
        self.model = model
        self.state = state
        self.static: set[str] = set()

    def step(self, tokens: Tensor, **kwargs) -> Tensor:
        old = self.state
        versions = {k: old[k]._version for k in self.static}
        scores, new = self.model.step(tokens, old, **kwargs)
        self.static = {
            k for k in self.static if new.get(k) is old[k] and new[k]._version == versions[k]
        }
        self.state = new
        return scores

    def expand(self, beam: int) -> None:
        self.state = expand_state(self.state, beam)
        # inference-mode tensors keep no version counter, so an in-place change could not
        # be seen: they are never treated as static (always gathered; exact, a little slower)
        self.static = {k for k, v in self.state.items() if not v.is_inference()}

    def reorder(self, index: Tensor) -> None:
        """Gather rows ``index``, each taken from the same sentence's group of rows."""
        self.state = {
            k: v if k in self.static else v.index_select(0, index) for k, v in self.state.items()
        }

    def select(self, index: Tensor) -> None:
        self.state = select_state(self.state, index)


class _Models:
    """The decoder and every scorer with their states, stepped together on N rows."""

    def __init__(
        self,
        decoder: Stepper,
        state: State,
        scorers: Sequence[WeightedScorer],
        ctc: tuple[float, Stepper, State] | None,
        ctc_topk: int | None,
        eos: int,
    ) -> None:
        for w, _, _ in scorers:
            if w < 0:
                raise ValueError(f"scorer weights must be >= 0, got {w}")
        self.eos = eos
        self._eos_col: Tensor | None = None  # (V,) bool, made by _eos_column
        self.decoder = _Entry(1.0, decoder, state)
        self.ctc = None
        self.names = ["decoder"]
        if ctc is not None:
            lam, ctc_model, ctc_state = ctc
            if not 0.0 <= lam <= 1.0:
                raise ValueError(f"ctc weight must be in [0, 1], got {lam}")
            self.decoder.weight = 1.0 - lam
            self.ctc = _Entry(lam, ctc_model, ctc_state)
            self.names.append("ctc")
        if ctc_topk is not None and ctc_topk < 1:
            raise ValueError(f"ctc_topk must be >= 1, got {ctc_topk}")
        self.ctc_topk = ctc_topk
        self.scorers = [_Entry(w, m, st) for w, m, st in scorers]
        self.names += [f"scorer{i}" for i in range(len(self.scorers))]
        self.entries = [self.decoder] + ([self.ctc] if self.ctc else []) + self.scorers

    def expand(self, beam: int) -> None:
        for entry in self.entries:
            entry.expand(beam)

    def reorder(self, index: Tensor) -> None:
        """Rows ``index`` (N,), each from its own sentence's group (after a beam step)."""
        for entry in self.entries:
            entry.reorder(index)

    def select(self, index: Tensor) -> None:
        """Any rows ``index`` (e.g. dropping finished sentences)."""
        for entry in self.entries:
            entry.select(index)

    def _eos_column(self, scores: Tensor) -> Tensor:
        """(V,) bool, True at EOS only, on the scores' device (made once)."""
        col = self._eos_col
        if col is None or col.device != scores.device or col.numel() != scores.size(1):
            col = torch.zeros(scores.size(1), dtype=torch.bool, device=scores.device)
            col[self.eos] = True
            self._eos_col = col
        return col

    def step(self, tokens: Tensor, no_eos: Tensor | bool | None) -> tuple[Tensor, list[Tensor]]:
        """Fused scores (N, V) and the per-model scores [(N, V), ...] in ``names`` order.

        ``no_eos``: rows where EOS is forbidden (``-inf``): an (N,) bool tensor, ``True`` for
        every row, or ``None`` for none.
        """
        lp = self.decoder.step(tokens)
        w = self.decoder.weight
        # (a zero weight is skipped rather than multiplied: 0 * -inf would be nan)
        total = lp if w == 1.0 else (lp * w if w != 0.0 else torch.zeros_like(lp))
        extra = []
        for entry in self.scorers:
            s = entry.step(tokens)
            if s.shape != lp.shape:
                raise ValueError(f"scorer scores {tuple(s.shape)} != decoder's {tuple(lp.shape)}")
            extra.append(s)
            if entry.weight != 0.0:
                total = total + entry.weight * s
        if no_eos is not None:
            ban = self._eos_column(total)  # (V,) True at EOS
            if no_eos is not True:
                ban = no_eos.unsqueeze(1) & ban  # (N, V)
            total = total.masked_fill(ban, _NEG_INF)  # out of place: lp stays as returned
        parts = [lp]
        if self.ctc is not None:
            if self.ctc_topk is not None and self.ctc_topk < lp.size(1):
                cand = total.topk(self.ctc_topk, dim=1).indices  # (N, K)
                c = self.ctc.step(tokens, candidates=cand)
            else:
                c = self.ctc.step(tokens)
            if c.shape != lp.shape:
                raise ValueError(f"CTC scores {tuple(c.shape)} != decoder's {tuple(lp.shape)}")
            parts.append(c)
            if self.ctc.weight != 0.0:
                total = total + self.ctc.weight * c
        return total, parts + extra


@torch.no_grad()
def greedy_search(
    decoder: Stepper,
    state: State,
    *,
    bos: int,
    eos: int,
    max_len: int | Tensor,
    min_len: int | Tensor = 0,
    scorers: Sequence[WeightedScorer] = (),
    ctc: tuple[float, Stepper, State] | None = None,
    ctc_topk: int | None = None,
    pad: int = 0,
) -> GreedyResult:
    """Greedy (argmax) decoding of a batch, with the same fused score as :func:`beam_search`.

    Args:
        decoder: follows the step contract; ``state`` is its initial state (B rows).
        bos / eos: start and end token ids.
        max_len: int or (B,) long: at most this many tokens per sentence, EOS included.
        min_len: int or (B,) long: EOS is forbidden before this many tokens.
        scorers / ctc / ctc_topk: fusion terms, as in :func:`beam_search`.
        pad: the id written after each output's end in ``tokens``.

    Returns: a :class:`GreedyResult` (tokens (B, L), lengths (B,), scores (B,), finished (B,)).
    Sentences that have ended are still stepped (with ``eos`` as input) until all have, but
    their outputs are ignored.
    """
    b, device = _batch_info(state)
    max_len_t = _per_sentence(max_len, b, "max_len").to(device)
    min_len_t = _per_sentence(min_len, b, "min_len").to(device)
    models = _Models(decoder, state, scorers, ctc, ctc_topk, eos)
    tokens = torch.full((b,), bos, dtype=torch.long, device=device)
    done = max_len_t < 1
    finished = torch.zeros(b, dtype=torch.bool, device=device)
    scores: Tensor | None = None
    lengths = torch.zeros(b, dtype=torch.long, device=device)
    out: list[Tensor] = []
    limit = int(max_len_t.max()) if b else 0
    for t in range(1, limit + 1):
        if bool(done.all()):
            break
        no_eos = (t - 1) < min_len_t
        total, _ = models.step(tokens, no_eos if bool(no_eos.any()) else None)  # (B, V)
        best, choice = total.max(dim=1)  # (B,)
        running = ~done
        is_eos = running & (choice == eos)
        emit = running & ~is_eos
        if scores is None:
            scores = best.new_zeros(b, dtype=torch.promote_types(best.dtype, torch.float32))
        scores = scores + torch.where(running, best.to(scores.dtype), scores.new_zeros(()))
        out.append(torch.where(emit, choice, torch.full_like(choice, pad)))
        lengths = lengths + emit.long()
        finished = finished | is_eos
        done = done | is_eos | (t >= max_len_t)
        tokens = torch.where(done, torch.full_like(choice, eos), choice)
    toks = torch.stack(out, dim=1) if out else torch.full((b, 0), pad, device=device)
    if scores is None:
        scores = torch.zeros(b, device=device)
    return GreedyResult(toks[:, : int(lengths.max()) if b else 0], lengths, scores, finished)


class _Book:
    """Host side of beam search: each sentence's pool of finished hypotheses, its results
    and the stopping rule (see :func:`beam_search`); all CPU, no tensors on the device."""

    def __init__(self, b: int, k: int, nbest: int, alpha: float, max_len_c: Tensor, stop: str,
                 names: list[str]) -> None:
        self.k, self.nbest, self.alpha, self.stop, self.names = k, nbest, alpha, stop, names
        self.max_len_c = max_len_c
        self.max_len_l = max_len_c.tolist()
        self.lp_max = gnmt_length_penalty(max_len_c, alpha)  # (B,) lp(max_len) per sentence
        self.pools: list[list[Hypothesis]] = [[] for _ in range(b)]
        self.kth = torch.full((b,), _NEG_INF, dtype=torch.float64)  # score of pool[nbest - 1]
        self.results: list[list[Hypothesis] | None] = [None] * b

    def _components(self, log_prob: float, comps: list[float] | None) -> dict[str, float]:
        # without fusion terms the decoder's running sum is the hypothesis score itself
        return {"decoder": log_prob} if comps is None else dict(zip(self.names, comps))

    def add_finished(self, sents: list[int], tokens: list[list[int]], vals: list[float],
                     comps: list[list[float]] | None, t: int) -> None:
        """Finished hypotheses ending at step ``t``, in order of discovery."""
        lp_t = float(gnmt_length_penalty(t, self.alpha))
        for i, s in enumerate(sents):
            hyp = Hypothesis(tokens=tokens[i], score=vals[i] / lp_t, log_prob=vals[i], length=t,
                             finished=True,
                             components=self._components(vals[i], None if comps is None else comps[i]))
            # stable sort: equal scores keep their order of discovery
            pool = sorted(self.pools[s] + [hyp], key=lambda h: -h.score)[: self.nbest]
            self.pools[s] = pool
            if len(pool) >= self.nbest:
                self.kth[s] = pool[self.nbest - 1].score

    def done(self, active: Tensor, best_live: Tensor, t: int) -> Tensor:
        """(A,) bool CPU: which sentences ``active`` stop after step ``t``."""
        if self.alpha >= 0:
            lp_star = self.lp_max[active]
        else:
            lp_star = gnmt_length_penalty(t + 1, self.alpha)
        kth = self.kth[active]
        if self.stop == "exact":
            enough = kth >= best_live / lp_star
        elif self.stop == "nbest":
            enough = ~torch.isneginf(kth)
        else:
            enough = torch.zeros_like(kth, dtype=torch.bool)
        return (self.max_len_c[active] <= t) | torch.isneginf(best_live) | enough

    def needs_fallback(self, s: int, t: int) -> bool:
        return len(self.pools[s]) < self.nbest and t >= self.max_len_l[s]

    def close(self, s: int, t: int, live: list[float] | None = None,
              hist: list[list[int]] | None = None, comps: list[list[float]] | None = None) -> None:
        """Result of sentence ``s``: its pool, then (``live`` (K,) scores and ``hist`` (K, t)
        tokens of its live beam given) the best live hypotheses as unfinished fallbacks."""
        pool = self.pools[s]
        fallback: list[Hypothesis] = []
        if live is not None:
            lp_t = float(gnmt_length_penalty(t, self.alpha))
            for j in sorted(range(self.k), key=lambda j: -live[j])[: self.nbest - len(pool)]:
                if live[j] == _NEG_INF:
                    break
                fallback.append(
                    Hypothesis(tokens=hist[j], score=live[j] / lp_t, log_prob=live[j], length=t,
                               finished=False,
                               components=self._components(live[j], None if comps is None else comps[j]))
                )
        self.results[s] = pool + fallback

    def output(self) -> list[list[Hypothesis]]:
        return [r if r is not None else [] for r in self.results]


def _ranks(k: int, v: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """``rank`` (2K,) ``0 .. 2K-1`` (at most ``K*V``) and ``rank + 2K``, the rank an EOS
    candidate gets so that it sorts after every other (made once per search)."""
    rank = torch.arange(min(2 * k, k * v), device=device)
    return rank, rank + rank.numel()


class _Candidates(NamedTuple):
    """One beam step's candidates (A sentences, K hypotheses each); see :func:`_candidates`."""

    top_v: Tensor  # (A, 2K) scores of the best candidates, best first
    top_i: Tensor  # (A, 2K) their indices into K*V
    parent: Tensor  # (A, 2K) their hypothesis
    fin: Tensor  # (A, K) bool: an EOS candidate among the K best with a finite score
    sel: Tensor  # (A, K) the K best non-EOS candidates, by rank
    live: Tensor  # (A, K) their scores (-inf where dead)
    new_parent: Tensor  # (A, K) their hypothesis
    new_token: Tensor  # (A, K) their token


def _candidates(live: Tensor, total: Tensor, k: int, eos: int, ranks: Sequence[Tensor]
                ) -> _Candidates:
    """One beam step on the device, no host synchronisation: ``live`` (A, K) running
    scores, ``total`` (A*K, V) fused step scores, ``ranks`` from :func:`_ranks`."""
    a_n, v = live.size(0), total.size(1)
    rank, rank_eos = ranks
    cand = (live.unsqueeze(2) + total.view(a_n, k, v)).view(a_n, k * v)  # (A, K*V)
    top_v, top_i = cand.topk(rank.numel(), dim=1)  # (A, 2K), best first
    parent = torch.div(top_i, v, rounding_mode="floor")  # (A, 2K)
    token = top_i % v
    is_eos = token == eos
    fin = is_eos[:, :k] & (top_v[:, :k] != _NEG_INF)  # (A, K); scores are <= 0
    sel = torch.where(is_eos, rank_eos, rank).topk(k, dim=1, largest=False).indices  # (A, K)
    new_live = top_v.gather(1, sel).masked_fill(is_eos.gather(1, sel), _NEG_INF)  # (A, K)
    return _Candidates(top_v, top_i, parent, fin, sel, new_live, parent.gather(1, sel), token.gather(1, sel))


@torch.no_grad()
def beam_search(
    decoder: Stepper,
    state: State,
    *,
    beam: int,
    bos: int,
    eos: int,
    max_len: int | Tensor,
    min_len: int | Tensor = 0,
    length_penalty: float = 0.0,
    nbest: int = 1,
    scorers: Sequence[WeightedScorer] = (),
    ctc: tuple[float, Stepper, State] | None = None,
    ctc_topk: int | None = None,
    stop: str = "exact",
    cuda_graph: bool = False,
) -> list[list[Hypothesis]]:
    """Batched beam search: all ``B`` sentences x ``beam`` hypotheses in one step per model.

    Args:
        decoder: follows the step contract (:mod:`seqkit.search.state`); ``state`` is its
            initial state with B rows (e.g. ``AttentionalDecoder.init_state(memory, mask)``).
        beam: K, live hypotheses kept per sentence.
        bos / eos: start and end token ids.
        max_len: int or (B,) long: at most this many tokens per sentence, EOS included.
        min_len: int or (B,) long: EOS is forbidden before this many tokens.
        length_penalty: GNMT ``alpha`` (0 ranks by ``log P``; 0.6 - 1.0 favours longer
            outputs).
        nbest: hypotheses returned per sentence (``<= beam``).
        scorers: ``[(w, model, state), ...]`` shallow-fusion terms ``w * log P_model``, each
            model following the step contract over the same vocabulary; ``state`` has B
            rows (or is empty).
        ctc: ``(lambda, scorer, state)``, e.g. ``(0.3, s, s.init_state())`` with a
            :class:`~seqkit.search.ctc_prefix_score.CTCPrefixScorer`: the decoder's term
            is weighted ``1 - lambda`` and the CTC prefix score ``lambda``.
        ctc_topk: score CTC only for the ``ctc_topk`` best tokens of each hypothesis under
            the other terms (ESPnet's partial scoring); the others get ``-inf``.  ``None``
            scores the whole vocabulary (exact).
        stop: ``"exact"`` (default), ``"nbest"`` or ``"max_len"``: the stopping rule below.
        cuda_graph: on a CUDA device, with the decoder alone (no ``scorers``, no ``ctc``),
            replay each step as one captured CUDA graph (see :func:`_graphed_steps`); the
            decoder's ``step`` must then be capturable (no host synchronisation, fixed
            shapes).  Ignored elsewhere.

    Algorithm, per step and sentence (as in fairseq's ``SequenceGenerator``): the fused
    scores of the K live hypotheses extended by every token give ``K * V`` candidates, of
    which the best ``2K`` are kept.  A candidate ending in EOS whose rank is ``< K`` (and
    whose score is finite) joins the sentence's pool of finished hypotheses, ranked by
    ``log P / lp(n)`` and cut to ``nbest``; finished hypotheses are never extended.  The
    best ``K`` non-EOS candidates are the next live hypotheses (``-inf`` ones are dead).
    At the first step only the BOS hypothesis is live, so all hypotheses are distinct.

    Stopping rule.  ``stop="exact"``: a sentence stops when it has ``nbest`` finished
    hypotheses and no live one can beat the worst of them.  Since step scores are ``<= 0``,
    a live hypothesis with score ``s`` after ``t`` steps can reach at most ``s / lp*`` where
    ``lp* = lp(max_len)`` for ``alpha >= 0`` and ``lp(t + 1)`` for ``alpha < 0`` (the bound
    of tensor2tensor's beam search); so stopping early never changes the result compared
    with running to ``max_len``.  With ``alpha > 0`` and a long ``max_len`` the bound is
    loose and the search often runs to ``max_len``.  ``stop="nbest"``: a sentence stops as
    soon as it has ``nbest`` finished hypotheses ("beam finished", as fairseq does with
    ``beam`` in place of ``nbest``); cheaper, but a longer hypothesis that would have scored
    better is then never found.  ``stop="max_len"``: no early stop (a reference for the
    exact rule).  Every rule also stops a sentence at ``max_len`` or when every live
    hypothesis is ``-inf``.  If it then has fewer
    than ``nbest`` finished hypotheses, the best live ones fill the list, with
    ``finished=False`` and score ``log P / lp(max_len)``.

    Running scores are kept in the models' dtype (at least float32).

    Returns:
        For each sentence, up to ``nbest`` distinct :class:`Hypothesis`: the finished ones
        sorted by score (best first), then any unfinished fallbacks, sorted by score.
    """
    if beam < 1 or not 1 <= nbest <= beam:
        raise ValueError(f"need beam >= 1 and 1 <= nbest <= beam, got {beam} and {nbest}")
    if stop not in ("exact", "nbest", "max_len"):
        raise ValueError(f"stop must be 'exact', 'nbest' or 'max_len', got {stop!r}")
    b, device = _batch_info(state)
    k = beam
    max_len_c = _per_sentence(max_len, b, "max_len")  # CPU
    min_len_c = _per_sentence(min_len, b, "min_len")
    limit = int(max_len_c.max()) if b else 0
    if b and int(max_len_c.min()) < 1:
        raise ValueError("max_len must be >= 1")
    models = _Models(decoder, state, scorers, ctc, ctc_topk, eos)
    book = _Book(b, k, nbest, float(length_penalty), max_len_c, stop, models.names)
    models.expand(k)
    if cuda_graph and device.type == "cuda" and b and not scorers and ctc is None:
        _graphed_steps(models, book, b, k, limit, min_len_c, bos, eos, device)
        return book.output()
    n_comp = len(models.names)
    # with fusion terms, per-model running sums (A, K, C) for the components of the output
    track = n_comp > 1
    active = torch.arange(b)  # CPU: the sentence of each active row group
    active_l = active.tolist()
    live = torch.full((b, k), _NEG_INF, dtype=torch.float64, device=device)
    live[:, 0] = 0.0
    hist = torch.zeros((b, k, 0), dtype=torch.long, device=device)  # (A, K, t)
    comps = torch.zeros((b, k, n_comp if track else 0), dtype=torch.float64, device=device)
    tokens = torch.full((b * k,), bos, dtype=torch.long, device=device)
    base = torch.arange(b, device=device).unsqueeze(1) * k  # (A, 1): first row of each group

    for t in range(1, limit + 1):
        a_n = len(active_l)
        ban = (t - 1) < min_len_c[active]  # (A,) CPU: rows where EOS is still forbidden
        no_eos: Tensor | bool | None = None
        if bool(ban.all()):
            no_eos = True
        elif bool(ban.any()):
            no_eos = ban.repeat_interleave(k).to(device)
        total, parts = models.step(tokens, no_eos)  # (A*K, V)
        v = total.size(1)
        if t == 1:  # running sums in the models' dtype, at least float32
            sdtype = torch.promote_types(total.dtype, torch.float32)
            live, comps = live.to(sdtype), comps.to(sdtype)
            ranks = _ranks(k, v, device)
        c = _candidates(live, total, k, eos, ranks)
        top_v, parent, fin, live, new_parent, new_token = (
            c.top_v, c.parent, c.fin, c.live, c.new_parent, c.new_token
        )
        if track:  # per-model running sums for every kept candidate: (A, 2K, C)
            part_vals = torch.stack([p.view(a_n, k * v).gather(1, c.top_i) for p in parts], dim=2)
            cand_comps = comps.gather(1, parent.unsqueeze(2).expand(-1, -1, n_comp)) + part_vals
            comps = cand_comps.gather(1, c.sel.unsqueeze(2).expand(-1, -1, n_comp))
        prev_hist = hist
        hist = torch.cat(
            [hist.gather(1, new_parent.unsqueeze(2).expand(-1, -1, t - 1)), new_token.unsqueeze(2)],
            dim=2,
        )  # (A, K, t)
        models.reorder((base + new_parent).view(-1))
        tokens = new_token.view(-1)

        # one transfer per step: each sentence's best live score and its finished flags
        flags = torch.cat([live.max(dim=1, keepdim=True).values, fin.to(live.dtype)], dim=1)
        flags = flags.to("cpu", torch.float64)  # (A, 1 + K)
        fin_c = flags[:, 1:] != 0
        if bool(fin_c.any()):
            fa, fj = fin_c.nonzero(as_tuple=True)  # row-major: sentence order, then rank
            fa_d, fj_d = fa.to(device), fj.to(device)
            book.add_finished(
                [active_l[a] for a in fa.tolist()],
                prev_hist[fa_d, parent[fa_d, fj_d]].tolist(),  # (F, t - 1)
                top_v[fa_d, fj_d].tolist(),
                cand_comps[fa_d, fj_d].tolist() if track else None,
                t,
            )
        done = book.done(active, flags[:, 0], t)
        if bool(done.any()):
            rows_done = done.nonzero().view(-1).tolist()
            need = [a for a in rows_done if book.needs_fallback(active_l[a], t)]
            fb: dict[int, tuple] = {}
            if need:  # one transfer of the live beams that give fallbacks
                idx = torch.tensor(need, device=device)
                fb = dict(zip(need, zip(live[idx].tolist(), hist[idx].tolist(),
                                        comps[idx].tolist() if track else [None] * len(need))))
            for a in rows_done:
                book.close(active_l[a], t, *fb.get(a, ()))
            keep = (~done).nonzero().view(-1)
            if keep.numel() == 0:
                break
            keep_d = keep.to(device)
            active = active[keep]
            active_l = active.tolist()
            live, hist = live[keep_d], hist[keep_d]
            if track:
                comps = comps[keep_d]
            rows = (keep_d.unsqueeze(1) * k + torch.arange(k, device=device)).view(-1)
            models.select(rows)
            tokens = tokens[rows]
            base = torch.arange(active.numel(), device=device).unsqueeze(1) * k
    return book.output()


def _graphed_steps(models: _Models, book: _Book, b: int, k: int, limit: int, min_len_c: Tensor,
                   bos: int, eos: int, device: torch.device) -> None:
    """The steps of :func:`beam_search` for the decoder alone, replayed as one CUDA graph.

    On a GPU a beam step of a small decoder is a few dozen tiny kernels, so the host's
    launches set the speed.  Here the whole step (decoder, top-k, reordering of the state,
    the EOS ban) works in place on fixed buffers; it runs once eagerly (step 1, which also
    warms the kernels up), is captured once, and is replayed for steps 2, 3, ...  Per step
    the host reads one small (B, 6K) copy: the live scores, the finished flags, scores and
    parents, and the chosen parents and tokens, from which it keeps the token histories
    itself (NumPy); the copy of step ``t`` is read while the GPU already runs step
    ``t + 1``.  No sentence leaves the batch: a stopped sentence's rows keep running and are
    ignored.  The search is the eager one; only the kernels' batch composition differs
    (sentences are not dropped), so scores can differ in the last bits.
    """
    import numpy as np

    entry = models.decoder
    bufs = dict(entry.state)  # the expanded state: the graph's fixed inputs
    fdtype = next((x.dtype for x in bufs.values() if x.is_floating_point()), torch.float32)
    sdtype = torch.promote_types(fdtype, torch.float32)
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        min_rows = min_len_c.to(device).repeat_interleave(k)  # (N,)
        n_prev = torch.zeros((), dtype=torch.long, device=device)  # tokens so far (t - 1)
        tokens = torch.full((b * k,), bos, dtype=torch.long, device=device)
        live = torch.full((b, k), _NEG_INF, dtype=sdtype, device=device)
        live[:, 0] = 0.0
        base = torch.arange(b, device=device).unsqueeze(1) * k
    out: dict[str, Tensor] = {}
    ranks: list[Tensor] = []

    def step() -> None:
        total, _ = models.step(tokens, n_prev < min_rows)  # (N, V)
        if not ranks:  # made at the first (eager) step, before the capture
            ranks.extend(_ranks(k, total.size(1), device))
        c = _candidates(live, total, k, eos, ranks)
        host = [c.live, c.fin, c.top_v[:, :k], c.parent[:, :k], c.new_parent, c.new_token]
        out["host"] = torch.cat([x.to(torch.float64) for x in host], dim=1)  # (B, 6K), exact
        live.copy_(c.live)
        models.reorder((base + c.new_parent).view(-1))
        for key, x in entry.state.items():
            if x is not bufs[key]:
                bufs[key].copy_(x)
        entry.state = dict(bufs)
        tokens.copy_(c.new_token.view(-1))
        n_prev.add_(1)

    pinned = [torch.empty((b, 6 * k), dtype=torch.float64, pin_memory=True) for _ in range(2)]
    ready = [torch.cuda.Event(), torch.cuda.Event()]
    graph = torch.cuda.CUDAGraph()

    def launch(t: int) -> None:  # enqueue step t and the copy of what the host reads
        if t > 1:
            graph.replay()
        else:
            step()
        pinned[t % 2].copy_(out["host"], non_blocking=True)
        ready[t % 2].record(side)

    hist = np.zeros((b, k, 0), dtype=np.int64)  # (B, K, t): the live hypotheses' tokens
    done = np.zeros(b, dtype=bool)
    with torch.cuda.stream(side):
        launch(1)
        if limit > 1:
            side.synchronize()
            graph.capture_begin()
            try:
                step()
            finally:
                graph.capture_end()
            launch(2)
        for t in range(1, limit + 1):
            ready[t % 2].synchronize()
            host = pinned[t % 2].numpy()
            live_h, fin = host[:, :k], host[:, k : 2 * k] != 0
            fin_val, fin_par = host[:, 2 * k : 3 * k], host[:, 3 * k : 4 * k].astype(np.int64)
            new_par, new_tok = host[:, 4 * k : 5 * k].astype(np.int64), host[:, 5 * k :].astype(np.int64)
            fin &= ~done[:, None]
            if fin.any():
                fa, fj = fin.nonzero()  # row-major: sentence order, then rank
                book.add_finished(fa.tolist(), hist[fa, fin_par[fa, fj]].tolist(),
                                  fin_val[fa, fj].tolist(), None, t)
            hist = np.concatenate(
                [np.take_along_axis(hist, new_par[:, :, None], axis=1), new_tok[:, :, None]], axis=2
            )
            act = np.flatnonzero(~done)
            stop = book.done(torch.from_numpy(act), torch.from_numpy(live_h.max(axis=1)[act]), t).numpy()
            for s in act[stop].tolist():
                if book.needs_fallback(s, t):
                    book.close(s, t, live_h[s].tolist(), hist[s].tolist())
                else:
                    book.close(s, t)
            done[act[stop]] = True
            if done.all():
                break
            if t + 2 <= limit:
                launch(t + 2)
        side.synchronize()
    torch.cuda.current_stream(device).wait_stream(side)


def beam_search_per_sentence(
    decoder: Stepper,
    state: State,
    *,
    scorers: Sequence[WeightedScorer] = (),
    ctc: tuple[float, Stepper, State] | None = None,
    max_len: int | Tensor,
    min_len: int | Tensor = 0,
    **kwargs,
) -> list[list[Hypothesis]]:
    """The same :func:`beam_search`, run on one sentence at a time (B calls with B = 1).

    The per-sentence loop that batched search replaces; it is the reference of the
    equivalence tests and the baseline of ``benchmarks/beam_speed.py``.  Arguments as in
    :func:`beam_search` (``kwargs``: ``beam``, ``bos``, ``eos``, ``length_penalty``,
    ``nbest``, ``ctc_topk``, ``stop``); every state is split with :func:`select_state`.
    """
    b, device = _batch_info(state)
    max_len_c = _per_sentence(max_len, b, "max_len")
    min_len_c = _per_sentence(min_len, b, "min_len")
    out: list[list[Hypothesis]] = []
    for i in range(b):
        idx = torch.tensor([i], device=device)

        def one(st: State, idx: Tensor = idx) -> State:
            return select_state(st, idx.to(next(iter(st.values())).device)) if st else st

        out += beam_search(
            decoder,
            one(state),
            scorers=[(w, m, one(st)) for w, m, st in scorers],
            ctc=None if ctc is None else (ctc[0], ctc[1], one(ctc[2])),
            max_len=int(max_len_c[i]),
            min_len=int(min_len_c[i]),
            **kwargs,
        )
    return out
