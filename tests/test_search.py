"""Greedy / beam search and the CTC prefix scorer, against brute force and torch built-ins.

Every model here is a tiny toy written in this file (float64), following the step contract
of ``seqkit/search/state.py``.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqkit.search.assign import balanced_assignment, equal_counts
from seqkit.search.beam import (
    Hypothesis,
    beam_search,
    beam_search_per_sentence,
    gnmt_length_penalty,
    greedy_search,
)
from seqkit.search.ctc_prefix_score import CTCPrefixScorer, _log_linear_scan
from seqkit.search.state import State, expand_state, select_state

DT = torch.float64
BLANK, EOS = 0, 1  # BOS is EOS's id, as in many seq2seq setups


# ----------------------------------------------------------------------------- toy models


class HashDecoder:
    """``log P(y_t | y_<t, sentence)``: a random table row picked by a hash of the history.

    The score depends on the whole prefix (so greedy and narrow beams are genuinely
    suboptimal) plus a per-sentence bias row carried in the state.
    """

    def __init__(self, vocab: int, seed: int = 0, eos_bias: float = 0.0, no_eos: bool = False):
        g = torch.Generator().manual_seed(seed)
        self.m = 1009
        self.table = torch.randn(self.m, vocab, generator=g, dtype=DT) * 2.0
        self.table[:, EOS] += eos_bias
        if no_eos:
            self.table[:, EOS] = float("-inf")
        self.vocab = vocab
        self.gen = g

    def init_state(self, b: int) -> State:
        bias = torch.randn(b, self.vocab, generator=self.gen, dtype=DT)
        return {"h": torch.zeros(b, dtype=torch.long), "bias": bias}

    def step(self, tokens: Tensor, state: State) -> tuple[Tensor, State]:
        h = (state["h"] * 31 + tokens + 1) % self.m
        return (self.table[h] + state["bias"]).log_softmax(-1), {"h": h, "bias": state["bias"]}


class BigramLM:
    """A bigram LM with an empty state (``{}``), like an LM that builds its own rows."""

    def __init__(self, vocab: int, seed: int = 1):
        g = torch.Generator().manual_seed(seed)
        self.table = torch.randn(vocab + 2, vocab, generator=g, dtype=DT).log_softmax(-1)

    def step(self, tokens: Tensor, state: State) -> tuple[Tensor, State]:
        return self.table[tokens], state


class AttnDecoder(nn.Module):
    """GRU decoder with masked dot-product attention over a padded memory (B, S, D)."""

    def __init__(self, vocab: int, emb: int = 8, hidden: int = 12, mem: int = 10):
        super().__init__()
        self.emb = nn.Embedding(vocab + 2, emb)
        self.cell = nn.GRUCell(emb + mem, hidden)
        self.query = nn.Linear(hidden, mem, bias=False)
        self.init = nn.Linear(mem, hidden)
        self.out = nn.Linear(hidden + mem, vocab)
        self.double()

    def init_state(self, memory: Tensor, mask: Tensor) -> State:
        m = mask.unsqueeze(2).to(memory.dtype)  # (B, S, 1)
        mean = (memory * m).sum(1) / m.sum(1)  # (B, D)
        return {
            "memory": memory,
            "mask": mask,
            "h": torch.tanh(self.init(mean)),
            "ctx": torch.zeros_like(mean),
        }

    def step(self, tokens: Tensor, state: State) -> tuple[Tensor, State]:
        x = torch.cat([self.emb(tokens), state["ctx"]], dim=1)
        h = self.cell(x, state["h"])  # (N, H)
        e = torch.einsum("nd,nsd->ns", self.query(h), state["memory"])  # (N, S)
        a = e.masked_fill(~state["mask"], float("-inf")).softmax(-1)
        ctx = torch.einsum("ns,nsd->nd", a, state["memory"])
        lp = self.out(torch.cat([h, ctx], dim=1)).log_softmax(-1)
        return lp, dict(state, h=h, ctx=ctx)


def rows(state: State, i: int) -> State:
    return select_state(state, torch.tensor([i])) if state else state


def forced_log_prob(model, state: State, bos: int, seq: list[int]) -> float:
    """Teacher-forced ``sum_t log P(seq_t | seq_<t)`` for one sentence (state: 1 row)."""
    total, prev = 0.0, bos
    for tok in seq:
        lp, state = model.step(torch.tensor([prev]), state)
        total += float(lp[0, tok])
        prev = tok
    return total


def ctc_log_prob(log_probs: Tensor, length: int, seq: list[int]) -> float:
    """``log p_ctc(seq | X)`` of one utterance with ``torch.nn.functional.ctc_loss``."""
    nll = F.ctc_loss(
        log_probs[:length].unsqueeze(1),  # (T, 1, V)
        torch.tensor([seq], dtype=torch.long).view(1, -1),
        torch.tensor([length]),
        torch.tensor([len(seq)]),
        blank=BLANK,
        reduction="none",
    )
    return -float(nll)


def collapse(alignment) -> tuple[int, ...]:
    out, prev = [], None
    for a in alignment:
        if a != prev and a != BLANK:
            out.append(a)
        prev = a
    return tuple(out)


def random_ctc(b: int, t: int, v: int, lengths: list[int], seed: int) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    lp = (torch.randn(b, t, v, generator=g, dtype=DT) * 1.5).log_softmax(-1)
    return lp, torch.tensor(lengths)


def check_hyp_list(hyps: list[Hypothesis], nbest: int, alpha: float) -> None:
    """n-best invariants: sorted, distinct, no EOS inside, consistent scores."""
    assert 1 <= len(hyps) <= nbest
    fin = [h for h in hyps if h.finished]
    assert hyps[: len(fin)] == fin  # finished first
    for group in (fin, [h for h in hyps if not h.finished]):
        scores = [h.score for h in group]
        assert scores == sorted(scores, reverse=True)
    assert len({tuple(h.tokens) for h in hyps}) == len(hyps)
    for h in hyps:
        assert EOS not in h.tokens
        assert h.length == len(h.tokens) + int(h.finished)
        lp = float(gnmt_length_penalty(h.length, alpha))
        assert h.score == pytest.approx(h.log_prob / lp, rel=1e-12, abs=1e-12)


# ----------------------------------------------------------------------------- CTC prefix score


def test_log_linear_scan_matches_sequential_recursion():
    torch.manual_seed(0)
    for t_len in (1, 2, 5, 8, 13):
        a = torch.randn(4, t_len, dtype=DT) - 1
        b = torch.randn(4, t_len, dtype=DT) - 1
        a[0, t_len // 2] = float("-inf")
        b[1, :] = float("-inf")
        b[2, 0] = float("-inf")
        y = torch.full((4,), float("-inf"), dtype=DT)
        ref = []
        for t in range(t_len):
            y = torch.logaddexp(a[:, t] + y, b[:, t])
            ref.append(y)
        torch.testing.assert_close(_log_linear_scan(a, b), torch.stack(ref, 1), rtol=1e-12, atol=0)


def brute_force_ctc(lp: Tensor, length: int) -> tuple[dict, dict]:
    """Prefix and full probabilities of every label sequence, summing all V^T alignments."""
    prefix: dict[tuple, float] = {}
    full: dict[tuple, float] = {}
    v = lp.size(1)
    for al in itertools.product(range(v), repeat=length):
        p = math.exp(float(lp[torch.arange(length), torch.tensor(al)].sum()))
        y = collapse(al)
        full[y] = full.get(y, 0.0) + p
        for k in range(len(y) + 1):
            prefix[y[:k]] = prefix.get(y[:k], 0.0) + p
    return prefix, full


def test_ctc_prefix_score_equals_brute_force_and_ctc_loss():
    # V = 4: blank 0, eos 1 (also a CTC class, never a target), labels 2 and 3.
    lengths = [5, 3]
    lp, lens = random_ctc(2, 5, 4, lengths, seed=3)
    lp[1, 3:] = torch.randn(2, 4, dtype=DT)  # garbage in padded frames must be ignored
    scorer = CTCPrefixScorer(lp, lens, blank=BLANK, eos=EOS)
    labels = (2, 3)
    prefixes = [h for n in range(4) for h in itertools.product(labels, repeat=n)]
    for b, length in enumerate(lengths):
        prefix, full = brute_force_ctc(lp[b], length)
        for h in prefixes:
            state = rows(scorer.init_state(), b)
            scores, state = scorer.step(torch.tensor([EOS]), state)  # the start symbol
            log_psi = 0.0
            for c in h:
                assert scores[0, c] <= 0
                log_psi += float(scores[0, c])
                scores, state = scorer.step(torch.tensor([c]), state)
            assert math.exp(log_psi) == pytest.approx(prefix.get(h, 0.0), rel=1e-9, abs=1e-15)
            for c in labels:
                want = prefix.get(h + (c,), 0.0)
                got = math.exp(log_psi + float(scores[0, c]))
                assert got == pytest.approx(want, rel=1e-9, abs=1e-15)
            got_full = math.exp(log_psi + float(scores[0, EOS]))
            assert got_full == pytest.approx(full.get(h, 0.0), rel=1e-9, abs=1e-15)
            if len(h) <= length:  # ctc_loss is inf for impossible targets
                want = ctc_log_prob(lp[b], length, list(h))
                assert log_psi + float(scores[0, EOS]) == pytest.approx(want, rel=1e-10)
            assert scores[0, BLANK] == float("-inf")


def test_ctc_prefix_score_batched_reordered_and_partial():
    """Expanded/reordered states and candidate-only scoring match row-by-row full scoring."""
    lp, lens = random_ctc(3, 7, 6, [7, 4, 6], seed=5)
    scorer = CTCPrefixScorer(lp, lens, blank=BLANK, eos=EOS)
    seqs = [[2, 2, 5], [3, 4, 4], [5, 2, 3], [4, 4, 4], [2, 3, 2], [5, 5, 2]]
    order = torch.tensor([2, 0, 1, 1, 2, 0])  # utterance of each row
    state = select_state(expand_state(scorer.init_state(), 2), order * 2)
    tokens = torch.full((6,), EOS)
    for t in range(3):
        cand = torch.tensor(
            [[2, 3, EOS], [4, 5, BLANK], [2, 5, 3], [4, 1, 0], [3, 2, 4], [5, 2, 3]]
        )
        part, _ = scorer.step(tokens, state, candidates=cand)
        scores, state = scorer.step(tokens, state)
        # the same rows one utterance at a time
        for n in range(6):
            single = rows(scorer.init_state(), int(order[n]))
            s1, single = scorer.step(torch.tensor([EOS]), single)
            for tok in seqs[n][:t]:
                s1, single = scorer.step(torch.tensor([tok]), single)
            torch.testing.assert_close(scores[n], s1[0], rtol=1e-12, atol=0)
        keep = torch.zeros(6, 6, dtype=torch.bool).scatter(1, cand, True)
        torch.testing.assert_close(part[keep], scores[keep], rtol=1e-12, atol=0)
        assert bool(torch.isneginf(part[~keep]).all())
        tokens = torch.tensor([s[t] for s in seqs])


# ----------------------------------------------------------------------------- greedy / beam


def fusion(b: int, seed: int, v: int):
    """An LM scorer and a CTC scorer (with states) for ``b`` sentences."""
    lengths = [6, 4, 7, 5, 6, 3, 7, 5][:b]
    lp, lens = random_ctc(b, 7, v, lengths, seed=seed)
    ctc = CTCPrefixScorer(lp, lens, blank=BLANK, eos=EOS)
    return BigramLM(v, seed=seed + 1), ctc, lp, lengths


@pytest.mark.parametrize("fused", [False, True])
def test_beam_one_equals_greedy(fused):
    v, b = 7, 8
    dec = HashDecoder(v, seed=1, eos_bias=0.5)
    state = dec.init_state(b)
    max_len = torch.tensor([1, 9, 4, 7, 3, 9, 6, 2])
    min_len = torch.tensor([0, 2, 0, 3, 0, 0, 1, 4])
    kw: dict = dict(bos=EOS, eos=EOS, max_len=max_len, min_len=min_len)
    if fused:
        lm, ctc, _, _ = fusion(b, seed=2, v=v)
        kw.update(scorers=[(0.3, lm, {})], ctc=(0.4, ctc, ctc.init_state()))
    g = greedy_search(dec, state, **kw)
    hyps = beam_search(dec, state, beam=1, **kw)
    assert not bool(g.finished.all()) and bool(g.finished.any())
    for i in range(b):
        (h,) = hyps[i]
        assert h.tokens == g.tokens[i, : g.lengths[i]].tolist()
        assert h.finished == bool(g.finished[i])
        assert h.score == pytest.approx(float(g.scores[i]), rel=1e-12)
        assert h.length <= int(max_len[i])
        if h.finished:
            assert len(h.tokens) >= int(min_len[i])


def all_finished(labels: list[int], max_len: int, min_len: int = 0):
    """Every finished output (tokens before EOS) with min_len <= n < max_len."""
    for n in range(min_len, max_len):
        yield from (list(s) for s in itertools.product(labels, repeat=n))


@pytest.mark.parametrize("alpha", [0.0, 0.8, -0.5])
def test_wide_beam_finds_true_best_nbest(alpha):
    """A beam wide enough to hold every hypothesis returns the exact n-best by brute force."""
    v, b, max_len, nbest = 4, 6, 4, 5
    labels = [0, 2, 3]
    dec = HashDecoder(v, seed=7, eos_bias=-0.5)
    state = dec.init_state(b)
    min_len = torch.tensor([0, 0, 1, 2, 0, 3])
    hyps = beam_search(
        dec,
        state,
        beam=128,  # >= 27 * V candidates at the last step: nothing is ever pruned
        bos=EOS,
        eos=EOS,
        max_len=max_len,
        min_len=min_len,
        length_penalty=alpha,
        nbest=nbest,
    )
    narrow_differs = False
    one = beam_search(
        dec, state, beam=1, bos=EOS, eos=EOS, max_len=max_len, min_len=min_len, length_penalty=alpha
    )
    for i in range(b):
        ranked = []
        for seq in all_finished(labels, max_len, int(min_len[i])):
            lp = forced_log_prob(dec, rows(state, i), EOS, seq + [EOS])
            ranked.append((lp / float(gnmt_length_penalty(len(seq) + 1, alpha)), seq))
        ranked.sort(key=lambda x: -x[0])
        check_hyp_list(hyps[i], nbest, alpha)
        assert [h.tokens for h in hyps[i]] == [s for _, s in ranked[:nbest]]
        for h, (score, _) in zip(hyps[i], ranked):
            assert h.finished and h.score == pytest.approx(score, rel=1e-10)
        narrow_differs |= one[i][0].tokens != ranked[0][1]
    assert narrow_differs  # the toy problem is not solved by beam 1


def test_wide_beam_joint_ctc_attention_lm_is_exact():
    """With CTC + LM fusion the n-best matches brute force using torch's ctc_loss."""
    v, b, max_len, nbest, lam, w = 4, 4, 4, 3, 0.4, 0.5
    labels = [2, 3]  # the blank is never emitted: the CTC scorer gives it -inf
    dec = HashDecoder(v, seed=11)
    state = dec.init_state(b)
    lm, ctc, lp_ctc, lengths = fusion(b, seed=4, v=v)
    hyps = beam_search(
        dec,
        state,
        beam=64,
        bos=EOS,
        eos=EOS,
        max_len=max_len,
        length_penalty=0.5,
        nbest=nbest,
        scorers=[(w, lm, {})],
        ctc=(lam, ctc, ctc.init_state()),
    )
    for i in range(b):
        ranked = []
        for seq in all_finished(labels, max_len):
            if len(seq) > lengths[i]:
                continue  # CTC probability 0
            d = forced_log_prob(dec, rows(state, i), EOS, seq + [EOS])
            m = forced_log_prob(lm, {}, EOS, seq + [EOS])
            c = ctc_log_prob(lp_ctc[i], lengths[i], seq)
            total = (1 - lam) * d + lam * c + w * m
            lp = float(gnmt_length_penalty(len(seq) + 1, 0.5))
            ranked.append((total / lp, seq, {"decoder": d, "ctc": c, "scorer0": m}))
        ranked.sort(key=lambda x: -x[0])
        check_hyp_list(hyps[i], nbest, 0.5)
        assert [h.tokens for h in hyps[i]] == [s for _, s, _ in ranked[:nbest]]
        for h, (score, _, comp) in zip(hyps[i], ranked):
            assert h.score == pytest.approx(score, rel=1e-9)
            for key, val in comp.items():
                assert h.components[key] == pytest.approx(val, rel=1e-9)


