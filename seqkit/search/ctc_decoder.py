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
    return [np.flatnonzero(row) for row in keep]


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

    # The beam, one row per hypothesis (all arrays (N,)); partial words as a list.
    nid = np.zeros(1, dtype=np.int64)  # prefix node
    pb = np.zeros(1)  # log p_b
    pnb = np.full(1, _NEG_INF)  # log p_nb (always -inf for the empty prefix)
    last = np.full(1, -1, dtype=np.int64)  # last label, -1 for the empty prefix
    fus = np.zeros(1)  # lm_weight * lm_raw + word_bonus * n_words + token_bonus * n_tokens
    lm_raw = np.zeros(1)  # unweighted LM log-probability so far
    n_words = np.zeros(1, dtype=np.int64)  # closed words
    n_tokens = np.zeros(1, dtype=np.int64)
    hist = np.zeros(1, dtype=np.int64)  # LM history id
    partial = [""]  # the unfinished word

    cands = _all_candidates(lp_all, blank, token_top_k, token_min_logp)
    cand_pos = np.full(v, -1, dtype=np.int64)
    for t in range(t_len):
        lp = lp_all[t]  # (V,)
        cand = cands[t]  # (K,)
        k_len = cand.shape[0]
        n = nid.shape[0]
        tot = np.logaddexp(pb, pnb)  # (N,)
        new_pb = tot + lp[blank]  # (N,)
        new_pnb = pnb + lp[last]  # (N,) repeat of the last label (-inf for the empty prefix)
        if k_len:
            ext = np.where(last[:, None] == cand, pb[:, None], tot[:, None]) + lp[cand]  # (N, K)
            # A child that is already in the beam merges into that entry.
            cand_pos[cand] = np.arange(k_len)
            nodes = nid.tolist()
            pos = {node: i for i, node in enumerate(nodes)}
            rows, cols, into = [], [], []
            for j, node in enumerate(nodes):
                if node:
                    i = pos.get(node_parent[node])
                    if i is not None:
                        k = cand_pos[last[j]]
                        if k >= 0:
                            rows.append(i)
                            cols.append(k)
                            into.append(j)
            cand_pos[cand] = -1
            if into:
                new_pnb[into] = np.logaddexp(new_pnb[into], ext[rows, cols])
                ext[rows, cols] = _NEG_INF
            child_f = np.repeat((fus + token_bonus)[:, None], k_len, axis=1)  # (N, K)
            closes = None
            if words_on:
                open_word = np.array([bool(p) for p in partial])  # (N,)
                closes = open_word[:, None] & (kinds[cand] != _CONTINUE)  # (N, K)
                if word_bonus:
                    child_f += word_bonus * closes
            lm_add = None
            if token_mode:
                lm_add = np.stack([token_scores(h) for h in hist.tolist()])[:, cand]  # (N, K)
                child_f += lm_weight * lm_add
            elif word_mode:
                closing = closes.any(axis=1).tolist()  # (N,)
                hist_l = hist.tolist()
                ws = np.array(
                    [word_score(hist_l[i], partial[i]) if closing[i] else 0.0 for i in range(n)]
                )  # (N,)
                lm_add = ws[:, None] * closes  # (N, K)
                child_f += lm_weight * lm_add
            all_total = np.concatenate(
                [np.logaddexp(new_pb, new_pnb) + fus, (ext + child_f).ravel()]
            )  # (N + N K,): stay in place, then append cand[k] to entry i at N + i K + k
        else:
            all_total = np.logaddexp(new_pb, new_pnb) + fus  # (N,)

        if all_total.shape[0] > beam:
            sel = np.argpartition(-all_total, beam - 1)[:beam]
        else:
            sel = np.arange(all_total.shape[0])
        sel = sel[all_total[sel] > _NEG_INF]
        if beam_prune_logp is not None and sel.shape[0]:
            sel = sel[all_total[sel] >= all_total[sel].max() + beam_prune_logp]
        sel = sel[np.argsort(-all_total[sel], kind="stable")]  # (M,)

        is_child = sel >= n  # (M,)
        if not k_len or not is_child.any():
            nid, pb, pnb, last, fus = nid[sel], new_pb[sel], new_pnb[sel], last[sel], fus[sel]
            lm_raw, n_words, n_tokens, hist = lm_raw[sel], n_words[sel], n_tokens[sel], hist[sel]
            if words_on:
                partial = [partial[s] for s in sel.tolist()]
            continue
        src = np.where(is_child, (sel - n) // k_len, sel)  # (M,) the entry it comes from
        kk = np.where(is_child, (sel - n) % k_len, 0)  # (M,) its candidate (children)
        tok = cand[kk]  # (M,)
        closed = is_child & closes[src, kk] if closes is not None else np.zeros_like(is_child)
        nid2 = nid[src]
        child_slots = np.flatnonzero(is_child).tolist()
        for slot in child_slots:
            nid2[slot] = child_node(int(nid2[slot]), int(tok[slot]))
        pb = np.where(is_child, _NEG_INF, new_pb[src])
        pnb = np.where(is_child, ext[src, kk], new_pnb[src])
        last = np.where(is_child, tok, last[src])
        fus = np.where(is_child, child_f[src, kk], fus[src])
        if lm_add is not None:
            lm_raw = lm_raw[src] + np.where(is_child, lm_add[src, kk], 0.0)
        else:
            lm_raw = lm_raw[src]
        n_words = n_words[src] + closed
        n_tokens = n_tokens[src] + is_child
        old_hist, hist = hist, hist[src]
        if words_on:
            old_partial = partial
            partial = [old_partial[s] for s in src.tolist()]
            for slot in child_slots:
                c = int(tok[slot])
                partial[slot] = pieces[c] if kinds[c] != _CONTINUE else partial[slot] + pieces[c]
        pending: list[tuple[int, tuple[int, Hashable]]] = []  # (slot, (history, unit))
        if token_mode:
            pending = [(s, (int(hist[s]), units[int(tok[s])])) for s in child_slots]
        elif word_mode:
            pending = [
                (s, (int(old_hist[src[s]]), old_partial[src[s]])) for s in child_slots if closed[s]
            ]
        if pending:
            for (slot, _), h in zip(pending, advance_all([p for _, p in pending]), strict=True):
                hist[slot] = h
        nid = nid2

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
