"""CTC prefix beam search with language-model shallow fusion, in PyTorch/NumPy/Python.

The prefix beam search of Hannun, Maas, Jurafsky & Ng (2014), "First-Pass Large Vocabulary
Continuous Speech Recognition using Bi-Directional Recurrent DNNs" (arXiv:1408.2873), over
the frame posteriors of a CTC model (Graves, Fernandez, Gomez & Schmidhuber 2006,
"Connectionist Temporal Classification", ICML).

For every label prefix ``l`` in the beam it keeps, after frame ``t``, the exact
probabilities of all alignments of frames ``0..t`` that collapse to ``l`` and end in a
blank (``p_b``) or in a label (``p_nb``).  With ``x`` the frame's posteriors and ``c`` the
last label of ``l``, one frame updates (in log space)::

    p_b(l)      += (p_b(l) + p_nb(l)) x(blank)         # blank: same prefix
    p_nb(l)     += p_nb(l) x(c)                        # repeated c: same prefix
    p_nb(l + k) += (p_b(l) + p_nb(l)) x(k)             # a new label k != c
    p_nb(l + c) += p_b(l) x(c)                         # a second c needs a blank between

Paths that reach the same prefix from different beam entries are summed, so a prefix's
*acoustic* score ``log (p_b + p_nb)`` is the CTC log-likelihood of the prefix summed over
all alignments the beam kept: when nothing is pruned it equals brute-force summation over
alignments exactly.

Shallow fusion ranks hypotheses by::

    score = log P_ctc(W | X) + lm_weight * log P_lm(W) + word_bonus * |W| + token_bonus * |tokens|

(Hannun et al. 2014, eq. 3, with the token insertion bonus many decoders add).  The LM
(:class:`~seqkit.search.lm_scorer.LMScorer`) is used in one of two ways:

* ``lm_unit="word"`` (word LM, e.g. a word n-gram; the character-ASR recipe): a word is
  scored when a word boundary closes it, and the final partial word at the end.  A boundary
  is a token equal to ``word_delimiter`` (e.g. ``" "`` or ``"|"`` in character
  vocabularies) or a token starting with ``word_prefix`` (SentencePiece's ``"▁"``, which
  also starts the next word).  The unfinished word of a hypothesis is not scored while it
  grows.
* ``lm_unit="token"`` (character/token LM): every emitted token is scored as it is
  appended (units are ``tokens[id]`` strings, or the ids when ``tokens`` is None).

``word_bonus`` counts words by the same boundary rule (when a word is closed, plus the
final partial word), in both modes.  With ``lm_eos`` the LM's end-of-sentence score is
added at the end.  Hypotheses are token sequences; two token sequences spelling the same
text are not merged.

Pruning per frame (as in pyctcdecode, whose defaults -5 and -10 are used): only tokens
among the ``token_top_k`` most probable ones with ``log x(k) >= token_min_logp`` are
appended (the frame's best token always is); the blank and the repeat of a hypothesis's
last label are always scored.  Then the ``beam`` best hypotheses are kept, minus those
scoring below the best plus ``beam_prune_logp``.  With ``token_top_k=None,
token_min_logp=None, beam_prune_logp=None`` and a beam as large as the number of
prefixes, the search is exact.  (Children that provably cannot be kept, by the threshold or
because a full beam of staying hypotheses outranks them, are not scored: this changes no
result.)

The beam (at most ``beam`` entries, 1-2 candidate tokens per frame on peaky posteriors) is
held in Python lists: at that size plain Python is faster than numpy calls.
"""

from __future__ import annotations

import heapq
import sys
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from math import exp, log1p

import numpy as np
import torch
from torch import Tensor

from seqkit.search.lm_scorer import LMScorer

__all__ = ["CTCHypothesis", "ctc_prefix_beam_search", "ctc_prefix_beam_search_batch"]

_NEG_INF = float("-inf")
_MAX_FLOAT = sys.float_info.max
_SKIP_CHILDREN = True  # stop scoring an entry's children at the first that cannot be kept
_CONTINUE, _DELIMITER, _WORD_START = 0, 1, 2


