"""Language-model scorers for shallow fusion in search (e.g. CTC prefix beam search).

Shallow fusion (Gulcehre et al. 2015, "On Using Monolingual Corpora in Neural Machine
Translation", arXiv:1503.03535; for CTC, Hannun et al. 2014, "First-Pass Large Vocabulary
Continuous Speech Recognition using Bi-Directional Recurrent DNNs", arXiv:1408.2873) adds
``lm_weight * log P_lm`` to a hypothesis score.  Search drives an LM through the small
protocol :class:`LMScorer`; a *unit* is whatever the LM predicts (a word string for a word
n-gram, a character string, or an integer id), a *state* an opaque value summarising the
history.  All scores are natural logarithms.

* :class:`ArpaLM`: a backoff n-gram model read from an ARPA file (as written by KenLM's
  ``lmplz``, SRILM's ``ngram-count`` or any other ARPA writer); Katz (1987), "Estimation of
  Probabilities from Sparse Data for the Language Model Component of a Speech Recognizer"
  (IEEE TASSP) backoff: ``P(w | h) = P*(w | h)`` if the n-gram ``h w`` is listed, otherwise
  ``backoff(h) * P(w | h')`` with ``h'`` the history without its oldest word.
* :class:`NeuralLMScorer`: an adapter for any incremental neural LM that follows the
  decoder-state contract of :mod:`seqkit.search.state` (``step(tokens (N,), state) ->
  (log_probs (N, V), state)``), e.g. :class:`seqkit.nn.lm.RNNLM`.
* :class:`MappedLMStepper`: such an LM as a shallow-fusion scorer of
  :func:`seqkit.search.beam_search` over a decoder whose vocabulary differs from the LM's.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqkit.errors import DataError
from seqkit.search.state import State
from seqkit.textio import read_lines

__all__ = ["ArpaLM", "LMScorer", "MappedLMStepper", "NeuralLMScorer", "NeuralLMState"]

_LN10 = math.log(10.0)


class LMScorer(ABC):
    """What search needs from a language model (all log-probabilities natural logs).

    * :meth:`initial_state` -> the state at the start of a sentence (after ``<s>``);
    * :meth:`score` ``(state, units) -> (K,)`` array: ``log P(u | state)`` for several
      candidate next units, without advancing;
    * :meth:`advance` ``(state, unit) -> state`` after ``unit``; :meth:`advance_batch` does
      several at once (a neural LM runs one batched step);
    * :meth:`final_score` ``(state)``: ``log P(</s> | state)``.

    :meth:`step` (score and advance one unit) and :meth:`score_sequence` (a whole sentence)
    are built on these.  States must be treated as immutable values: search keeps one per
    hypothesis and shares them between hypotheses with the same history.
    """

    @abstractmethod
    def initial_state(self) -> Any:
        """State after the sentence start."""

    @abstractmethod
    def score(self, state: Any, units: Sequence[Hashable]) -> np.ndarray:
        """``log P(u | state)`` for each ``u`` in ``units``: float64 array ``(K,)``."""

    @abstractmethod
    def advance(self, state: Any, unit: Hashable) -> Any:
        """The state after appending ``unit`` to the history of ``state``."""

    @abstractmethod
    def final_score(self, state: Any) -> float:
        """``log P(</s> | state)``: the end-of-sentence score."""

    def advance_batch(self, states: Sequence[Any], units: Sequence[Hashable]) -> list[Any]:
        """``[advance(s, u) for s, u in zip(states, units)]`` (overridden where batching pays)."""
        return [self.advance(s, u) for s, u in zip(states, units, strict=True)]

    def step(self, state: Any, unit: Hashable) -> tuple[float, Any]:
        """``(log P(unit | state), state after unit)``."""
        return float(self.score(state, [unit])[0]), self.advance(state, unit)

    def score_sequence(self, units: Iterable[Hashable], eos: bool = True) -> float:
        """``log P(u_1 .. u_n [</s>])`` of a sentence, from :meth:`initial_state`."""
        state = self.initial_state()
        total = 0.0
        for unit in units:
            logp, state = self.step(state, unit)
            total += logp
        if eos:
            total += self.final_score(state)
        return total


# --------------------------------------------------------------------------- ARPA n-gram


class ArpaLM(LMScorer):
    """Backoff n-gram language model in ARPA format (Katz 1987 backoff).

    ARPA layout: a ``\\data\\`` header with ``ngram k=count`` lines, then one ``\\k-grams:``
    section per order whose lines read ``log10_prob<TAB>w_1 .. w_k[<TAB>log10_backoff]``,
    and ``\\end\\``.  Probabilities are stored as natural logs.

    Scoring ``w`` after history ``h = (h_1 .. h_m)`` (``m <= n - 1``, oldest first)::

        log P(w | h) = log P*(h w)                       if "h w" is listed
                     = log backoff(h) + log P(w | h_2 .. h_m)   otherwise

    with ``log backoff(h) = 0`` for histories without a listed backoff, ending at the
    unigram ``P*(w)``.  Units (words) are strings; a unit not in the vocabulary is scored
    as ``<unk>`` when the model lists ``<unk>``, otherwise it gets ``log10 P = unk_log10``
    (default -100, KenLM's convention) and backs every longer context off to it.

    States are tuples of the last ``n - 1`` units (``("<s>",)`` at the start when the model
    lists ``<s>``).  Scores are memoised per (history, unit).

    Args:
        ngrams: ``ngrams[k - 1]`` maps a ``k``-tuple of words to ``(log10_prob,
            log10_backoff)``.
        unk_log10: log10 probability of an unknown word when there is no ``<unk>``.

    Use :meth:`from_file` / :meth:`from_lines` to read ARPA text.
    """

    def __init__(
        self,
        ngrams: Sequence[Mapping[tuple[str, ...], tuple[float, float]]],
        unk_log10: float = -100.0,
    ):
        if not ngrams or not ngrams[0]:
            raise ValueError("an n-gram model needs at least one unigram")
        self.order = len(ngrams)
        self.logp: dict[tuple[str, ...], float] = {}
        self.backoff: dict[tuple[str, ...], float] = {}
        for table in ngrams:
            for gram, (lp10, bo10) in table.items():
                self.logp[gram] = lp10 * _LN10
                if bo10:
                    self.backoff[gram] = bo10 * _LN10
        self.vocab = frozenset(g[0] for g in ngrams[0])
        self.unk = "<unk>" if "<unk>" in self.vocab else None
        self.unk_logp = unk_log10 * _LN10
        self.bos = "<s>" if "<s>" in self.vocab else None
        self.eos = "</s>"
        self._cache: dict[tuple[tuple[str, ...], str], float] = {}

    # ---------------------------------------------------------------- reading

    @classmethod
    def from_file(cls, path: str | Path, unk_log10: float = -100.0) -> ArpaLM:
        """Read an ARPA file (UTF-8); format errors raise :class:`DataError` naming the line."""
        return cls.from_lines(read_lines(path), name=str(path), unk_log10=unk_log10)

    @classmethod
    def from_lines(
        cls, lines: Iterable[str], name: str = "<arpa>", unk_log10: float = -100.0
    ) -> ArpaLM:
        """Parse ARPA text given as lines (see the class docstring for the layout)."""
        counts: dict[int, int] = {}
        tables: dict[int, dict[tuple[str, ...], tuple[float, float]]] = {}
        section: int | None = None  # None: before \data\, 0: in \data\, k: in \k-grams:
        ended = False
        started = False
        for lineno, raw in enumerate(lines, start=1):
            line = raw.strip()
            if not line or ended:
                continue
            if line == "\\data\\":
                started, section = True, 0
                continue
            if not started:
                continue  # free text before \data\ is allowed
            if line == "\\end\\":
                ended = True
                continue
            if line.startswith("\\") and line.endswith("-grams:"):
                try:
                    section = int(line[1 : -len("-grams:")])
                except ValueError:
                    raise DataError(f"bad section header {line!r}", name, lineno) from None
                if section not in counts:
                    raise DataError(f"section {line} not announced in \\data\\", name, lineno)
                tables[section] = {}
                continue
            if section == 0:
                key, _, value = line.partition("=")
                parts = key.split()
                # ASCII digits only: "²".isdigit() is True but int("²") fails
                if (len(parts) != 2 or parts[0] != "ngram"
                        or not all(v.isascii() and v.isdigit() and len(v) <= 18
                                   for v in (parts[1], value.strip()))):
                    raise DataError(f"expected 'ngram k=count', got {line!r}", name, lineno)
                counts[int(parts[1])] = int(value)
                continue
            assert section is not None
            fields = line.split()
            k = section
            if len(fields) not in (k + 1, k + 2):
                raise DataError(
                    f"a {k}-gram line needs log10 prob, {k} word(s) and an optional backoff, "
                    f"got {len(fields)} field(s)",
                    name,
                    lineno,
                )
            try:
                lp10 = float(fields[0])
                bo10 = float(fields[k + 1]) if len(fields) == k + 2 else 0.0
            except ValueError:
                raise DataError(f"bad number in {line!r}", name, lineno) from None
            if math.isnan(lp10) or math.isnan(bo10):
                raise DataError(f"bad number in {line!r}", name, lineno)
            tables[k][tuple(fields[1 : k + 1])] = (lp10, bo10)
        if not started:
            raise DataError("no \\data\\ section: not an ARPA file", name)
        if not ended:
            raise DataError("missing \\end\\ (truncated file?)", name)
        order = max(counts) if counts else 0
        if order < 1 or sorted(counts) != list(range(1, order + 1)):
            raise DataError(f"\\data\\ must announce orders 1..n, got {sorted(counts)}", name)
        for k in range(1, order + 1):
            got = len(tables.get(k, {}))
            if got != counts[k]:
                raise DataError(f"\\data\\ announces {counts[k]} {k}-grams, found {got}", name)
        if not tables.get(1):
            raise DataError("the model has no unigrams", name)
        return cls([tables[k] for k in range(1, order + 1)], unk_log10=unk_log10)

    # ---------------------------------------------------------------- scoring

    def _map(self, unit: Hashable) -> Hashable:
        if unit in self.vocab or self.unk is None:
            return unit
        return self.unk

    def _logp(self, history: tuple, word: Hashable) -> float:
        key = (history, word)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        total = 0.0
        h = history
        while True:
            lp = self.logp.get((*h, word))
            if lp is not None:
                total += lp
                break
            if not h:
                total += self.unk_logp
                break
            total += self.backoff.get(h, 0.0)
            h = h[1:]
        self._cache[key] = total
        return total

    def initial_state(self) -> tuple:
        """``("<s>",)`` when the model lists ``<s>``, else the empty history."""
        return (self.bos,) if self.bos is not None and self.order > 1 else ()

    def score(self, state: tuple, units: Sequence[Hashable]) -> np.ndarray:
        """``(K,)`` natural-log ``P(u | state)`` by backoff (see the class docstring)."""
        return np.array([self._logp(state, self._map(u)) for u in units], dtype=np.float64)

    def advance(self, state: tuple, unit: Hashable) -> tuple:
        """The last ``n - 1`` units of ``state + (unit,)`` (``<unk>`` for unknown units)."""
        keep = self.order - 1
        if keep == 0:
            return ()
        return (*state, self._map(unit))[-keep:]

    def final_score(self, state: tuple) -> float:
        """``log P(</s> | state)``."""
        return self._logp(state, self.eos)


# --------------------------------------------------------------------------- neural LM


@dataclass(frozen=True)
class NeuralLMState:
    """State of :class:`NeuralLMScorer`: the model state (every tensor ``(1, ...)``) after
    the history, and ``next_log_probs`` ``(V,)`` float64, the LM's distribution of the next
    token."""

    model_state: State
    next_log_probs: np.ndarray


class NeuralLMScorer(LMScorer):
    """Shallow-fusion adapter for an incremental neural LM (:mod:`seqkit.search.state`).

    The model must provide ``step(tokens (N,) long, state) -> (log_probs (N, V), state)``
    with batch-first state tensors (e.g. :class:`seqkit.nn.lm.RNNLM`, in eval mode).  Each
    scorer state keeps the next-token distribution, so :meth:`score` is an index lookup and
    only :meth:`advance_batch` runs the model: one batched ``step`` for all the hypotheses
    that grew at a search step.

    Args:
        model: the LM (put it in eval mode; the adapter runs it under ``torch.no_grad``).
        bos: id fed first (sentence start).
        eos: id whose probability is the end-of-sentence score; ``None`` -> score 0.
        vocab: maps a unit to its LM id; ``None`` means units already are LM ids.
        unk: id for units missing from ``vocab`` (``None``: such a unit raises KeyError).
        initial_state: the model state before ``bos`` with batch size 1; ``None`` uses
            ``model.init_state(1)`` when the model has it, else ``{}``.
    """

    def __init__(
        self,
        model: Any,
        bos: int,
        eos: int | None = None,
        vocab: Mapping[Hashable, int] | None = None,
        unk: int | None = None,
        initial_state: State | None = None,
    ):
        self.model = model
        self.bos = bos
        self.eos = eos
        self.vocab = vocab
        self.unk = unk
        if initial_state is None:
            init = getattr(model, "init_state", None)
            initial_state = init(1) if callable(init) else {}
        self._start_model_state = initial_state
        self._start: NeuralLMState | None = None

    def _id(self, unit: Hashable) -> int:
        if self.vocab is None:
            return int(unit)  # type: ignore[arg-type]
        idx = self.vocab.get(unit)
        if idx is None:
            if self.unk is None:
                raise KeyError(f"unit {unit!r} is not in the LM vocabulary and no unk id is set")
            return self.unk
        return idx

    def _device(self) -> torch.device:
        for p in getattr(self.model, "parameters", lambda: iter(()))():
            return p.device
        return torch.device("cpu")

    @torch.no_grad()
    def _run(self, model_states: Sequence[State], ids: Sequence[int]) -> list[NeuralLMState]:
        device = self._device()
        keys = model_states[0].keys()
        batch = {k: torch.cat([s[k] for s in model_states], dim=0) for k in keys}  # (N, ...)
        tokens = torch.tensor(list(ids), dtype=torch.long, device=device)  # (N,)
        log_probs, new = self.model.step(tokens, batch)  # (N, V)
        rows = log_probs.detach().to("cpu", torch.float64).numpy()  # (N, V)
        out = []
        for i in range(len(ids)):
            state_i = {k: v[i : i + 1] for k, v in new.items()}  # (1, ...)
            out.append(NeuralLMState(state_i, rows[i]))
        return out

    def initial_state(self) -> NeuralLMState:
        """State after feeding ``bos`` (computed once)."""
        if self._start is None:
            self._start = self._run([dict(self._start_model_state)], [self.bos])[0]
        return self._start

    def score(self, state: NeuralLMState, units: Sequence[Hashable]) -> np.ndarray:
        """``(K,)`` entries of the cached next-token distribution."""
        ids = np.fromiter((self._id(u) for u in units), dtype=np.int64, count=len(units))
        return state.next_log_probs[ids]

    def advance(self, state: NeuralLMState, unit: Hashable) -> NeuralLMState:
        """One model step on ``unit``."""
        return self._run([state.model_state], [self._id(unit)])[0]

    def advance_batch(
        self, states: Sequence[NeuralLMState], units: Sequence[Hashable]
    ) -> list[NeuralLMState]:
        """One batched model step for all ``(state, unit)`` pairs."""
        if not states:
            return []
        ids = [self._id(u) for u in units]
        return self._run([s.model_state for s in states], ids)

    def final_score(self, state: NeuralLMState) -> float:
        """``log P(eos | state)``, or 0 without ``eos``."""
        return 0.0 if self.eos is None else float(state.next_log_probs[self.eos])


class MappedLMStepper:
    """A neural LM as a beam-search scorer over *another* vocabulary (the decoder's).

    Shallow fusion in :func:`seqkit.search.beam_search` needs ``step(tokens (N,), state) ->
    (log_probs (N, V_dec), state)`` over the decoder's ids; an LM trained separately has its
    own vocabulary.  ``index[i]`` is the LM id of decoder id ``i`` (``-1``: the LM cannot
    produce it, score ``-inf``; the decoder's start symbol should map to the LM's
    sentence-start / end-of-line id, its end symbol to the LM's end id).

    Args:
        model: the LM with ``step`` and ``init_state(batch_size)`` (e.g. ``RNNLM``, eval mode).
        index: (V_dec,) long, LM ids of the decoder's ids.

    :meth:`init_state` gives the LM's state for ``B`` rows; :meth:`step` maps the decoder's
    tokens to LM ids, steps the LM and gathers its log-probabilities at ``index``.
    """

    def __init__(self, model: Any, index: Sequence[int] | torch.Tensor):
        self.model = model
        self.index = torch.as_tensor(index, dtype=torch.long)
        self.known = self.index >= 0

    def init_state(self, batch_size: int) -> State:
        return self.model.init_state(batch_size)

    def step(self, tokens: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        index = self.index.to(tokens.device)
        lm_tokens = index[tokens]  # (N,)
        if bool((lm_tokens < 0).any()):
            raise ValueError("a token with no LM id was fed to the LM (map the start symbol)")
        log_probs, state = self.model.step(lm_tokens, state)  # (N, V_lm)
        out = log_probs[:, index.clamp_min(0)]  # (N, V_dec)
        out = out.masked_fill(~self.known.to(out.device), float("-inf"))
        return out, state