def attn_batch(b: int, seed: int):
    torch.manual_seed(seed)
    v = 9
    dec = AttnDecoder(v).eval()
    lens = torch.tensor([5, 2, 7, 4, 6][:b])
    memory = torch.randn(b, 7, 10, dtype=DT) * 2  # padded positions hold garbage
    mask = torch.arange(7) < lens.unsqueeze(1)
    return dec, memory, mask, lens, v


@pytest.mark.parametrize("fused", [False, True])
def test_batched_equals_per_sentence_and_unpadded(fused):
    """Batched padded search == per-sentence loop == each sentence alone without padding."""
    b = 5
    dec, memory, mask, lens, v = attn_batch(b, seed=3)
    max_len = torch.tensor([6, 3, 8, 5, 7])
    kw: dict = dict(beam=4, bos=EOS, eos=EOS, length_penalty=0.6, nbest=3, min_len=1)
    scorers, ctc_of = [], None
    if fused:
        lm, ctc, _, _ = fusion(b, seed=6, v=v)
        scorers = [(0.3, lm, {})]
        ctc_of = ctc
    state = dec.init_state(memory, mask)
    ctc_arg = None if ctc_of is None else (0.3, ctc_of, ctc_of.init_state())
    batched = beam_search(dec, state, max_len=max_len, scorers=scorers, ctc=ctc_arg, **kw)
    looped = beam_search_per_sentence(
        dec, state, max_len=max_len, scorers=scorers, ctc=ctc_arg, **kw
    )
    for i in range(b):
        n = int(lens[i])
        alone_state = dec.init_state(memory[i : i + 1, :n], mask[i : i + 1, :n])
        alone_ctc = None if ctc_of is None else (0.3, ctc_of, rows(ctc_of.init_state(), i))
        alone = beam_search(
            dec, alone_state, max_len=int(max_len[i]), scorers=scorers, ctc=alone_ctc, **kw
        )[0]
        check_hyp_list(batched[i], 3, 0.6)
        for other in (looped[i], alone):
            assert [h.tokens for h in batched[i]] == [h.tokens for h in other]
            assert [h.finished for h in batched[i]] == [h.finished for h in other]
            for h, o in zip(batched[i], other):
                assert h.score == pytest.approx(o.score, rel=1e-10)
                for key in h.components:
                    assert h.components[key] == pytest.approx(o.components[key], rel=1e-10)


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.5])
def test_exact_stopping_rule_never_changes_the_result(alpha):
    """``stop="exact"`` returns what running every sentence to ``max_len`` returns."""
    v, b = 8, 10
    for seed in range(3):
        dec = HashDecoder(v, seed=20 + seed, eos_bias=1.0)
        state = dec.init_state(b)
        kw: dict = dict(beam=3, bos=EOS, eos=EOS, max_len=9, nbest=2, length_penalty=alpha)
        spy_exact, spy_full = Spy(dec), Spy(dec)
        exact = beam_search(spy_exact, state, stop="exact", **kw)
        full = beam_search(spy_full, state, stop="max_len", **kw)
        assert exact == full
        rows_exact = sum(x.numel() for x in spy_exact.inputs)
        rows_full = sum(x.numel() for x in spy_full.inputs)
        assert rows_exact <= rows_full
        if alpha <= 0:
            assert rows_exact < rows_full  # some sentences did stop early


