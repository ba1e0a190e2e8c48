"""Interpolated modified Kneser-Ney (seqkit.models.ngram) against a brute-force reference.

The reference below recomputes Chen & Goodman's formulas with plain Counters, straight from
the definitions (raw counts at the top order, continuation counts below it, raw counts for
n-grams that start with <s>; three discounts per order; interpolation down to the uniform
distribution).  The estimator is vectorised with numpy and written as ARPA, read back with
seqkit.search.lm_scorer.ArpaLM: both must agree on every word in seen and unseen contexts.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter, defaultdict

import numpy as np
import pytest

from seqkit.models.ngram import BOS, EOS, UNK, estimate_kn
from seqkit.search.lm_scorer import ArpaLM

from .conftest import run_seqkit

TOY = [
    "a b c a b",
    "b c a b c",
    "a a b",
    "c b a",
    "a b c",
    "b b b c",
    "a c",
    "c a b c a",
    "",
    "b a c c",
]


def _toy_corpus(n=60, seed=0):
    rng = random.Random(seed)
    words = "the cat dog sat on mat a ran fast slow".split()
    out = []
    for _ in range(n):
        length = rng.randint(0, 7)
        out.append([rng.choice(words[: rng.randint(3, len(words))]) for _ in range(length)])
    return out


class BruteKN:
    """Modified KN straight from the definitions (slow; for tiny corpora)."""

    def __init__(self, sents, order):
        self.order = order
        vocab = sorted({w for s in sents for w in s} - {UNK})
        self.vocab = [BOS, EOS, UNK] + vocab
        padded = [[BOS, *s, EOS] for s in sents]
        raw = [Counter() for _ in range(order + 1)]
        for s in padded:
            for k in range(1, order + 1):
                for i in range(len(s) - k + 1):
                    raw[k][tuple(s[i : i + k])] += 1
        self.count = [None] + [Counter() for _ in range(order)]
        for k in range(1, order + 1):
            if k == order:
                self.count[k] = Counter(raw[k])
                continue
            left = defaultdict(set)
            for g in raw[k + 1]:
                left[g[1:]].add(g[0])
            for g, c in raw[k].items():
                self.count[k][g] = c if g[0] == BOS else len(left[g])
        self.count[1].pop((BOS,), None)
        self.D = [None]
        for k in range(1, order + 1):
            n = [sum(1 for c in self.count[k].values() if c == j) for j in (1, 2, 3, 4)]
            d = (0.5, 1.0, 1.5)  # KenLM's fall-back when the estimate is undefined/invalid
            if min(n) > 0:
                y = n[0] / (n[0] + 2 * n[1])
                est = (1 - 2 * y * n[1] / n[0], 2 - 3 * y * n[2] / n[1], 3 - 4 * y * n[3] / n[2])
                if all(0 < dj < j for j, dj in enumerate(est, 1)):
                    d = est
            self.D.append(d)

    def _d(self, k, c):
        return 0.0 if c == 0 else self.D[k][min(c, 3) - 1]

    def prob(self, w, h):
        h = tuple(h)[-(self.order - 1) :] if self.order > 1 else ()
        k = len(h) + 1
        if k == 1:
            tot = sum(self.count[1].values())
            c = self.count[1].get((w,), 0)
            gamma = sum(self._d(1, c) for c in self.count[1].values()) / tot
            return (c - self._d(1, c)) / tot + gamma / (len(self.vocab) - 1)
        ext = {g: c for g, c in self.count[k].items() if g[:-1] == h}
        lower = self.prob(w, h[1:])
        tot = sum(ext.values())
        if tot == 0:
            return lower
        c = ext.get(h + (w,), 0)
        gamma = sum(self._d(k, c) for c in ext.values()) / tot
        return (c - self._d(k, c)) / tot + gamma * lower


def _arpa(tmp_path, sents, order):
    lm = estimate_kn(sents, order)
    path = tmp_path / "lm.arpa"
    lm.write_arpa(path)
    return lm, ArpaLM.from_file(path)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_kn_matches_brute_force_and_sums_to_one(tmp_path, order):
    sents = _toy_corpus()
    lm, arpa = _arpa(tmp_path, sents, order)
    ref = BruteKN(sents, order)
    assert np.allclose(lm.discounts, ref.D[1:])
    if order >= 2:  # the higher orders of the toy corpus have proper modified-KN discounts
        assert lm.discounts[1] != (0.5, 1.0, 1.5)
    predictable = [w for w in lm.vocab if w != BOS]
    contexts = [
        (BOS,),
        (BOS, "the"),
        ("the", "cat"),
        ("sat", "on", "the"),
        ("mat", "mat", "mat"),
        ("dog",),
        ("fast", "slow", "a"),
    ]
    for h in contexts:
        h = h[-(order - 1) :] if order > 1 else ()
        ours = np.exp(arpa.score(h, predictable))  # an ArpaLM state is the history tuple
        brute = np.array([ref.prob(w, h) for w in predictable])
        np.testing.assert_allclose(ours, brute, rtol=1e-5, err_msg=f"context {h}")
        assert math.isclose(ours.sum(), 1.0, rel_tol=1e-5), (h, ours.sum())


def test_kn_perplexity_matches_brute_force(tmp_path):
    sents = _toy_corpus()
    lm, arpa = _arpa(tmp_path, sents, 3)
    ref = BruteKN(sents, 3)
    test = [["the", "cat", "sat"], ["a", "dog", "ran", "fast"], [], ["zebra", "sat"]]
    nll, n = 0.0, 0
    for s in test:
        hist = [BOS]
        for w in [*s, EOS]:
            w2 = w if w in lm.vocab else UNK
            nll -= math.log(ref.prob(w2, hist[-2:]))
            hist.append(w2)
            n += 1
    text = tmp_path / "test.txt"
    text.write_text("".join(" ".join(s) + "\n" for s in test))
    proc = run_seqkit(
        "score", "ppl", "--arpa", str(tmp_path / "lm.arpa"), "--text", str(text), "--json"
    )
    out = json.loads(proc.stdout)
    assert out["tokens"] == n == 3 + 4 + 0 + 2 + 4 and out["oov"] == 1
    assert math.isclose(out["score"], math.exp(nll / n), rel_tol=1e-5)


def test_kn_hand_computed_unigram_and_bigram(tmp_path):
    """Order 2 on TOY: discounts and two probabilities worked out by hand."""
    sents = [s.split() for s in TOY]
    lm, arpa = _arpa(tmp_path, sents, 2)
    # unigram continuation counts N1+(. w): a <- {<s>,b,c,a}=4, b <- {a,<s>,b,c}=4,
    # c <- {b,<s>,a,c}=4, </s> <- {b,c,a,<s>}=4; <unk> 0.  n1=0 -> fall-back discounts.
    assert lm.notes and "order 1" in lm.notes[0]
    assert lm.discounts[0] == (0.5, 1.0, 1.5)
    # bigram counts after a: a->b 6, a->a 1, a->c 2, a-></s> 2 (11 in all)
    ref_b = Counter()
    for s in sents:
        p = [BOS, *s, EOS]
        ref_b.update(zip(p, p[1:]))
    n = [sum(1 for c in ref_b.values() if c == j) for j in (1, 2, 3, 4)]
    y = n[0] / (n[0] + 2 * n[1])
    d1, d2, d3 = 1 - 2 * y * n[1] / n[0], 2 - 3 * y * n[2] / n[1], 3 - 4 * y * n[3] / n[2]
    assert np.allclose(lm.discounts[1], (d1, d2, d3))
    # p_uni(w) = (N1+(.w) - D3) / 16 + gamma0 / 5 with gamma0 = 4 * D3 / 16 (5 predictable words)
    cont = {"a": 4, "b": 4, "c": 4, EOS: 4, UNK: 0}
    tot = sum(cont.values())
    gamma0 = sum(1.5 for c in cont.values() if c >= 3) / tot
    p_uni = {w: (c - (1.5 if c >= 3 else 0)) / tot + gamma0 / 5 for w, c in cont.items()}
    assert math.isclose(sum(p_uni.values()), 1.0)
    after_a = {w: ref_b[("a", w)] for w in cont}
    assert after_a == {"a": 1, "b": 6, "c": 2, EOS: 2, UNK: 0}
    tot_a = sum(after_a.values())
    assert (
        math.isclose(math.exp(arpa.score((), [UNK])[0]), gamma0 / 5, rel_tol=1e-5)
        and gamma0 == 6 / 16
    )
    dd = lambda c: 0 if c == 0 else (d1, d2, d3)[min(c, 3) - 1]  # noqa: E731
    gamma_a = sum(dd(c) for c in after_a.values()) / tot_a
    for w in ("b", UNK):
        want = (after_a[w] - dd(after_a[w])) / tot_a + gamma_a * p_uni[w]
        assert math.isclose(math.exp(arpa.score(("a",), [w])[0]), want, rel_tol=1e-5)