def _logaddexp(a: float, b: float) -> float:
    """``log(exp(a) + exp(b))`` for Python floats, computed as ``np.logaddexp`` does."""
    if a > b:
        return a + log1p(exp(b - a))
    if b != _NEG_INF:
        return b + log1p(exp(a - b))
    return _NEG_INF


@dataclass
class CTCHypothesis:
    """One n-best entry of :func:`ctc_prefix_beam_search`.

    Attributes:
        tokens: label ids (blanks removed, repeats merged).
        score: the fused score ``acoustic_score + lm_weight * lm_score + word_bonus *
            num_words + token_bonus * len(tokens)``.
        acoustic_score: ``log P_ctc(tokens | X)`` summed over the alignments the search kept.
        lm_score: unweighted LM log-probability (natural log), end of sentence included
            when ``lm_eos``; 0 without an LM.
        num_words: words by the boundary rule (0 when ``tokens`` were not given).
        text: the words joined by single spaces (None when ``tokens`` were not given).
    """

    tokens: list[int]
    score: float
    acoustic_score: float
    lm_score: float
    num_words: int
    text: str | None = None


def _segmentation(
    tokens: Sequence[str], word_delimiter: str | None, word_prefix: str | None
) -> tuple[np.ndarray, list[str]]:
    """Per token: its kind (continue / delimiter / word start) and the text it adds."""
    kinds = np.zeros(len(tokens), dtype=np.int8)  # (V,)
    pieces: list[str] = []
    for v, tok in enumerate(tokens):
        if (word_delimiter is not None and tok == word_delimiter) or (
            word_prefix and tok == word_prefix
        ):
            kinds[v] = _DELIMITER
            pieces.append("")
        elif word_prefix and tok.startswith(word_prefix):
            kinds[v] = _WORD_START
            pieces.append(tok[len(word_prefix) :])
        else:
            pieces.append(tok)
    return kinds, pieces


def _words(ids: Sequence[int], kinds: np.ndarray, pieces: Sequence[str]) -> list[str]:
    words: list[str] = []
    cur = ""
    for v in ids:
        if kinds[v] != _CONTINUE:
            if cur:
                words.append(cur)
            cur = pieces[v]
        else:
            cur += pieces[v]
    if cur:
        words.append(cur)
    return words


def _all_candidates(
    lp_all: np.ndarray, blank: int, top_k: int | None, min_logp: float | None
) -> list[list[int]]:
    """Per frame, the sorted ids of the non-blank tokens that may be appended.

    The non-blank tokens among the ``top_k`` most probable with ``log x >= min_logp``;
    the frame's most probable token is always one of them when it is not the blank.
    """
    scores = lp_all.copy()  # (T, V)
    scores[:, blank] = _NEG_INF
    t_len, v = scores.shape
    keep = scores > _NEG_INF  # (T, V)
    if top_k is not None and top_k < v - 1:
        order = np.argsort(-scores, axis=1, kind="stable")  # (T, V)
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(v)[None, :].repeat(t_len, 0), axis=1)
        keep &= rank < top_k
    if min_logp is not None:
        keep &= scores >= min_logp
        best = lp_all.argmax(axis=1)  # (T,)
        frames = np.flatnonzero(best != blank)
        keep[frames, best[frames]] = True
    rows, cols = np.nonzero(keep)  # row-major: each frame's ids ascending
    ends = np.cumsum(np.bincount(rows, minlength=t_len)).tolist()  # (T,)
    ids = cols.tolist()
    return [ids[a:b] for a, b in pairwise([0, *ends])]


def _as_numpy(log_probs: Tensor | np.ndarray) -> np.ndarray:
    if isinstance(log_probs, torch.Tensor):
        return log_probs.detach().to("cpu", torch.float64).numpy()
    return np.asarray(log_probs, dtype=np.float64)