def test_nbest_stopping_rule():
    v, b = 8, 10
    dec = HashDecoder(v, seed=3, eos_bias=1.0)
    state = dec.init_state(b)
    kw: dict = dict(bos=EOS, eos=EOS, max_len=9)
    g = greedy_search(dec, state, **kw)
    one = beam_search(dec, state, beam=1, stop="nbest", **kw)
    assert [h[0].tokens for h in one] == [g.tokens[i, : g.lengths[i]].tolist() for i in range(b)]
    spy_n, spy_e = Spy(dec), Spy(dec)
    kw.update(beam=4, nbest=2, length_penalty=1.0)
    fast = beam_search(spy_n, state, stop="nbest", **kw)
    exact = beam_search(spy_e, state, stop="exact", **kw)
    assert len(spy_n.inputs) <= len(spy_e.inputs)
    for f, e in zip(fast, exact, strict=True):
        check_hyp_list(f, 2, 1.0)
        assert all(h.finished for h in f)
        assert f[0].score <= e[0].score + 1e-12  # exact search can only do better


class Spy:
    """Wraps a decoder and records the input tokens of every step."""

    def __init__(self, inner):
        self.inner = inner
        self.inputs: list[Tensor] = []

    def step(self, tokens, state):
        self.inputs.append(tokens.clone())
        return self.inner.step(tokens, state)


