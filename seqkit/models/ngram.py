"""Interpolated modified Kneser-Ney n-gram language model, written as an ARPA file.

Chen & Goodman 1998, "An Empirical Study of Smoothing Techniques for Language Modeling"
(Harvard TR-10-98), section 3 ("modified Kneser-Ney", interpolated): for an n-gram ``h w``
of order k with (adjusted) count ``c(h w) > 0``::

    p(w | h) = (c(h w) - D_k(c(h w))) / c(h .)  +  gamma(h) p(w | h')
    gamma(h) = (D_k1 N1(h .) + D_k2 N2(h .) + D_k3+ N3+(h .)) / c(h .)

with ``h'`` the history without its oldest word, ``N_j(h .)`` the number of words seen after
``h`` exactly j (3+: at least 3) times, and three discounts per order from the
counts-of-counts ``n_1 .. n_4`` of that order: ``Y = n1 / (n1 + 2 n2)``,
``D1 = 1 - 2Y n2/n1``, ``D2 = 2 - 3Y n3/n2``, ``D3+ = 3 - 4Y n4/n3``.  The counts are the
raw counts at the highest order and, below it, Kneser-Ney continuation counts
``N1+(. h w)`` (distinct words seen before ``h w``), except for n-grams that start with
``<s>``, which nothing can precede and which keep their raw counts (as in KenLM's
``lmplz``; Heafield et al. 2013, "Scalable Modified Kneser-Ney Language Model
Estimation").  The unigram level interpolates with the uniform distribution over the
vocabulary (``<s>`` excluded: it is never predicted).  An unseen ``h w`` gets
``gamma(h) p(w | h')`` (``gamma = 1`` for a history never seen as a context), which is
exactly the ARPA back-off rule, so the model is written to ARPA with ``log10 p`` for every
seen n-gram and ``log10 gamma`` as the back-off weight of every context.

Sentences are the lines of the text, each scored as ``<s> w_1 .. w_n </s>`` (blank lines
too: they contribute ``</s>``, like the ``<eos>`` of the neural LM convention).  Words outside
the training vocabulary are mapped to ``<unk>`` (which always has a unigram entry).

Counting is vectorised with numpy: every n-gram gets an integer id (its rank in the sorted
table of its order), and an order-k n-gram is keyed by ``id(prefix) * V + last word``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["KneserNeyLM", "estimate_kn", "sentence_perplexity"]

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
_FALLBACK = (0.5, 1.0, 1.5)  # KenLM's --discount_fallback


@dataclass
class KneserNeyLM:
    """An estimated interpolated modified Kneser-Ney model (see the module docstring).

    Attributes:
        order: n.
        vocab: id -> word (``<s>``, ``</s>``, ``<unk>`` first).
        grams: per order k (index k - 1), an (M_k, k) int array of the listed n-grams.
        log10_prob: per order, (M_k,) ``log10 p(w | h)`` (interpolated).
        log10_backoff: per order, (M_k,) ``log10 gamma`` of each n-gram as a history
            (0 where it is never a history; all 0 at the highest order).
        discounts: per order, ``(D1, D2, D3+)``.
        notes: warnings from the estimation (e.g. discount fall-backs).
    """

    order: int
    vocab: list[str]
    grams: list[np.ndarray]
    log10_prob: list[np.ndarray]
    log10_backoff: list[np.ndarray]
    discounts: list[tuple[float, float, float]]
    notes: list[str] = field(default_factory=list)

    def counts(self) -> list[int]:
        return [len(g) for g in self.grams]

    def arpa_lines(self) -> Iterable[str]:
        """The model in ARPA format, line by line (without newlines)."""
        yield ""
        yield "\\data\\"
        for k, n in enumerate(self.counts(), 1):
            yield f"ngram {k}={n}"
        for k in range(1, self.order + 1):
            yield ""
            yield f"\\{k}-grams:"
            grams, lp, bo = self.grams[k - 1], self.log10_prob[k - 1], self.log10_backoff[k - 1]
            vocab = self.vocab
            top = k == self.order
            for row, p, b in zip(grams.tolist(), lp.tolist(), bo.tolist(), strict=True):
                words = " ".join(vocab[i] for i in row)
                if top:
                    yield f"{p:.7g}\t{words}"
                else:
                    yield f"{p:.7g}\t{words}\t{b:.7g}"
        yield ""
        yield "\\end\\"

    def write_arpa(self, path: str | Path) -> None:
        """Write the ARPA file (UTF-8), atomically."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            for line in self.arpa_lines():
                f.write(line + "\n")
        tmp.replace(path)