def ctc_prefix_beam_search(
    log_probs: Tensor | np.ndarray,
    beam: int = 10,
    blank: int = 0,
    *,
    length: int | None = None,
    tokens: Sequence[str] | None = None,
    lm: LMScorer | None = None,
    lm_weight: float = 0.5,
    word_bonus: float = 0.0,
    token_bonus: float = 0.0,
    lm_unit: str | None = None,
    word_delimiter: str | None = " ",
    word_prefix: str | None = "\u2581",
    lm_eos: bool = True,
    token_top_k: int | None = None,
    token_min_logp: float | None = -5.0,
    beam_prune_logp: float | None = -10.0,
    n_best: int | None = None,
) -> list[CTCHypothesis]:
    """Prefix beam search over one utterance's CTC log-posteriors (Hannun et al. 2014).

    Args:
        log_probs: ``(T, V)`` log-softmax outputs of a CTC model (tensor or array).
        beam: hypotheses kept per frame.
        blank: the blank id.
        length: use only the first ``length`` frames (the real ones of a padded row).
        tokens: ``V`` token strings (index = id; the blank's string is never used).  Needed
            for words (``lm_unit="word"``, ``word_bonus``, ``text``).
        lm: an :class:`~seqkit.search.lm_scorer.LMScorer` for shallow fusion, or None.
        lm_weight: ``alpha``, the LM weight.
        word_bonus: ``beta``, added per word.
        token_bonus: added per emitted token.
        lm_unit: ``"word"`` or ``"token"`` (see the module docstring); default ``"word"``
            when ``tokens`` are given, else ``"token"``.
        word_delimiter: the token that separates words (``None``: none).
        word_prefix: the marker that starts a word (``None``: none); a token equal to it
            alone acts as a delimiter.
        lm_eos: add the LM's end-of-sentence score at the end.
        token_top_k: append only the ``k`` most probable non-blank tokens per frame
            (``None``: all).
        token_min_logp: append only tokens with a frame log-probability at least this
            (``None``: no cut-off); the frame's best token is always considered.
        beam_prune_logp: drop hypotheses scoring below the frame's best plus this
            (negative; ``None``: no threshold).
        n_best: return at most this many hypotheses (``None``: the whole final beam).

    Returns:
        :class:`CTCHypothesis` list, best first (by the fused score after the final word and
        end-of-sentence scores).
    """
    lp_all = _as_numpy(log_probs)  # (T, V)
    if lp_all.ndim != 2:
        raise ValueError(f"log_probs must be (T, V) for one utterance, got {lp_all.shape}")
    if length is not None:
        if not 0 <= length <= lp_all.shape[0]:
            raise ValueError(f"length must be in [0, {lp_all.shape[0]}], got {length}")
        lp_all = lp_all[:length]
    if np.isnan(lp_all).any():
        raise ValueError("log_probs contain NaN")
    t_len, v = lp_all.shape
    if not 0 <= blank < v:
        raise ValueError(f"blank must be in [0, {v}), got {blank}")
    if beam < 1:
        raise ValueError(f"beam must be >= 1, got {beam}")
    if token_top_k is not None and token_top_k < 1:
        raise ValueError(f"token_top_k must be >= 1 or None, got {token_top_k}")
    if tokens is not None and len(tokens) != v:
        raise ValueError(f"tokens has {len(tokens)} entries but log_probs have V = {v}")
    if lm_unit is None:
        lm_unit = "word" if tokens is not None else "token"
    if lm_unit not in ("word", "token"):
        raise ValueError(f"lm_unit must be 'word' or 'token', got {lm_unit!r}")
    words_on = tokens is not None
    if not words_on and (lm_unit == "word" or word_bonus):
        raise ValueError("word-level fusion and word_bonus need the token strings (tokens=...)")
    if words_on:
        kinds, pieces = _segmentation(tokens, word_delimiter, word_prefix)
    else:
        kinds, pieces = np.zeros(v, dtype=np.int8), [""] * v
    word_mode = lm is not None and lm_unit == "word"
    token_mode = lm is not None and lm_unit == "token"
    units: list[Hashable] = list(tokens) if tokens is not None else list(range(v))
    nonblank = np.flatnonzero(np.arange(v) != blank)  # (V - 1,)

    # Trie of label prefixes: a node per prefix (node 0 = empty prefix).
    node_parent: list[int] = [-1]
    node_token: list[int] = [-1]
    node_child: dict[tuple[int, int], int] = {}

    def child_node(node: int, token: int) -> int:
        key = (node, token)
        got = node_child.get(key)
        if got is None:
            got = len(node_parent)
            node_child[key] = got
            node_parent.append(node)
            node_token.append(token)
        return got

    # Trie of LM histories (scored units) with their states and cached scores.
    hist_state: list = [lm.initial_state() if lm is not None else None]
    hist_child: dict[tuple[int, Hashable], int] = {}
    hist_scores: dict[int, list[float]] = {}  # token mode: (V,) log P(token | history)
    word_scores: dict[tuple[int, str], float] = {}  # word mode

    def token_scores(h: int) -> list[float]:
        got = hist_scores.get(h)
        if got is None:
            row = np.zeros(v, dtype=np.float64)  # (V,), the blank entry unused
            row[nonblank] = lm.score(hist_state[h], [units[i] for i in nonblank.tolist()])
            got = hist_scores[h] = row.tolist()
        return got

    def word_score(h: int, word: str) -> float:
        got = word_scores.get((h, word))
        if got is None:
            got = float(lm.score(hist_state[h], [word])[0])
            word_scores[(h, word)] = got
        return got

    def advance_all(pairs: list[tuple[int, Hashable]]) -> list[int]:
        """History ids after each (history, unit); new states from one batched call."""
        todo = [p for p in dict.fromkeys(pairs) if p not in hist_child]
        if todo:
            new_states = lm.advance_batch([hist_state[h] for h, _ in todo], [u for _, u in todo])
            for pair, state in zip(todo, new_states, strict=True):
                hist_child[pair] = len(hist_state)
                hist_state.append(state)
        return [hist_child[p] for p in pairs]

    # The beam: one list per field, an entry per hypothesis (at most ``beam``): log p_b,
    # log p_nb (always -inf for the empty prefix), the fused extras ``lm_weight * lm_raw +
    # word_bonus * n_words + token_bonus * n_tokens``, the unweighted LM log-probability so
    # far, the prefix node, the last label (-1 for the empty prefix), closed words, tokens, the
    # LM history id and the unfinished word.  With ~10 entries and 1-2 candidate tokens per
    # frame (AN4), plain Python over these lists beats numpy calls on arrays of that size.
    b_pb, b_pnb, b_fus, b_lmr = [0.0], [_NEG_INF], [0.0], [0.0]
    b_nid, b_last, b_nw, b_nt, b_hist = [0], [-1], [0], [0], [0]
    partial = [""]

    cands = _all_candidates(lp_all, blank, token_top_k, token_min_logp)  # (T,) lists
    rows = lp_all.tolist()  # (T, V)
    kinds_l = kinds.tolist()
    bound_l = (kinds != _CONTINUE).tolist()  # (V,) tokens that close a word
    floor_offset = _NEG_INF if beam_prune_logp is None else beam_prune_logp
    bonus_max = max(word_bonus, 0.0) if words_on else 0.0
    # skip children that cannot be kept (below); not with a negative LM weight, under which
    # an LM term could raise a child's score
    bound_ok = _SKIP_CHILDREN and (lm is None or lm_weight >= 0)
    for t in range(t_len):
        lp = rows[t]  # (V,)
        lp_blank = lp[blank]
        n = len(b_nid)
        tot, new_pb, new_pnb = [], [], []  # (N,) each
        for a, q, last in zip(b_pb, b_pnb, b_last):
            s = _logaddexp(a, q)
            tot.append(s)
            new_pb.append(s + lp_blank)  # blank: same prefix
            new_pnb.append(q + lp[last] if last >= 0 else _NEG_INF)  # repeat: same prefix
        # Children (entry j appends token c): (j, c, ext, fused extras, LM term or None, closes
        # a word); a child already in the beam merges its paths into that entry instead.
        kids: list[tuple[int, int, float, float, float | None, bool]] = []
        cand = cands[t]
        if cand:
            # entries whose prefix is another entry's child: {parent node: {token: entry}}
            in_beam: dict[int, dict[int, int]] = {}
            for i, node in enumerate(b_nid):
                if node:
                    in_beam.setdefault(node_parent[node], {})[node_token[node]] = i
            # No child scoring below `least` can be kept: each stay scores at least
            # new_pb + fus, the best of them bounds the pruning floor from below, and with a
            # full beam every stay outranks a child below all of them.  A child's score is at
            # most tot + lp[c] + fus + token_bonus + max(word_bonus, 0) (LM terms are <= 0),
            # so with cand most probable first each entry stops at its first child below.
            least = _NEG_INF
            if bound_ok and len(cand) > 2:  # (not worth it for 1-2 candidates)
                cand = sorted(cand, key=lp.__getitem__, reverse=True)  # most probable first
                low = [p + f for p, f in zip(new_pb, b_fus)]  # (N,)
                if beam_prune_logp is not None:
                    least = max(low) + beam_prune_logp
                if n >= beam:
                    least = max(least, min(low))
                least -= 1e-9 * abs(least) + 1e-9  # margin for rounding
            for j in range(n):
                last, word, tot_j = b_last[j], partial[j], tot[j]
                merge = in_beam.get(b_nid[j])
                base = b_fus[j] + token_bonus
                open_word = words_on and word != ""
                lm_row = token_scores(b_hist[j]) if token_mode else None
                stop = least - (tot_j + base + bonus_max)
                for c in cand:
                    if lp[c] < stop:  # no child from here on can be kept; merges still count
                        for c2 in cand[cand.index(c) :] if merge is not None else ():
                            if c2 in merge:
                                ext = (b_pb[j] if c2 == last else tot_j) + lp[c2]
                                new_pnb[merge[c2]] = _logaddexp(new_pnb[merge[c2]], ext)
                        break
                    # from p_b + p_nb, or from p_b alone when c repeats the last label
                    ext = (b_pb[j] if c == last else tot_j) + lp[c]
                    if merge is not None and c in merge:  # the child is in the beam already
                        i = merge[c]
                        new_pnb[i] = _logaddexp(new_pnb[i], ext)
                        continue
                    f, la = base, None
                    closes = open_word and bound_l[c]
                    if closes:
                        f += word_bonus
                    if lm_row is not None:
                        la = lm_row[c]
                        f += lm_weight * la
                    elif word_mode and closes:
                        la = word_score(b_hist[j], word)
                        f += lm_weight * la
                    kids.append((j, c, ext, f, la, closes))
        # Stay in place (entries 0..N-1) or grow (N + index in kids); keep the beam best,
        # minus -inf and those below the best plus beam_prune_logp, best first (stable).
        scores = [_logaddexp(a, q) + f for a, q, f in zip(new_pb, new_pnb, b_fus)]
        scores += [k[2] + k[3] for k in kids]
        if len(scores) > 4 * beam:  # = sorted(...)[:beam], ties in index order
            order = heapq.nlargest(beam, range(len(scores)), key=scores.__getitem__)
        else:
            order = sorted(range(len(scores)), key=scores.__getitem__, reverse=True)[:beam]
        if order:
            floor = max(scores[order[0]] + floor_offset, -_MAX_FLOAT)  # also drops -inf
            while order and scores[order[-1]] < floor:
                order.pop()

        if not order or max(order) < n:  # no hypothesis grew
            if order == list(range(n)):
                b_pb, b_pnb = new_pb, new_pnb
            else:
                b_pb, b_pnb = [new_pb[s] for s in order], [new_pnb[s] for s in order]
                b_fus, b_lmr = [b_fus[s] for s in order], [b_lmr[s] for s in order]
                b_nid, b_last = [b_nid[s] for s in order], [b_last[s] for s in order]
                b_nw, b_nt = [b_nw[s] for s in order], [b_nt[s] for s in order]
                b_hist, partial = [b_hist[s] for s in order], [partial[s] for s in order]
            continue
        o_pb, o_pnb, o_fus, o_lmr = [], [], [], []
        o_nid, o_last, o_nw, o_nt, o_hist = [], [], [], [], []
        o_partial: list[str] = []
        pending: list[tuple[int, tuple[int, Hashable]]] = []  # (slot, (history, unit))
        for slot, s in enumerate(order):
            if s < n:  # stays: same prefix
                o_pb.append(new_pb[s])
                o_pnb.append(new_pnb[s])
                o_fus.append(b_fus[s])
                o_lmr.append(b_lmr[s])
                o_nid.append(b_nid[s])
                o_last.append(b_last[s])
                o_nw.append(b_nw[s])
                o_nt.append(b_nt[s])
                o_hist.append(b_hist[s])
                o_partial.append(partial[s])
                continue
            j, c, ext, f, la, closes = kids[s - n]
            o_pb.append(_NEG_INF)
            o_pnb.append(ext)
            o_fus.append(f)
            o_lmr.append(b_lmr[j] if la is None else b_lmr[j] + la)
            o_nid.append(child_node(b_nid[j], c))
            o_last.append(c)
            o_nw.append(b_nw[j] + closes)
            o_nt.append(b_nt[j] + 1)
            o_hist.append(b_hist[j])
            o_partial.append(pieces[c] if kinds_l[c] != _CONTINUE else partial[j] + pieces[c])
            if token_mode:
                pending.append((slot, (b_hist[j], units[c])))
            elif word_mode and closes:
                pending.append((slot, (b_hist[j], partial[j])))
        if pending:
            for (slot, _), h in zip(pending, advance_all([p for _, p in pending]), strict=True):
                o_hist[slot] = h
        b_pb, b_pnb, b_fus, b_lmr = o_pb, o_pnb, o_fus, o_lmr
        b_nid, b_last, b_nw, b_nt, b_hist = o_nid, o_last, o_nw, o_nt, o_hist
        partial = o_partial

    # Close the final partial word, add end of sentence, rank.
    finals = list(range(len(b_nid)))
    end_hist = list(b_hist)
    extra_lm = [0.0] * len(finals)
    extra_words = [0] * len(finals)
    if words_on:
        for j in finals:
            if partial[j]:
                extra_words[j] = 1
                if word_mode:
                    extra_lm[j] = word_score(b_hist[j], partial[j])
        if word_mode:
            open_j = [j for j in finals if partial[j]]
            for j, h in zip(
                open_j, advance_all([(b_hist[j], partial[j]) for j in open_j]), strict=True
            ):
                end_hist[j] = h
    out: list[CTCHypothesis] = []
    for j in finals:
        lm_total = b_lmr[j] + extra_lm[j]
        if lm is not None and lm_eos:
            lm_total += lm.final_score(hist_state[end_hist[j]])
        words = b_nw[j] + extra_words[j]
        acoustic = _logaddexp(b_pb[j], b_pnb[j])
        ids = []
        node = b_nid[j]
        while node:
            ids.append(node_token[node])
            node = node_parent[node]
        ids.reverse()
        total = acoustic + lm_weight * lm_total + word_bonus * words + token_bonus * b_nt[j]
        text = " ".join(_words(ids, kinds, pieces)) if words_on else None
        out.append(CTCHypothesis(ids, float(total), acoustic, float(lm_total), words, text))
    out.sort(key=lambda h: -h.score)
    return out if n_best is None else out[:n_best]


def ctc_prefix_beam_search_batch(
    log_probs: Tensor | np.ndarray, lengths: Tensor | Sequence[int] | None = None, **kwargs
) -> list[list[CTCHypothesis]]:
    """:func:`ctc_prefix_beam_search` for each row of a padded batch.

    Args:
        log_probs: ``(B, T, V)`` log-softmax outputs.
        lengths: ``(B,)`` real frames per row (``None``: all ``T``); padded frames are
            never read.
        **kwargs: passed to :func:`ctc_prefix_beam_search` (beam, lm, ...).

    Returns:
        ``B`` n-best lists.
    """
    lp = _as_numpy(log_probs)  # (B, T, V)
    if lp.ndim != 3:
        raise ValueError(f"log_probs must be (B, T, V), got {lp.shape}")
    if lengths is None:
        lens = [lp.shape[1]] * lp.shape[0]
    else:
        lens = [int(x) for x in (lengths.tolist() if hasattr(lengths, "tolist") else lengths)]
        if len(lens) != lp.shape[0]:
            raise ValueError(f"lengths has {len(lens)} entries for a batch of {lp.shape[0]}")
    return [ctc_prefix_beam_search(lp[b], length=lens[b], **kwargs) for b in range(lp.shape[0])]
