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
prefixes, the search is exact.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import torch
from torch import Tensor

from seqkit.search.lm_scorer import LMScorer

__all__ = ["CTCHypothesis", "ctc_prefix_beam_search", "ctc_prefix_beam_search_batch"]

_NEG_INF = float("-inf")
_CONTINUE, _DELIMITER, _WORD_START = 0, 1, 2


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
) -> list[np.ndarray]:
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
    return [cols[a:b] for a, b in pairwise([0, *ends])]


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
    hist_scores: dict[int, np.ndarray] = {}  # token mode: (V,) log P(token | history)
    word_scores: dict[tuple[int, str], float] = {}  # word mode

    def token_scores(h: int) -> np.ndarray:
        got = hist_scores.get(h)
        if got is None:
            got = np.zeros(v, dtype=np.float64)  # (V,), the blank entry unused
            got[nonblank] = lm.score(hist_state[h], [units[i] for i in nonblank.tolist()])
            hist_scores[h] = got
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

    # The beam, one column per hypothesis: float rows (log p_b, log p_nb (always -inf for the
    # empty prefix), fused extras ``lm_weight * lm_raw + word_bonus * n_words + token_bonus *
    # n_tokens``, unweighted LM log-probability so far) and int rows (prefix node, last label
    # (-1 for the empty prefix), closed words, tokens, LM history id); partial words as a list.
    fl = np.array([[0.0], [_NEG_INF], [0.0], [0.0]])  # (4, N)
    it = np.array([[0], [-1], [0], [0], [0]], dtype=np.int64)  # (5, N)
    partial = [""]  # the unfinished word

    cands = _all_candidates(lp_all, blank, token_top_k, token_min_logp)
    kinds_l = kinds.tolist()
    bound = kinds != _CONTINUE  # (V,) tokens that close a word
    bound_l = bound.tolist()
    for t in range(t_len):
        lp = lp_all[t]  # (V,)
        cand = cands[t]  # (K,)
        k_len = cand.shape[0]
        pb, pnb, fus, lm_raw = fl[0], fl[1], fl[2], fl[3]  # (N,) each
        nid, last = it[0], it[1]  # (N,) each
        n = nid.shape[0]
        tot = np.logaddexp(pb, pnb)  # (N,)
        new_pb = tot + lp[blank]  # (N,)
        new_pnb = pnb + lp[last]  # (N,) repeat of the last label (-inf for the empty prefix)
        if k_len:
            cand_l = cand.tolist()
            lp_c = lp[cand]  # (K,)
            # Appending cand[k] to entry j: from p_b + p_nb, or from p_b alone when cand[k]
            # repeats the entry's last label.
            ext = tot[:, None] + lp_c  # (N, K)
            nodes = nid.tolist()
            last_l = last.tolist()
            cand_pos = {c: k for k, c in enumerate(cand_l)}
            rep_k = [cand_pos.get(c) for c in last_l]  # (N,) position of the last label in cand
            pb_r = None
            for j, k in enumerate(rep_k):
                if k is not None:
                    if pb_r is None:
                        pb_r, lp_cl = pb.tolist(), lp_c.tolist()
                    ext[j, k] = pb_r[j] + lp_cl[k]
            # A child that is already in the beam merges into that entry.
            pos = {node: i for i, node in enumerate(nodes)}
            rows, cols, into = [], [], []
            for j, node in enumerate(nodes):
                if node:
                    i = pos.get(node_parent[node])
                    if i is not None:
                        k = rep_k[j]
                        if k is not None:
                            rows.append(i)
                            cols.append(k)
                            into.append(j)
            if into:
                new_pnb[into] = np.logaddexp(new_pnb[into], ext[rows, cols])
                ext[rows, cols] = _NEG_INF
            # Fused extras of the children: (N, 1) when they do not depend on the token.
            child_f = (fus + token_bonus)[:, None]
            closes = None  # (N, K) appending cand[k] closes entry i's word; None: none does
            if words_on and any(bound_l[c] for c in cand_l) and any(partial):
                open_word = np.array([bool(p) for p in partial])  # (N,)
                closes = open_word[:, None] & bound[cand]  # (N, K)
                if word_bonus:
                    child_f = child_f + word_bonus * closes
            lm_add = None
            if token_mode:
                lm_add = np.stack([token_scores(h) for h in it[4].tolist()])[:, cand]  # (N, K)
                child_f = child_f + lm_weight * lm_add
            elif word_mode and closes is not None:  # (otherwise every LM term is 0)
                closing = closes.any(axis=1).tolist()  # (N,)
                hist_l = it[4].tolist()
                ws = np.array(
                    [word_score(hist_l[i], partial[i]) if closing[i] else 0.0 for i in range(n)]
                )  # (N,)
                lm_add = ws[:, None] * closes  # (N, K)
                child_f = child_f + lm_weight * lm_add
            all_total = np.concatenate(
                [np.logaddexp(new_pb, new_pnb) + fus, (ext + child_f).ravel()]
            )  # (N + N K,): stay in place, then append cand[k] to entry i at N + i K + k
        else:
            all_total = np.logaddexp(new_pb, new_pnb) + fus  # (N,)

        # The beam best (argpartition), minus -inf and those below the best plus
        # beam_prune_logp, best first (stable for ties).
        if all_total.shape[0] > beam:
            top = np.argpartition(-all_total, beam - 1)[:beam]
            vals = all_total[top].tolist()
            top_l = top.tolist()
        else:
            vals = all_total.tolist()
            top_l = range(len(vals))
        keep = [j for j, x in enumerate(vals) if x > _NEG_INF]
        if beam_prune_logp is not None and keep:
            floor = max(vals[j] for j in keep) + beam_prune_logp
            keep = [j for j in keep if vals[j] >= floor]
        keep.sort(key=lambda j: -vals[j])
        sel_l = [top_l[j] for j in keep]  # (M,)

        if not k_len or not sel_l or max(sel_l) < n:  # no hypothesis grew
            fl[0] = new_pb
            fl[1] = new_pnb
            if sel_l != list(range(n)):
                fl, it = fl[:, sel_l], it[:, sel_l]
                if words_on:
                    partial = [partial[s] for s in sel_l]
            continue
        # Some grew: the new beam, entry by entry (M <= beam), from Python lists.
        pb_l, pnb_l, fus_l, lmr_l = new_pb.tolist(), new_pnb.tolist(), fus.tolist(), lm_raw.tolist()
        ext_l = ext.ravel().tolist()
        wide = child_f.shape[1] > 1
        cf_l = child_f.ravel().tolist()
        la_l = lm_add.ravel().tolist() if lm_add is not None else None
        cl_l = closes.ravel().tolist() if closes is not None else None
        nw_l, nt_l, hist_l = it[2].tolist(), it[3].tolist(), it[4].tolist()
        o_pb, o_pnb, o_fus, o_lmr = [], [], [], []
        o_nid, o_last, o_nw, o_nt, o_hist = [], [], [], [], []
        new_partial: list[str] = []
        pending: list[tuple[int, tuple[int, Hashable]]] = []  # (slot, (history, unit))
        for slot, s in enumerate(sel_l):
            if s < n:  # stays: same prefix
                o_pb.append(pb_l[s])
                o_pnb.append(pnb_l[s])
                o_fus.append(fus_l[s])
                o_lmr.append(lmr_l[s] + 0.0 if la_l is not None else lmr_l[s])
                o_nid.append(nodes[s])
                o_last.append(last_l[s])
                o_nw.append(nw_l[s])
                o_nt.append(nt_l[s])
                o_hist.append(hist_l[s])
                if words_on:
                    new_partial.append(partial[s])
                continue
            c = s - n
            i, k = divmod(c, k_len)  # entry i appends cand[k]
            tok = cand_l[k]
            closed = cl_l[c] if cl_l is not None else False
            o_pb.append(_NEG_INF)
            o_pnb.append(ext_l[c])
            o_fus.append(cf_l[c] if wide else cf_l[i])
            o_lmr.append(lmr_l[i] + la_l[c] if la_l is not None else lmr_l[i])
            o_nid.append(child_node(nodes[i], tok))
            o_last.append(tok)
            o_nw.append(nw_l[i] + closed)
            o_nt.append(nt_l[i] + 1)
            o_hist.append(hist_l[i])
            if words_on:
                new_partial.append(
                    pieces[tok] if kinds_l[tok] != _CONTINUE else partial[i] + pieces[tok]
                )
            if token_mode:
                pending.append((slot, (hist_l[i], units[tok])))
            elif word_mode and closed:
                pending.append((slot, (hist_l[i], partial[i])))
        if pending:
            for (slot, _), h in zip(pending, advance_all([p for _, p in pending]), strict=True):
                o_hist[slot] = h
        fl = np.array([o_pb, o_pnb, o_fus, o_lmr], dtype=np.float64)  # (4, M)
        it = np.array([o_nid, o_last, o_nw, o_nt, o_hist], dtype=np.int64)  # (5, M)
        if words_on:
            partial = new_partial

    pb, pnb = fl[0], fl[1]
    nid, n_words, n_tokens, hist = it[0], it[2], it[3], it[4]
    lm_raw = fl[3]

    # Close the final partial word, add end of sentence, rank.
    finals = list(range(nid.shape[0]))
    hist_l, n_words_l, n_tokens_l, lm_raw_l = (
        hist.tolist(),
        n_words.tolist(),
        n_tokens.tolist(),
        lm_raw.tolist(),
    )
    end_hist = list(hist_l)
    extra_lm = [0.0] * len(finals)
    extra_words = [0] * len(finals)
    if words_on:
        for j in finals:
            if partial[j]:
                extra_words[j] = 1
                if word_mode:
                    extra_lm[j] = word_score(hist_l[j], partial[j])
        if word_mode:
            open_j = [j for j in finals if partial[j]]
            for j, h in zip(
                open_j, advance_all([(hist_l[j], partial[j]) for j in open_j]), strict=True
            ):
                end_hist[j] = h
    out: list[CTCHypothesis] = []
    for j in finals:
        lm_total = lm_raw_l[j] + extra_lm[j]
        if lm is not None and lm_eos:
            lm_total += lm.final_score(hist_state[end_hist[j]])
        words = n_words_l[j] + extra_words[j]
        acoustic = float(np.logaddexp(pb[j], pnb[j]))
        ids = []
        node = int(nid[j])
        while node:
            ids.append(node_token[node])
            node = node_parent[node]
        ids.reverse()
        total = acoustic + lm_weight * lm_total + word_bonus * words + token_bonus * n_tokens_l[j]
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
