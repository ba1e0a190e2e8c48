"""Tests for seqkit.nn.crf: exact checks against brute-force enumeration of all paths."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from seqkit.nn.crf import CRF, bio_transition_constraints

BIO_LABELS = ["<pad>", "O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def _make(k=3, lengths=(4, 2, 1, 3), seed=0, constraints=None):
    torch.manual_seed(seed)
    crf = CRF(k, *(constraints or ())).double()
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    t = max(lengths)
    emissions = torch.randn(len(lengths), t, k, dtype=torch.float64)
    mask = torch.arange(t)[None, :] < torch.tensor(lengths)[:, None]
    return crf, emissions, mask


def _path_score(crf, em, path, respect_constraints=True):
    """Score of one path, written out term by term (em: (L, K) for one sequence)."""
    s = crf.start_transitions[path[0]].item() + em[0, path[0]].item()
    ok = bool(crf.start_allowed[path[0]]) and bool(crf.end_allowed[path[-1]])
    for a, b, e in zip(path[:-1], path[1:], em[1:], strict=True):
        s += crf.transitions[a, b].item() + e[b].item()
        ok = ok and bool(crf.allowed[a, b])
    s += crf.end_transitions[path[-1]].item()
    return s, ok


def _all_paths(crf, em, valid_only=False):
    """[(path, score)] over every path of length L = len(em), best first."""
    out = []
    for path in itertools.product(range(crf.num_tags), repeat=em.size(0)):
        s, ok = _path_score(crf, em, list(path))
        if ok or not valid_only:
            out.append((list(path), s))
    out.sort(key=lambda ps: -ps[1])
    return out


def _brute_log_z(crf, em, valid_only=False):
    scores = torch.tensor([s for _, s in _all_paths(crf, em, valid_only)], dtype=torch.float64)
    return torch.logsumexp(scores, 0).item()


def _valid(path, allowed, start, end):
    return (
        bool(start[path[0]])
        and bool(end[path[-1]])
        and all(bool(allowed[a, b]) for a, b in zip(path[:-1], path[1:], strict=True))
    )


def test_log_partition_matches_brute_force():
    crf, em, mask = _make()
    log_z = crf.log_partition(em, mask)
    assert log_z.shape == (4,)
    for i, length in enumerate(mask.sum(1).tolist()):
        assert log_z[i].item() == pytest.approx(_brute_log_z(crf, em[i, :length]), abs=1e-6)


def test_decode_and_nbest_match_brute_force():
    crf, em, mask = _make(seed=1)
    best = crf.decode(em, mask)
    for n in range(1, 6):
        nb = crf.nbest(em, mask, n)
        for i, length in enumerate(mask.sum(1).tolist()):
            ref = _all_paths(crf, em[i, :length])
            assert best[i] == ref[0][0]
            expect = ref[:n]
            assert len(nb[i]) == len(expect)  # length 1 has only 3 paths
            for (path, s), (rpath, rs) in zip(nb[i], expect, strict=True):
                assert path == rpath
                assert s == pytest.approx(rs, abs=1e-9)
                tags = torch.tensor([path])
                assert crf.score(em[i : i + 1, :length], tags).item() == pytest.approx(s, abs=1e-9)


def test_score_nll_and_reductions():
    crf, em, mask = _make(seed=2)
    torch.manual_seed(3)
    tags = torch.randint(0, 3, mask.shape).masked_fill(~mask, -100)  # padding ignored
    score = crf.score(em, tags, mask)
    for i, length in enumerate(mask.sum(1).tolist()):
        ref, _ = _path_score(crf, em[i, :length], tags[i, :length].tolist())
        assert score[i].item() == pytest.approx(ref, abs=1e-9)
    nll = crf(em, tags, mask, reduction="none")
    assert torch.allclose(nll, crf.log_partition(em, mask) - score)
    assert (nll > 0).all()
    assert torch.allclose(crf(em, tags, mask), nll.sum())
    assert torch.allclose(crf(em, tags, mask, reduction="sum"), nll.sum())
    assert torch.allclose(crf(em, tags, mask, reduction="mean"), nll.mean())
    assert torch.allclose(crf(em, tags, mask, reduction="token_mean"), nll.sum() / mask.sum())
    with pytest.raises(ValueError):
        crf(em, tags, mask, reduction="avg")
    # mask=None means every position is real
    full = torch.ones_like(mask)
    assert torch.allclose(crf.log_partition(em), crf.log_partition(em, full))


def test_marginals_match_brute_force():
    crf, em, mask = _make(seed=4)
    marg = crf.marginals(em, mask)
    assert marg.shape == em.shape
    assert torch.allclose(marg.sum(2), mask.double())
    assert (marg[~mask] == 0).all()
    for i, length in enumerate(mask.sum(1).tolist()):
        paths = _all_paths(crf, em[i, :length])
        log_z = _brute_log_z(crf, em[i, :length])
        ref = torch.zeros(length, 3, dtype=torch.float64)
        for path, s in paths:
            for t, y in enumerate(path):
                ref[t, y] += math.exp(s - log_z)
        assert torch.allclose(marg[i, :length], ref, atol=1e-9)


def test_bio_constraints_table():
    allowed, start, end = bio_transition_constraints(BIO_LABELS)
    idx = {lab: i for i, lab in enumerate(BIO_LABELS)}
    assert start.tolist() == [False, True, True, False, True, False]
    assert end.tolist() == [False, True, True, True, True, True]
    assert not allowed[idx["<pad>"]].any() and not allowed[:, idx["<pad>"]].any()
    i_per = idx["I-PER"]
    assert {i for i in range(6) if allowed[i, i_per]} == {idx["B-PER"], idx["I-PER"]}
    assert allowed[idx["I-PER"], idx["B-LOC"]] and allowed[idx["O"], idx["O"]]
    assert not allowed[idx["B-LOC"], i_per] and not allowed[idx["O"], i_per]


@pytest.mark.parametrize("strength", [20.0, 1e5])
def test_bio_decode_never_invalid(strength):
    cons = bio_transition_constraints(BIO_LABELS)
    crf, em, mask = _make(k=6, lengths=(5, 3, 1, 4), seed=5, constraints=cons)
    # emissions strongly favour <pad> and I- tags, and I- of the wrong type after B-
    em = em.clone()
    em[:, :, 0] += strength
    em[:, ::2, 3] += strength * 0.9
    em[:, 1::2, 5] += strength * 0.9
    for path in crf.decode(em, mask):
        assert _valid(path, *cons), path
    for lst in crf.nbest(em, mask, 5):
        assert lst
        for path, _ in lst:
            assert _valid(path, *cons), path
    # a length-1 sequence has exactly 3 allowed paths (O, B-PER, B-LOC)
    one = crf.nbest(em[2:3, :1], None, 10)[0]
    assert sorted(p[0] for p, _ in one) == [1, 2, 4]


def test_bio_partition_and_marginals_with_constraints():
    cons = bio_transition_constraints(BIO_LABELS)
    crf, em, mask = _make(k=6, lengths=(4, 2, 3), seed=6, constraints=cons)
    em = em.clone()
    em[:, :, 3] += 5.0  # push towards I-PER everywhere
    log_z = crf.log_partition(em, mask)
    marg = crf.marginals(em, mask)
    for i, length in enumerate(mask.sum(1).tolist()):
        ref = _brute_log_z(crf, em[i, :length], valid_only=True)
        assert log_z[i].item() == pytest.approx(ref, abs=1e-6)
    assert marg[:, :, 0].max() < 1e-6  # <pad> never
    assert marg[:, 0, 3].max() < 1e-6  # I- never first
    assert torch.allclose(marg.sum(2), mask.double())
    # a gold path with a disallowed transition gets a huge loss, still finite
    bad = torch.tensor([[1, 3, 1, 1]])
    nll = crf(em[:1], bad, mask[:1])
    assert torch.isfinite(nll) and nll > 1e3


def test_padded_batch_equals_single():
    crf, em, mask = _make(seed=7)
    em = em.clone()
    em[~mask] = 1e3  # garbage at padding must not leak
    log_z = crf.log_partition(em, mask)
    paths = crf.decode(em, mask)
    nbest = crf.nbest(em, mask, 3)
    marg = crf.marginals(em, mask)
    for i, length in enumerate(mask.sum(1).tolist()):
        alone = em[i : i + 1, :length]
        assert torch.allclose(crf.log_partition(alone), log_z[i : i + 1])
        assert crf.decode(alone) == [paths[i]]
        assert len(paths[i]) == length
        single = crf.nbest(alone, None, 3)[0]
        assert [p for p, _ in single] == [p for p, _ in nbest[i]]
        assert torch.allclose(crf.marginals(alone)[0], marg[i, :length])


@pytest.mark.parametrize("constrained", [False, True])
def test_gradcheck_nll(constrained):
    k = 4
    cons = bio_transition_constraints(["O", "B-X", "I-X", "<pad>"]) if constrained else None
    crf, em, mask = _make(k=k, lengths=(3, 1, 2), seed=8, constraints=cons)
    tags = torch.tensor([[1, 2, 0], [0, 0, 0], [1, 2, 0]])
    names = ["transitions", "start_transitions", "end_transitions"]
    params = tuple(getattr(crf, n).detach().clone().requires_grad_() for n in names)
    em = em.requires_grad_()

    def nll(e, trans, start, end):
        p = dict(zip(names, (trans, start, end), strict=True))
        return torch.func.functional_call(crf, p, (e, tags, mask), {"reduction": "none"})

    assert torch.autograd.gradcheck(nll, (em, *params))

    # marginals equal d log Z / d emissions
    log_z = crf.log_partition(em, mask).sum()
    (grad,) = torch.autograd.grad(log_z, em)
    assert torch.allclose(grad, crf.marginals(em, mask).detach(), atol=1e-9)


def test_training_learns_transitions():
    """Tags cycle 0->1->2->0; only position 0 has an informative feature.

    Per-position emissions cannot beat chance after the first step (the other features are
    noise), so tagging every position right requires the learned transitions.
    """
    torch.manual_seed(0)
    k, feat, t = 3, 6, 7

    def batch(n):
        y0 = torch.randint(0, k, (n,))
        y = (y0[:, None] + torch.arange(t)[None, :]) % k
        x = torch.randn(n, t, feat)
        x[:, :, :k] = 0.0
        x[:, 0, :k] = 3.0 * nn.functional.one_hot(y0, k).float()
        lengths = torch.randint(1, t + 1, (n,))
        mask = torch.arange(t)[None, :] < lengths[:, None]
        return x, y, mask

    proj = nn.Linear(feat, k)
    crf = CRF(k)
    opt = torch.optim.Adam([*proj.parameters(), *crf.parameters()], lr=0.1)
    x, y, mask = batch(64)
    for _ in range(100):
        opt.zero_grad()
        loss = crf(proj(x), y, mask, reduction="token_mean")
        loss.backward()
        opt.step()
    xt, yt, mt = batch(300)
    with torch.no_grad():
        em = proj(xt)
        pred = crf.decode(em, mt)
    gold = [yt[i, : int(mt[i].sum())].tolist() for i in range(300)]
    assert pred == gold
    # emissions alone are far from enough after position 0 ...
    later = mt.clone()
    later[:, 0] = False
    assert (em.argmax(2) == yt)[later].float().mean() < 0.8
    # ... the learned transition matrix encodes the cycle
    assert crf.transitions.argmax(1).tolist() == [1, 2, 0]


def test_input_validation():
    crf = CRF(3)
    em = torch.randn(2, 3, 3)
    with pytest.raises(ValueError):
        crf.log_partition(torch.randn(2, 3, 4))
    with pytest.raises(ValueError):
        crf.log_partition(em, torch.tensor([[False, True, True], [True, True, False]]))
    with pytest.raises(ValueError):
        crf.nbest(em, None, 0)
    with pytest.raises(ValueError):
        CRF(3, allowed=torch.ones(2, 2, dtype=torch.bool))