def test_finished_hypotheses_are_not_extended_and_nbest_is_clean():
    v, b = 6, 10
    spy = Spy(HashDecoder(v, seed=2, eos_bias=1.5))
    state = spy.inner.init_state(b)
    bos = v + 1  # a BOS id outside the output vocabulary
    hyps = beam_search(spy, state, beam=5, bos=bos, eos=EOS, max_len=8, nbest=5, length_penalty=1.0)
    assert len(spy.inputs) > 1
    assert bool((spy.inputs[0] == bos).all())
    for step_inputs in spy.inputs[1:]:
        assert not bool((step_inputs == EOS).any())  # EOS is never fed back
        assert step_inputs.numel() % 5 == 0
    # batches shrink as sentences finish
    assert spy.inputs[-1].numel() < spy.inputs[0].numel()
    for i in range(b):
        check_hyp_list(hyps[i], 5, 1.0)
        for h in hyps[i]:
            # the fused score of the tokens, recomputed by teacher forcing
            lp = forced_log_prob(spy.inner, rows(state, i), bos, h.tokens + [EOS])
            assert h.log_prob == pytest.approx(lp, rel=1e-10)


class HistoryDecoder:
    """Scores depend on a per-hypothesis running sum kept in ``state["acc"]``.

    ``in_place=True`` updates that tensor in place and returns the same object, which search
    must still reorder (its in-place version counter changes); ``state["table"]`` is passed
    through untouched, so search may skip reordering it.
    """

    def __init__(self, vocab: int, in_place: bool):
        g = torch.Generator().manual_seed(5)
        self.emb = torch.randn(vocab + 2, 3, generator=g, dtype=DT)
        self.proj = torch.randn(3, vocab, generator=g, dtype=DT)
        self.in_place = in_place

    def init_state(self, b: int) -> State:
        g = torch.Generator().manual_seed(6)
        return {"acc": torch.zeros(b, 3, dtype=DT), "table": torch.randn(b, 3, generator=g)}

    def step(self, tokens: Tensor, state: State) -> tuple[Tensor, State]:
        acc = state["acc"]
        if self.in_place:
            acc.mul_(0.7).add_(self.emb[tokens])
        else:
            acc = acc * 0.7 + self.emb[tokens]
        lp = torch.tanh(acc + state["table"].to(DT)) @ self.proj * 3
        return lp.log_softmax(-1), {"acc": acc, "table": state["table"]}


