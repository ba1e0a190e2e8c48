"""Tests for seqkit.nn.attention: brute-force and torch references, masking, gradcheck."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from seqkit.data.batching import lengths_to_mask
from seqkit.nn.attention import (
    AdditiveAttention,
    DotAttention,
    GeneralAttention,
    LocalPAttention,
    LocationAwareAttention,
    build_attention,
    masked_softmax,
)

B, S, DQ, DK, DV, A = 3, 7, 5, 6, 4, 8


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one intra-op thread is much faster on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


LENGTHS = torch.tensor([7, 3, 5])


def _inputs(dq=DQ, dk=DK, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, dq, generator=g, dtype=dtype)
    k = torch.randn(B, S, dk, generator=g, dtype=dtype)
    v = torch.randn(B, S, DV, generator=g, dtype=dtype)
    mask = lengths_to_mask(LENGTHS, S)
    prev = masked_softmax(torch.randn(B, S, generator=g, dtype=dtype), mask)
    cov = torch.rand(B, S, generator=g, dtype=dtype) * 2 * mask
    return q, k, v, mask, prev, cov


def _modules(DQ=DQ, DK=DK, A=A):
    """(name, module, needs prev_weights, needs coverage) for every kind, float64."""
    torch.manual_seed(0)
    return [
        ("additive", AdditiveAttention(DQ, DK, A).double(), False, False),
        ("additive_cov", AdditiveAttention(DQ, DK, A, coverage=True).double(), False, True),
        ("dot", DotAttention().double(), False, False),
        ("general", GeneralAttention(DQ, DK).double(), False, False),
        ("local_p", LocalPAttention(DQ, DK, window=2).double(), False, False),
        ("local_p_dot", LocalPAttention(DQ, DQ, window=2, score="dot").double(), False, False),
        (
            "local_p_concat",
            LocalPAttention(DQ, DK, window=3, score="concat").double(),
            False,
            False,
        ),
        (
            "local_p_raw",
            LocalPAttention(DQ, DK, window=2, renormalize=False).double(),
            False,
            False,
        ),
        ("location", LocationAwareAttention(DQ, DK, A, 3, 5).double(), True, False),
    ]


def _call_kwargs(prev_needed, cov_needed, prev, cov):
    kw = {}
    if prev_needed:
        kw["prev_weights"] = prev
    if cov_needed:
        kw["coverage"] = cov
    return kw


def _dk(name):
    return DQ if name in ("dot", "local_p_dot") else DK


# ----------------------------------------------------------------------------- references


def _brute_additive(m, q, k, cov=None):
    W, b = m.query_proj.weight, m.query_proj.bias
    U, v = m.key_proj.weight, m.v.weight[0]
    e = torch.empty(q.size(0), k.size(1), dtype=q.dtype)
    for i in range(q.size(0)):
        for j in range(k.size(1)):
            h = W @ q[i] + U @ k[i, j] + b
            if cov is not None:
                h = h + m.coverage_proj * cov[i, j]
            e[i, j] = v @ torch.tanh(h)
    return e


def _brute_location(m, q, k, prev, lengths):
    Fk = m.conv.weight[:, 0]  # (K, width)
    r = Fk.size(1) // 2
    e = torch.empty(q.size(0), k.size(1), dtype=q.dtype)
    for i in range(q.size(0)):
        n = int(lengths[i])
        for j in range(k.size(1)):
            f = torch.zeros(Fk.size(0), dtype=q.dtype)
            for t in range(Fk.size(1)):
                src = j + t - r
                if 0 <= src < n:
                    f = f + Fk[:, t] * prev[i, src]
            h = m.query_proj(q[i]) + m.key_proj(k[i, j]) + m.loc_proj(f)
            e[i, j] = m.v(torch.tanh(h))[0]
    return e


def _brute_local_p(m, q, k, v, lengths, score_fn):
    """Luong et al. (2015) eqs. 9-10 written out per example, in plain loops."""
    ctx = torch.zeros(q.size(0), v.size(-1), dtype=q.dtype)
    w = torch.zeros(q.size(0), k.size(1), dtype=q.dtype)
    for i in range(q.size(0)):
        n = int(lengths[i])
        vp, Wp = m.pos_v.weight[0], m.pos_proj.weight
        p = n * torch.sigmoid(vp @ torch.tanh(Wp @ q[i]))
        assert 0 < float(p.detach()) < n
        win = [
            j for j in range(n) if float(p.detach()) - m.window <= j <= float(p.detach()) + m.window
        ]
        scores = torch.stack([score_fn(q[i], k[i, j]) for j in win])
        align = torch.softmax(scores, 0)
        sigma = m.window / 2
        for a, j in zip(align, win):
            w[i, j] = a * torch.exp(-((j - p) ** 2) / (2 * sigma**2))
        if m.renormalize:
            w[i] = w[i] / w[i].sum()
        ctx[i] = (w[i].unsqueeze(1) * v[i]).sum(0)
    return ctx, w


def test_additive_matches_brute_force_with_and_without_coverage():
    q, k, v, mask, _, cov = _inputs()
    for coverage in (False, True):
        torch.manual_seed(1)
        m = AdditiveAttention(DQ, DK, A, coverage=coverage).double()
        c = cov if coverage else None
        ref = _brute_additive(m, q, k, c)
        e = m.energies(q, k, mask, coverage=c)
        assert torch.allclose(e[mask], ref[mask])
        assert torch.isneginf(e[~mask]).all()
        ctx, w = m(q, k, mask, values=v, coverage=c)
        for i in range(B):
            n = int(LENGTHS[i])
            rw = torch.softmax(ref[i, :n], 0)
            assert torch.allclose(w[i, :n], rw)
            assert torch.allclose(ctx[i], rw @ v[i, :n])
    # zero coverage == no coverage term
    m = AdditiveAttention(DQ, DK, A, coverage=True).double()
    assert torch.equal(
        m.energies(q, k, mask), m.energies(q, k, mask, coverage=torch.zeros(B, S, dtype=q.dtype))
    )


def test_dot_and_general_match_scaled_dot_product_attention():
    q, k, v, mask, _, _ = _inputs(dq=DK)
    attn_mask = mask.unsqueeze(1).unsqueeze(1)  # (B, 1, 1, S)
    ref = F.scaled_dot_product_attention(
        q[:, None, None], k[:, None], v[:, None], attn_mask=attn_mask, scale=1.0
    )[:, 0, 0]
    ctx, w = DotAttention()(q, k, mask, values=v)
    assert torch.allclose(ctx, ref)
    assert torch.allclose(w.sum(1), torch.ones(B, dtype=q.dtype))

    q, k, v, mask, _, _ = _inputs()
    m = GeneralAttention(DQ, DK).double()
    q2 = q @ m.key_proj.weight  # q^T W_a: (B, Dk)
    ref = F.scaled_dot_product_attention(
        q2[:, None, None], k[:, None], v[:, None], attn_mask=attn_mask, scale=1.0
    )[:, 0, 0]
    ctx, w = m(q, k, mask, values=v)
    assert torch.allclose(ctx, ref)
    e = m.energies(q, k, mask)
    assert torch.allclose(e[mask], torch.einsum("bd,de,bse->bs", q, m.key_proj.weight, k)[mask])


@pytest.mark.parametrize("score", ["general", "dot", "concat"])
@pytest.mark.parametrize("renormalize", [True, False])
def test_local_p_matches_brute_force(score, renormalize):
    dk = DQ if score == "dot" else DK
    q, k, v, mask, _, _ = _inputs(dk=dk)
    torch.manual_seed(2)
    m = LocalPAttention(DQ, dk, window=2, score=score, renormalize=renormalize).double()
    with torch.no_grad():  # larger positional weights so p_t spreads over the sequence
        m.pos_v.weight.mul_(4)
    if score == "general":
        fn = lambda qi, kj: qi @ m.scorer.key_proj.weight @ kj  # noqa: E731
    elif score == "dot":
        fn = lambda qi, kj: qi @ kj  # noqa: E731
    else:
        sc = m.scorer
        fn = lambda qi, kj: sc.v(torch.tanh(sc.query_proj(qi) + sc.key_proj(kj)))[0]  # noqa: E731
    ref_ctx, ref_w = _brute_local_p(m, q, k, v, LENGTHS, fn)
    ctx, w = m(q, k, mask, values=v)
    assert torch.allclose(w, ref_w)
    assert torch.allclose(ctx, ref_ctx)
    assert (w[~mask] == 0).all()
    p = m.position(q, mask)
    j = torch.arange(S, dtype=q.dtype)
    outside = (j - p[:, None]).abs() > m.window
    assert (w[outside] == 0).all() and outside.any()
    sums = w.sum(1)
    if renormalize:
        assert torch.allclose(sums, torch.ones(B, dtype=q.dtype))
    else:
        assert (sums <= 1 + 1e-12).all() and (sums < 1 - 1e-3).any()


def test_local_p_position_uses_each_sequences_own_length():
    q, k, _, mask, _, _ = _inputs()
    m = LocalPAttention(DQ, DK, window=2).double()
    p = m.position(q, mask)
    s = torch.sigmoid(m.pos_v(torch.tanh(m.pos_proj(q)))).squeeze(-1)
    assert torch.allclose(p, LENGTHS.double() * s)


def test_location_aware_matches_brute_force_and_uniform_default():
    q, k, v, mask, prev, _ = _inputs()
    torch.manual_seed(3)
    m = LocationAwareAttention(DQ, DK, A, conv_channels=3, kernel_size=5).double()
    assert m.needs_prev_weights and not m.supports_coverage
    ref = _brute_location(m, q, k, prev, LENGTHS)
    e = m.energies(q, k, mask, prev_weights=prev)
    assert torch.allclose(e[mask], ref[mask])
    assert torch.isneginf(e[~mask]).all()
    uni = mask.double() / LENGTHS[:, None].double()
    assert torch.equal(m.energies(q, k, mask), m.energies(q, k, mask, prev_weights=uni))
    # the energies really depend on the previous weights
    assert not torch.allclose(e[mask], m.energies(q, k, mask, prev_weights=uni)[mask])


# ----------------------------------------------------------------------------- shared contract


@pytest.mark.parametrize("idx", range(9))
def test_masking_padded_batch_equals_each_sequence_alone(idx):
    name, m, need_prev, need_cov = _modules()[idx]
    q, k, v, mask, prev, cov = _inputs(dk=_dk(name))
    # garbage (finite) at padded keys/values/prev/cov must not matter
    g = torch.Generator().manual_seed(9)
    pad = ~mask
    k = torch.where(pad[..., None], 100 * torch.randn(k.shape, generator=g, dtype=k.dtype), k)
    v = torch.where(pad[..., None], 100 * torch.randn(v.shape, generator=g, dtype=v.dtype), v)
    prev = torch.where(pad, torch.rand(B, S, generator=g, dtype=k.dtype), prev)
    cov = torch.where(pad, 5 + torch.rand(B, S, generator=g, dtype=k.dtype), cov)
    kw = _call_kwargs(need_prev, need_cov, prev, cov)
    ctx, w = m(q, k, mask, values=v, **kw)
    e = m.energies(q, k, mask, **kw)
    assert (w[pad] == 0).all()  # exactly zero at padding
    assert torch.isneginf(e[pad]).all()
    if name != "local_p_raw":
        assert torch.allclose(w.sum(1), torch.ones(B, dtype=w.dtype))
    for i in range(B):
        n = int(LENGTHS[i])
        kw1 = _call_kwargs(need_prev, need_cov, prev[i : i + 1, :n], cov[i : i + 1, :n])
        m1 = torch.ones(1, n, dtype=torch.bool)
        c1, w1 = m(q[i : i + 1], k[i : i + 1, :n], m1, values=v[i : i + 1, :n], **kw1)
        assert torch.allclose(w[i, :n], w1[0], atol=1e-12)
        assert torch.allclose(ctx[i], c1[0], atol=1e-12)


@pytest.mark.parametrize("idx", range(9))
def test_precomputed_proj_keys_and_default_values(idx):
    name, m, need_prev, need_cov = _modules()[idx]
    q, k, _, mask, prev, cov = _inputs(dk=_dk(name))
    kw = _call_kwargs(need_prev, need_cov, prev, cov)
    pk = m.project_keys(k)
    c1, w1 = m(q, k, mask, proj_keys=pk, **kw)
    c2, w2 = m(q, k, mask, values=k, **kw)
    assert torch.equal(w1, w2) and torch.equal(c1, c2)
    assert c1.shape == (B, k.size(-1)) and w1.shape == (B, S)


@pytest.mark.parametrize("idx", range(9))
def test_gradcheck_float64_inputs_and_parameters(idx):
    # small sizes: gradcheck perturbs every input and parameter element
    name, m, need_prev, need_cov = _modules(DQ=3, DK=4, A=3)[idx]
    dq, dk = 3, 3 if name in ("dot", "local_p_dot") else 4
    q, k, v, mask, prev, cov = _inputs(dq=dq, dk=dk)
    q, k, v, mask, prev, cov = (
        q[1:],
        k[1:, :5],
        v[1:, :5, :2],
        mask[1:, :5],
        prev[1:, :5],
        cov[1:, :5],
    )
    names = [n for n, _ in m.named_parameters()]
    params = [p.detach().clone().requires_grad_() for _, p in m.named_parameters()]
    extra = [t for t, need in ((prev, need_prev), (cov, need_cov)) if need]

    def f(q, k, v, *rest):
        it = iter(rest[: len(extra)])
        kw = _call_kwargs(need_prev, need_cov, next(it) if need_prev else None, next(it, None))
        ps = rest[len(extra) :]
        return functional_call(m, dict(zip(names, ps)), (q, k, mask), dict(values=v, **kw))

    args = [t.clone().requires_grad_() for t in (q, k, v, *extra)]
    assert torch.autograd.gradcheck(f, (*args, *params), eps=1e-6, atol=1e-5)


def test_build_attention_and_errors():
    kinds = {
        "additive": AdditiveAttention,
        "dot": DotAttention,
        "general": GeneralAttention,
        "local_p": LocalPAttention,
        "location": LocationAwareAttention,
    }
    for kind, cls in kinds.items():
        assert type(build_attention(kind, 6, 6)) is cls
    a = build_attention("additive", 4, 6, attn_size=3, coverage=True)
    assert a.supports_coverage and a.v.weight.shape == (1, 3)
    loc = build_attention("location", 4, 6, conv_channels=2, kernel_size=3)
    assert loc.conv.weight.shape == (2, 1, 3)
    assert build_attention("local_p", 4, 6, window=3).window == 3
    with pytest.raises(ValueError, match="kind"):
        build_attention("bogus", 4, 4)
    with pytest.raises(ValueError, match="query_size == key_size"):
        build_attention("dot", 4, 5)
    with pytest.raises(TypeError):
        build_attention("dot", 4, 4, attn_size=3)
    with pytest.raises(ValueError, match="odd"):
        LocationAwareAttention(4, 4, 4, kernel_size=4)
    with pytest.raises(ValueError, match="window"):
        LocalPAttention(4, 4, window=0)
    q, k, _, mask, _, cov = _inputs(dk=DQ)
    for m in (
        AdditiveAttention(DQ, DQ, 3).double(),
        DotAttention(),
        GeneralAttention(DQ, DQ).double(),
    ):
        assert not m.supports_coverage
        with pytest.raises(ValueError, match="coverage"):
            m(q, k, mask, coverage=cov)


def test_masked_softmax_exact_zero_and_matches_softmax_on_prefix():
    x = torch.randn(2, 5)
    mask = lengths_to_mask(torch.tensor([5, 2]))
    w = masked_softmax(x, mask)
    assert torch.equal(w[1, 2:], torch.zeros(3))
    assert torch.allclose(w[1, :2], torch.softmax(x[1, :2], 0))
    assert torch.allclose(w[0], torch.softmax(x[0], 0))
    assert math.isclose(float(w[1].sum()), 1.0, rel_tol=1e-6)