def _discounts(adj: np.ndarray, order: int, notes: list[str]) -> tuple[float, float, float]:
    n = [int(np.count_nonzero(adj == j)) for j in (1, 2, 3, 4)]
    ok = all(x > 0 for x in n)
    if ok:
        y = n[0] / (n[0] + 2 * n[1])
        d = (1 - 2 * y * n[1] / n[0], 2 - 3 * y * n[2] / n[1], 3 - 4 * y * n[3] / n[2])
        ok = all(0 < dj < j for j, dj in enumerate(d, 1))
    if not ok:
        notes.append(
            f"order {order}: counts-of-counts n1..n4 = {n} give no valid modified-KN "
            f"discounts; using the fall-back {_FALLBACK} (as KenLM's --discount_fallback)"
        )
        return _FALLBACK
    return d  # type: ignore[return-value]


def estimate_kn(
    sentences: Iterable[Sequence[str]],
    order: int = 5,
    vocab: Sequence[str] | None = None,
) -> KneserNeyLM:
    """Estimate an interpolated modified Kneser-Ney model from tokenised sentences.

    Args:
        sentences: token lists (one per line; ``<s>``/``</s>`` are added here and must not
            occur in them).
        order: n >= 1.
        vocab: optional closed vocabulary; other words become ``<unk>``.  Default: every
            training word.

    Returns:
        The model; ``model.write_arpa(path)`` writes it.
    """
    if order < 1:
        raise ValueError(f"order must be >= 1, got {order}")
    sents = [list(s) for s in sentences]
    for i, s in enumerate(sents):
        if BOS in s or EOS in s:
            raise ValueError(f"sentence {i + 1} contains a reserved token ({BOS} or {EOS})")
    if vocab is None:
        seen: dict[str, None] = {}
        for s in sents:
            for w in s:
                seen.setdefault(w, None)
        words = sorted(w for w in seen if w != UNK)
    else:
        words = sorted({w for w in vocab if w not in (BOS, EOS, UNK)})
    itos = [BOS, EOS, UNK] + words
    stoi = {w: i for i, w in enumerate(itos)}
    V = len(itos)
    unk = stoi[UNK]
    # the corpus as one array of padded sentences; sent[i] = sentence of position i
    toks_l: list[int] = []
    sent_l: list[int] = []
    for j, s in enumerate(sents):
        ids = [0] + [stoi.get(w, unk) for w in s] + [1]
        toks_l.extend(ids)
        sent_l.extend([j] * len(ids))
    toks = np.asarray(toks_l, dtype=np.int64)
    sent = np.asarray(sent_l, dtype=np.int64)
    T = len(toks)

    # --- raw counts per order: pos_id[k][i] = id of the k-gram starting at position i
    pos_ids: list[np.ndarray] = []  # per order, (T,) id or -1 where the k-gram does not fit
    first_pos: list[np.ndarray] = []  # per order, (M_k,) a position of each n-gram
    raw: list[np.ndarray] = []
    keys_by_order: list[np.ndarray] = []
    for k in range(1, order + 1):
        valid = np.zeros(T, dtype=bool)
        if T >= k:
            valid[: T - k + 1] = sent[: T - k + 1] == sent[k - 1 :]
        idx = np.nonzero(valid)[0]
        if k == 1:
            key = toks[idx]
        else:
            key = pos_ids[k - 2][idx] * V + toks[idx + k - 1]
        uniq, first, inverse, cnt = np.unique(
            key, return_index=True, return_inverse=True, return_counts=True
        )
        pid = np.full(T, -1, dtype=np.int64)
        pid[idx] = inverse
        pos_ids.append(pid)
        first_pos.append(idx[first])
        raw.append(cnt.astype(np.int64))
        keys_by_order.append(uniq)

    # --- adjusted counts: continuation counts below the top order, raw for <s>-initial ones
    adjusted: list[np.ndarray] = []
    for k in range(1, order + 1):
        cnt = raw[k - 1]
        if k < order:
            ext_first = first_pos[k]  # positions of the distinct (k+1)-grams
            suffix = pos_ids[k - 1][ext_first + 1]  # id of their last k words
            cont = np.bincount(suffix, minlength=len(cnt)).astype(np.int64)
            starts_bos = toks[first_pos[k - 1]] == 0
            cnt = np.where(starts_bos, cnt, cont)
        adjusted.append(cnt)

    notes: list[str] = []
    grams: list[np.ndarray] = []
    log10_prob: list[np.ndarray] = []
    log10_bo: list[np.ndarray] = []
    discounts: list[tuple[float, float, float]] = []
    table_words = toks[first_pos[0]]  # unigram-table id -> word id (unseen words have none)
    word_prob = np.zeros(V)  # unigram probabilities by word id
    prev_prob = np.zeros(0)  # probabilities of the order k - 1 table
    for k in range(1, order + 1):
        adj = adjusted[k - 1].astype(np.float64)
        fp = first_pos[k - 1]
        if k == 1:
            adj[table_words == 0] = 0.0  # <s> is never predicted
            d = _discounts(adjusted[0][table_words != 0], 1, notes)
            ctx = np.zeros(len(adj), dtype=np.int64)
            n_ctx = 1
        else:
            d = _discounts(adjusted[k - 1], k, notes)
            ctx = keys_by_order[k - 1] // V  # id of the (k-1)-gram history
            n_ctx = len(keys_by_order[k - 2])
        discounts.append(d)
        dvec = np.where(adj >= 3, d[2], np.where(adj == 2, d[1], np.where(adj == 1, d[0], 0.0)))
        total = np.bincount(ctx, weights=adj, minlength=n_ctx)  # c(h .)
        mass = np.bincount(ctx, weights=dvec, minlength=n_ctx)  # discounted mass of h
        safe = np.where(total > 0, total, 1.0)
        gamma = np.where(total > 0, mass / safe, 1.0)  # (n_ctx,)
        disc = np.where(adj > 0, (adj - dvec) / safe[ctx], 0.0)
        if k == 1:
            # every vocabulary word gets a unigram (<unk> too, even if unseen); <s> gets -99
            word_prob[table_words] = disc
            word_prob += gamma[0] / (V - 1)
            word_prob[0] = 0.0
            lp = np.full(V, -99.0)
            lp[1:] = np.log10(word_prob[1:])
            grams.append(np.arange(V, dtype=np.int64)[:, None])
            log10_prob.append(lp)
            log10_bo.append(np.zeros(V))
            continue
        lower = word_prob[toks[fp + 1]] if k == 2 else prev_prob[pos_ids[k - 2][fp + 1]]
        prob = disc + gamma[ctx] * lower  # interpolation with p(w | h')
        grams.append(np.stack([toks[fp + j] for j in range(k)], axis=1))  # (M_k, k)
        log10_prob.append(np.log10(prob))
        log10_bo.append(np.zeros(len(prob)))
        # gamma(h) is the back-off weight of the order k - 1 n-gram h
        if k == 2:  # the unigram table of the ARPA file is indexed by word id
            log10_bo[0][table_words] = np.log10(gamma)
        else:
            log10_bo[k - 2] = np.log10(gamma)
        prev_prob = prob
    return KneserNeyLM(order, itos, grams, log10_prob, log10_bo, discounts, notes)