def test_in_place_state_updates_are_reordered():
    kw: dict = dict(beam=4, bos=EOS, eos=EOS, max_len=7, nbest=3, length_penalty=0.4)
    fresh = HistoryDecoder(6, in_place=False)
    inplace = HistoryDecoder(6, in_place=True)
    want = beam_search(fresh, fresh.init_state(5), **kw)
    got = beam_search(inplace, inplace.init_state(5), **kw)
    for w, g in zip(want, got, strict=True):
        assert [h.tokens for h in w] == [h.tokens for h in g]
        assert [h.score for h in w] == pytest.approx([h.score for h in g], rel=1e-12)
    assert len({tuple(h.tokens) for hyps in want for h in hyps}) > 5  # not a degenerate model


def test_max_len_fallback_returns_flagged_unfinished():
    v, b, max_len = 5, 3, 3
    dec = HashDecoder(v, seed=4, no_eos=True)
    state = dec.init_state(b)
    g = greedy_search(dec, state, bos=EOS, eos=EOS, max_len=max_len)
    assert not bool(g.finished.any()) and g.lengths.tolist() == [max_len] * b
    hyps = beam_search(dec, state, beam=16, bos=EOS, eos=EOS, max_len=max_len, nbest=4)
    labels = [0, 2, 3, 4]
    for i in range(b):
        check_hyp_list(hyps[i], 4, 0.0)
        assert all(not h.finished and h.length == max_len for h in hyps[i])
        # a beam of 16 keeps every length-2 prefix, so the unfinished 4-best is exact
        ranked = sorted(
            (
                (forced_log_prob(dec, rows(state, i), EOS, list(s)), list(s))
                for s in itertools.product(labels, repeat=max_len)
            ),
            key=lambda x: -x[0],
        )
        assert [h.tokens for h in hyps[i]] == [s for _, s in ranked[:4]]
        assert hyps[i][0].score >= float(g.scores[i]) - 1e-12


