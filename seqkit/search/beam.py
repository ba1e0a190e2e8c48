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
from typing import Protocol

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

    def step(self, tokens: Tensor, no_eos: Tensor | None) -> tuple[Tensor, list[Tensor]]:
        """Fused scores (N, V) and the per-model scores [(N, V), ...] in ``names`` order.

        ``no_eos``: optional (N,) bool, rows where EOS is forbidden (``-inf``).
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
            total = total.clone()
            total[:, self.eos] = total[:, self.eos].masked_fill(no_eos, _NEG_INF)
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
    alpha = float(length_penalty)
    max_len_c = _per_sentence(max_len, b, "max_len")  # CPU
    min_len_c = _per_sentence(min_len, b, "min_len")
    min_len_d = min_len_c.to(device)
    models = _Models(decoder, state, scorers, ctc, ctc_topk, eos)
    n_comp = len(models.names)
    models.expand(k)

    results: list[list[Hypothesis] | None] = [None] * b
    pools: list[list[Hypothesis]] = [[] for _ in range(b)]
    active = torch.arange(b)  # CPU: the sentence of each active row group
    live = torch.full((b, k), _NEG_INF, dtype=torch.float64, device=device)
    live[:, 0] = 0.0
    hist = torch.zeros((b, k, 0), dtype=torch.long, device=device)  # (A, K, t)
    comps = torch.zeros((b, k, n_comp), dtype=torch.float64, device=device)  # (A, K, C)
    tokens = torch.full((b * k,), bos, dtype=torch.long, device=device)

    def finish(a_rows: list[int], t: int) -> None:
        """Close sentences ``active[a]``; unfinished fallbacks from their live beams."""
        for a in a_rows:
            s = int(active[a])
            pool = pools[s]
            missing = nbest - len(pool)
            fallback: list[Hypothesis] = []
            if missing > 0 and t >= int(max_len_c[s]):
                lp_t = float(gnmt_length_penalty(t, alpha))
                vals = live[a].tolist()
                for j in sorted(range(k), key=lambda j: -vals[j])[:missing]:
                    if vals[j] == _NEG_INF:
                        break
                    fallback.append(
                        Hypothesis(
                            tokens=hist[a, j].tolist(),
                            score=vals[j] / lp_t,
                            log_prob=vals[j],
                            length=t,
                            finished=False,
                            components=dict(zip(models.names, comps[a, j].tolist())),
                        )
                    )
            results[s] = pool + fallback

    limit = int(max_len_c.max()) if b else 0
    if b and int(max_len_c.min()) < 1:
        raise ValueError("max_len must be >= 1")
    for t in range(1, limit + 1):
        a_n = active.numel()
        rows_no_eos = (t - 1) < min_len_d[active.to(device)]  # (A,)
        no_eos = rows_no_eos.repeat_interleave(k) if bool(rows_no_eos.any()) else None
        total, parts = models.step(tokens, no_eos)  # (A*K, V)
        v = total.size(1)
        if t == 1:  # running sums in the models' dtype, at least float32
            sdtype = torch.promote_types(total.dtype, torch.float32)
            live, comps = live.to(sdtype), comps.to(sdtype)
        cand = (live.unsqueeze(2) + total.view(a_n, k, v)).view(a_n, k * v)  # (A, K*V)
        n_top = min(2 * k, k * v)
        top_v, top_i = cand.topk(n_top, dim=1)  # (A, 2K), best first
        parent = torch.div(top_i, v, rounding_mode="floor")  # (A, 2K)
        token = top_i % v
        is_eos = token == eos
        # per-model running sums for every kept candidate: (A, 2K, C)
        part_vals = torch.stack([p.view(a_n, k * v).gather(1, top_i) for p in parts], dim=2)
        cand_comps = comps.gather(1, parent.unsqueeze(2).expand(-1, -1, n_comp)) + part_vals

        fin = is_eos & torch.isfinite(top_v)
        fin[:, k:] = False
        if bool(fin.any()):
            lp_t = float(gnmt_length_penalty(t, alpha))
            for a, j in fin.nonzero().tolist():
                s = int(active[a])
                p = int(parent[a, j])
                lp_val = float(top_v[a, j])
                pools[s].append(
                    Hypothesis(
                        tokens=hist[a, p].tolist(),
                        score=lp_val / lp_t,
                        log_prob=lp_val,
                        length=t,
                        finished=True,
                        components=dict(zip(models.names, cand_comps[a, j].tolist())),
                    )
                )
                # stable sort: equal scores keep their order of discovery
                pools[s] = sorted(pools[s], key=lambda h: -h.score)[:nbest]

        # next live hypotheses: the K best non-EOS candidates (dead if -inf)
        rank = torch.arange(n_top, device=device).expand(a_n, n_top)
        order = rank + n_top * is_eos.long()
        sel = order.topk(k, dim=1, largest=False).indices  # (A, K), by rank
        sel_eos = is_eos.gather(1, sel)
        live = top_v.gather(1, sel).masked_fill(sel_eos, _NEG_INF)  # (A, K)
        new_parent = parent.gather(1, sel)
        new_token = token.gather(1, sel)
        hist = torch.cat(
            [hist.gather(1, new_parent.unsqueeze(2).expand(-1, -1, t - 1)), new_token.unsqueeze(2)],
            dim=2,
        )  # (A, K, t)
        comps = cand_comps.gather(1, sel.unsqueeze(2).expand(-1, -1, n_comp))
        base = (torch.arange(a_n, device=device) * k).unsqueeze(1)
        models.reorder((base + new_parent).view(-1))
        tokens = new_token.view(-1)

        # stopping rule
        best_live = live.max(dim=1).values.cpu()  # (A,)
        act_max = max_len_c[active]
        if alpha >= 0:
            lp_star = gnmt_length_penalty(act_max, alpha)
        else:
            lp_star = gnmt_length_penalty(torch.full_like(act_max, t + 1), alpha)
        bound = best_live / lp_star
        kth = torch.tensor(
            [
                pools[int(s)][nbest - 1].score if len(pools[int(s)]) >= nbest else _NEG_INF
                for s in active
            ],
            dtype=torch.float64,
        )
        if stop == "exact":
            enough = kth >= bound
        elif stop == "nbest":
            enough = ~torch.isneginf(kth)
        else:
            enough = torch.zeros_like(kth, dtype=torch.bool)
        done = (act_max <= t) | torch.isneginf(best_live) | enough
        if bool(done.any()):
            finish(done.nonzero().view(-1).tolist(), t)
            keep = (~done).nonzero().view(-1)
            if keep.numel() == 0:
                break
            keep_d = keep.to(device)
            active = active[keep]
            live, hist, comps = live[keep_d], hist[keep_d], comps[keep_d]
            rows = (keep_d.unsqueeze(1) * k + torch.arange(k, device=device)).view(-1)
            models.select(rows)
            tokens = tokens[rows]
    return [r if r is not None else [] for r in results]


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