def sentence_perplexity(lm, sentences: Iterable[Sequence[str]]) -> dict:
    """Perplexity of ``lm`` (a :class:`seqkit.search.lm_scorer.LMScorer`, e.g. ``ArpaLM``).

    Every sentence is scored as ``<s> w_1 .. w_n </s>``: ``n + 1`` predicted tokens (an
    empty sentence predicts ``</s>`` only).  Words outside ``lm.vocab`` (when the scorer
    has one) are counted as ``oov`` and scored as the model scores them (``<unk>``).

    Returns ``{"score": ppl, "log_prob": natural-log total, "tokens", "sentences", "oov"}``.
    """
    vocab = getattr(lm, "vocab", None)
    total, tokens, n_sent, oov = 0.0, 0, 0, 0
    for sent in sentences:
        total += lm.score_sequence(sent, eos=True)
        tokens += len(sent) + 1
        n_sent += 1
        if vocab is not None:
            oov += sum(w not in vocab for w in sent)
    if tokens == 0:
        raise ValueError("no sentences to score")
    try:
        score = math.exp(-total / tokens)
    except OverflowError:  # e.g. log10 probabilities of -1e300 in an ARPA file
        score = math.inf
    return {
        "score": score,
        "log_prob": total,
        "tokens": tokens,
        "sentences": n_sent,
        "oov": oov,
    }