def test_ctc_topk_partial_scoring():
    """ctc_topk >= V is exact; a small ctc_topk still gives exact CTC scores of its outputs."""
    b = 4
    dec, memory, mask, _, v = attn_batch(b, seed=8)
    state = dec.init_state(memory, mask)
    _, ctc, lp_ctc, lengths = fusion(b, seed=9, v=v)
    kw: dict = dict(beam=3, bos=EOS, eos=EOS, max_len=6, nbest=3)
    full = beam_search(dec, state, ctc=(0.5, ctc, ctc.init_state()), **kw)
    same = beam_search(dec, state, ctc=(0.5, ctc, ctc.init_state()), ctc_topk=v, **kw)
    part = beam_search(dec, state, ctc=(0.5, ctc, ctc.init_state()), ctc_topk=3, **kw)
    n_finished = 0
    for i in range(b):
        assert [h.tokens for h in full[i]] == [h.tokens for h in same[i]]
        for h, o in zip(full[i], same[i]):
            assert h.score == pytest.approx(o.score, rel=1e-12)
        n_finished += sum(h.finished for h in part[i])
        for h in part[i]:
            if h.finished:  # the CTC term of the output is its exact CTC log-probability
                want = ctc_log_prob(lp_ctc[i], lengths[i], h.tokens)
            else:  # an unfinished one carries its prefix score: telescope full-vocab scores
                st = rows(ctc.init_state(), i)
                s, st = ctc.step(torch.tensor([EOS]), st)
                want = 0.0
                for tok in h.tokens:
                    want += float(s[0, tok])
                    s, st = ctc.step(torch.tensor([tok]), st)
            assert h.components["ctc"] == pytest.approx(want, rel=1e-9)
    assert n_finished > 0


def test_argument_checks():
    dec = HashDecoder(4)
    state = dec.init_state(2)
    with pytest.raises(ValueError):
        beam_search(dec, state, beam=2, nbest=3, bos=EOS, eos=EOS, max_len=3)
    with pytest.raises(ValueError):
        beam_search(dec, state, beam=2, bos=EOS, eos=EOS, max_len=torch.tensor([3, 4, 5]))
    with pytest.raises(ValueError):
        beam_search(dec, state, beam=2, bos=EOS, eos=EOS, max_len=3, scorers=[(-1.0, dec, {})])
    with pytest.raises(ValueError):
        CTCPrefixScorer(torch.zeros(1, 3, 4), torch.tensor([4]), blank=0, eos=1)
    with pytest.raises(ValueError):
        CTCPrefixScorer(torch.zeros(1, 3, 4), torch.tensor([3]), blank=1, eos=1)


@pytest.mark.parametrize(
    "device",
    ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))],
)
def test_cuda_graph_search_equals_eager(device):
    """``cuda_graph=True`` (steps replayed as one CUDA graph on a GPU; ignored on the CPU)
    returns the eager search's hypotheses, with sentences of different lengths finishing
    at different steps, EOS banned below ``min_len``, and unfinished fallbacks."""
    b = 5
    dec, memory, mask, _, _ = attn_batch(b, seed=3)
    dec = dec.to(device)
    state = dec.init_state(memory.to(device), mask.to(device))
    for max_len, min_len in ((torch.tensor([6, 3, 8, 5, 7]), torch.tensor([1, 0, 2, 1, 3])), (4, 4)):
        kw: dict = dict(beam=4, bos=EOS, eos=EOS, length_penalty=0.6, nbest=3, min_len=min_len, max_len=max_len)
        eager = beam_search(dec, state, **kw)
        graphed = beam_search(dec, state, cuda_graph=True, **kw)
        for e, g in zip(eager, graphed):
            check_hyp_list(g, 3, 0.6)
            assert [h.tokens for h in g] == [h.tokens for h in e]
            assert [(h.finished, h.length) for h in g] == [(h.finished, h.length) for h in e]
            assert [h.score for h in g] == pytest.approx([h.score for h in e], rel=1e-9)
            assert [h.components["decoder"] for h in g] == pytest.approx([h.log_prob for h in e], rel=1e-9)


def test_balanced_assignment_is_the_best_labelling_with_the_given_counts():
    """Against brute force over every labelling of 6 items into 3 classes with counts (2, 1, 3)
    and with the default equal counts (2, 2, 2): the assignment's total is the maximum."""
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        scores = torch.randn(6, 3, generator=g)
        for counts in ([2, 1, 3], None):
            want = equal_counts(6, 3) if counts is None else counts
            labels = balanced_assignment(scores, counts)
            assert torch.bincount(labels, minlength=3).tolist() == want
            best = max(sum(scores[i, c].item() for i, c in enumerate(lab))
                       for lab in itertools.product(range(3), repeat=6)
                       if [lab.count(k) for k in range(3)] == want)
            assert scores[torch.arange(6), labels].sum().item() == pytest.approx(best)


def test_balanced_assignment_moves_the_least_certain_item_and_handles_minus_inf():
    # argmax says class 0 three times; with 2 + 2 the item with the smallest loss from moving goes
    scores = torch.tensor([[0.0, -5.0], [0.0, -1.0], [0.0, -9.0], [-3.0, 0.0]])
    assert balanced_assignment(scores).tolist() == [0, 1, 0, 1]
    # -inf (an input too short for a candidate) is given only where the counts force it
    scores = torch.tensor([[0.0, float("-inf")], [0.0, float("-inf")]])
    assert sorted(balanced_assignment(scores).tolist()) == [0, 1]
    assert equal_counts(7, 3) == [3, 2, 2]
    with pytest.raises(ValueError, match="summing to 4"):
        balanced_assignment(torch.zeros(4, 2), [1, 1])
