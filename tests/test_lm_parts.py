"""Tests for seqkit.nn.dropout and seqkit.nn.lm: references are torch built-ins and loops."""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from seqkit.nn.dropout import (
    EmbeddingDropout,
    LockedDropout,
    WeightDropGRU,
    WeightDropLSTM,
    embedding_dropout,
    locked_dropout,
)
from seqkit.nn.lm import RNNLM, ContinuousCache, cache_pointer_log_probs
from seqkit.search.state import expand_state, select_state


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one intra-op thread avoids oversubscription on a shared 2-core box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ----------------------------------------------------------------------------- locked dropout


def test_dropout_zeroes_a_fraction_p_scales_the_rest_and_passes_the_mask_to_the_gradient():
    from seqkit.nn.dropout import Dropout, dropout

    torch.manual_seed(0)
    x = torch.rand(200, 300) + 0.5  # no zeros of its own
    for p in (0.1, 0.3, 0.7):
        y = dropout(x, p)
        kept = y != 0
        assert abs(kept.float().mean().item() - (1 - p)) < 0.01  # 60,000 draws
        assert torch.allclose(y[kept], x[kept] / (1 - p))
    torch.manual_seed(3)
    a = dropout(x, 0.3)
    torch.manual_seed(3)
    assert torch.equal(a, dropout(x, 0.3))  # the global RNG reproduces it
    xg = x.clone().requires_grad_()
    y = dropout(xg, 0.4)
    (g,) = torch.autograd.grad(y.sum(), xg)
    assert torch.equal(g, (y != 0).float() / 0.6)
    assert dropout(x, 0.3, training=False) is x and dropout(x, 0.0) is x
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))
    half = dropout(x.to(torch.bfloat16), 0.5)
    assert half.dtype == torch.bfloat16 and abs((half != 0).float().mean().item() - 0.5) < 0.01
    m = Dropout(0.25)
    assert m.p == 0.25 and torch.equal(m.eval()(x), x)
    with pytest.raises(ValueError, match="p must be in"):
        dropout(x, 1.5)


def test_locked_dropout_mask_shared_over_time_and_distinct_across_batch():
    torch.manual_seed(0)
    x = torch.randn(6, 7, 50)
    out = LockedDropout(0.5).train()(x)
    ratio = out / x  # (B, T, D): the mask times 1 / (1 - p)
    assert set(ratio.round(decimals=5).unique().tolist()) == {0.0, 2.0}
    assert torch.equal(ratio, ratio[:, :1].expand_as(ratio))  # same mask at every step
    masks = ratio[:, 0]  # (B, D)
    for a in range(6):
        for b in range(a + 1, 6):
            assert not torch.equal(masks[a], masks[b])  # each sequence draws its own
    # the same draw as an explicit (B, 1, D) Bernoulli mask
    torch.manual_seed(0)
    x = torch.randn(6, 7, 50)
    ref_mask = torch.empty(6, 1, 50).bernoulli_(0.5) / 0.5
    assert torch.equal(out, x * ref_mask)


def test_locked_dropout_eval_is_identity_and_p_bounds():
    x = torch.randn(2, 3, 4)
    assert LockedDropout(0.5).eval()(x) is x
    assert locked_dropout(x, 0.0) is x
    assert torch.equal(locked_dropout(x, 1.0), torch.zeros_like(x))
    with pytest.raises(ValueError):
        LockedDropout(1.5)


def test_locked_dropout_gradcheck():
    x = torch.randn(3, 4, 5, dtype=torch.float64, requires_grad=True)

    def fn(inp):
        torch.manual_seed(1)
        return locked_dropout(inp, 0.4)

    assert torch.autograd.gradcheck(fn, (x,))


# ----------------------------------------------------------------------------- embedding dropout


def test_embedding_dropout_zeroes_whole_word_types():
    torch.manual_seed(0)
    vocab, dim, p = 20, 8, 0.5
    weight = torch.randn(vocab, dim)
    tokens = torch.cat([torch.arange(vocab), torch.randint(0, vocab, (100,))]).view(4, 30)
    torch.manual_seed(3)
    out = embedding_dropout(tokens, weight, p)  # (4, 30, 8)
    torch.manual_seed(3)
    row_mask = torch.empty(vocab).bernoulli_(1 - p) / (1 - p)  # the AWD-LSTM formula
    assert torch.equal(out, F.embedding(tokens, weight * row_mask[:, None]))
    dropped = 0
    for w in range(vocab):
        rows = out[tokens == w]  # every occurrence of word w in the batch
        if rows.abs().sum() == 0:
            dropped += 1
        else:
            assert torch.allclose(rows, (2 * weight[w]).expand_as(rows))
    assert 0 < dropped < vocab


def test_embedding_dropout_gradient_and_eval():
    torch.manual_seed(0)
    emb = nn.Embedding(10, 4, padding_idx=0)
    wrapped = EmbeddingDropout(emb, p=0.5)
    tokens = torch.arange(10).repeat(3, 1)  # (3, 10) every word
    assert torch.equal(wrapped.eval()(tokens), emb(tokens))
    torch.manual_seed(1)
    out = wrapped.train()(tokens)
    out.sum().backward()
    zero_rows = out[0].abs().sum(-1) == 0  # word w is at column w of every row
    assert zero_rows.any()
    assert torch.all(emb.weight.grad[zero_rows] == 0)  # dropped types get no gradient
    assert torch.all(emb.weight.grad[0] == 0)  # padding_idx never does
    kept = (~zero_rows).nonzero().flatten()
    kept = kept[kept != 0]
    assert torch.allclose(emb.weight.grad[kept], torch.full((len(kept), 4), 3 * 2.0))
    with pytest.raises(ValueError):
        EmbeddingDropout(nn.Embedding(5, 2, max_norm=1.0))


def test_embedding_dropout_gradcheck():
    weight = torch.randn(7, 3, dtype=torch.float64, requires_grad=True)
    tokens = torch.tensor([[1, 2, 1, 6], [0, 2, 5, 5]])

    def fn(w):
        torch.manual_seed(2)
        return embedding_dropout(tokens, w, 0.3)

    assert torch.autograd.gradcheck(fn, (weight,))


# ----------------------------------------------------------------------------- weight drop


def _hh_names(rnn: nn.RNNBase):
    return [n for n, _ in rnn.named_parameters() if n.startswith("weight_hh")]


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (WeightDropLSTM, dict(num_layers=2, bidirectional=True)),
        (WeightDropLSTM, dict(num_layers=1, proj_size=2)),
        (WeightDropGRU, dict(num_layers=2, bidirectional=True)),
    ],
)
def test_weight_drop_eval_equals_plain_rnn(cls, kwargs):
    torch.manual_seed(0)
    plain = cls._rnn_class(3, 4, batch_first=True, **kwargs)
    wd = cls.from_rnn(plain, weight_dropout=0.5).eval()
    x = torch.randn(2, 5, 3)
    out, state = wd(x)
    ref_out, ref_state = plain(x)
    assert torch.equal(out, ref_out)
    for a, b in zip(
        state if isinstance(state, tuple) else (state,),
        ref_state if isinstance(ref_state, tuple) else (ref_state,),
        strict=True,
    ):
        assert torch.equal(a, b)
    # packed input and an initial state go through unchanged
    packed = nn.utils.rnn.pack_padded_sequence(x, torch.tensor([5, 2]), batch_first=True)
    hx = tuple(torch.randn_like(s) for s in ref_state) if isinstance(ref_state, tuple) else None
    got, ref = wd(packed, hx), plain(packed, hx)
    assert torch.equal(got[0].data, ref[0].data)
    # weight_dropout=0 in training mode is also the plain RNN; to_rnn() gives it back
    assert torch.equal(cls.from_rnn(plain, 0.0).train()(x)[0], ref_out)
    assert torch.equal(wd.to_rnn()(x)[0], ref_out)


def test_weight_drop_train_uses_one_dropped_matrix_for_all_steps():
    torch.manual_seed(0)
    wd = WeightDropLSTM(3, 6, num_layers=2, batch_first=True, weight_dropout=0.5).train()
    x = torch.randn(4, 9, 3)
    torch.manual_seed(7)
    out, (h, c) = wd(x)
    torch.manual_seed(7)
    dropped = wd.dropped_weights()  # the same draw as inside forward
    for name, w in dropped.items():
        raw = getattr(wd, name + "_raw")
        zeros = (w == 0).float().mean().item()
        assert 0.3 < zeros < 0.7
        assert torch.allclose(w[w != 0], 2 * raw[w != 0])
    # A plain nn.LSTM holding the dropped matrices applies them at every time step.
    ref = wd.to_rnn()
    with torch.no_grad():
        for name, w in dropped.items():
            getattr(ref, name).copy_(w)
    ref_out, (ref_h, ref_c) = ref(x)
    assert torch.equal(out, ref_out) and torch.equal(h, ref_h) and torch.equal(c, ref_c)
    # ... and a step-by-step unroll, one call per time step, with the same matrices.
    hx = None
    for t in range(9):
        o, hx = ref(x[:, t : t + 1], hx)
        assert torch.allclose(o[:, 0], out[:, t], atol=1e-6)
    # a new forward draws new masks
    assert not torch.equal(wd(x)[0], out)


def test_weight_drop_gradients_reach_raw_weights():
    torch.manual_seed(0)
    wd = WeightDropLSTM(3, 5, batch_first=True, weight_dropout=0.5).train()
    x = torch.randn(2, 6, 3)
    torch.manual_seed(4)
    out, _ = wd(x)
    out.pow(2).sum().backward()
    torch.manual_seed(4)
    dropped = wd.dropped_weights()["weight_hh_l0"]
    grad = wd.weight_hh_l0_raw.grad
    assert grad is not None and grad.abs().sum() > 0
    assert torch.all(grad[dropped == 0] == 0)  # DropConnect: no gradient to dropped entries
    assert torch.all(grad[dropped != 0] != 0)
    names = {n for n, _ in wd.named_parameters()}
    assert names == {"weight_hh_l0_raw", "rnn.weight_ih_l0", "rnn.bias_ih_l0", "rnn.bias_hh_l0"}
    assert all(p.grad is not None for p in wd.parameters())


def test_weight_drop_gradcheck():
    torch.manual_seed(0)
    wd = WeightDropLSTM(2, 3, batch_first=True, weight_dropout=0.4).double().train()
    x = torch.randn(2, 3, 2, dtype=torch.float64, requires_grad=True)
    params = dict(wd.named_parameters())
    names = list(params)

    def fn(inp, *tensors):
        torch.manual_seed(5)
        out, (h, c) = functional_call(wd, dict(zip(names, tensors, strict=True)), (inp,))
        return out, c

    inputs = (x, *(p.detach().clone().requires_grad_() for p in params.values()))
    assert torch.autograd.gradcheck(fn, inputs)


def test_weight_drop_no_warnings_state_dict_and_copies():
    torch.manual_seed(0)
    wd = WeightDropLSTM(3, 4, num_layers=2, batch_first=True, weight_dropout=0.5)
    x = torch.randn(2, 5, 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for mode in (True, False):
            wd.train(mode)
            out, _ = wd(x)
            out.sum().backward()
    assert not caught, [str(w.message) for w in caught]
    # no dropped matrix (nor its graph) stays referenced by the inner RNN after a call
    hh = [
        w
        for n, w in zip(wd.rnn._flat_weights_names, wd.rnn._flat_weights, strict=True)
        if "hh" in n and "weight" in n
    ]
    assert len(hh) == 2 and all(w is None for w in hh)
    other = WeightDropLSTM(3, 4, num_layers=2, batch_first=True, weight_dropout=0.5)
    other.load_state_dict(wd.state_dict())
    wd.eval(), other.eval()
    assert torch.equal(other(x)[0], wd(x)[0])
    assert torch.equal(copy.deepcopy(wd)(x)[0], wd(x)[0])
    wd64 = copy.deepcopy(wd).double()
    assert torch.allclose(wd64(x.double())[0].float(), wd(x)[0], atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_weight_drop_cuda():
    torch.manual_seed(0)
    plain = nn.LSTM(3, 8, num_layers=2, batch_first=True).cuda()
    wd = WeightDropLSTM.from_rnn(plain, weight_dropout=0.5).cuda()
    x = torch.randn(4, 7, 3, device="cuda")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert torch.allclose(wd.eval()(x)[0], plain(x)[0], atol=1e-6)
        out, _ = wd.train()(x)
        out.sum().backward()
    assert not caught, [str(w.message) for w in caught]
    assert wd.weight_hh_l0_raw.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- RNN LM


def _lm(cell="lstm", tie=True, **kw):
    torch.manual_seed(0)
    return RNNLM(13, 6, 8, 3, tie_weights=tie, cell=cell, **kw).double()


def test_tied_weights_share_storage():
    lm = _lm()
    assert lm.decoder.weight is lm.embedding.weight
    assert lm.decoder.weight.data_ptr() == lm.embedding.weight.data_ptr()
    assert lm.layer_sizes == [8, 8, 6]  # last layer = emb_dim when tied (AWD-LSTM)
    assert sum(p is lm.embedding.weight for p in lm.parameters()) == 1
    logits, _, _ = lm(torch.randint(0, 13, (2, 4)))
    logits.sum().backward()
    before = lm.embedding.weight.detach().clone()
    torch.optim.SGD(lm.parameters(), lr=0.1).step()
    assert not torch.equal(lm.embedding.weight, before)
    assert torch.equal(lm.decoder.weight, lm.embedding.weight)
    untied = _lm(tie=False)
    assert untied.decoder.weight is not untied.embedding.weight
    assert untied.layer_sizes == [8, 8, 8] and untied.decoder.in_features == 8


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_step_over_a_sequence_equals_forward(cell):
    lm = _lm(cell, dropout_input=0.5, dropout_weight=0.5, dropout_embedding=0.2).eval()
    tokens = torch.randint(0, 13, (3, 7))
    logits, final, _ = lm(tokens)
    state = lm.init_state(3)
    assert set(state) == ({"h0", "h1", "h2"} | ({"c0", "c1", "c2"} if cell == "lstm" else set()))
    assert state["h2"].shape == (3, 6)
    for t in range(7):
        log_probs, state = lm.step(tokens[:, t], state)
        assert torch.allclose(log_probs, F.log_softmax(logits[:, t], -1), atol=1e-12)
    for k in final:
        assert torch.allclose(state[k], final[k], atol=1e-12)
    # None / {} mean the zero state
    assert torch.allclose(lm.step(tokens[:, 0], None)[0], lm.step(tokens[:, 0], {})[0])


def test_step_state_works_with_beam_expand_and_select():
    lm = _lm().eval()
    tokens = torch.randint(0, 13, (2, 3))
    _, state, _ = lm(tokens)
    beam = expand_state(state, 4)  # (8, H)
    lp, new = lm.step(tokens[:, -1].repeat_interleave(4), beam)
    lp_ref, new_ref = lm.step(tokens[:, -1], state)
    assert torch.allclose(lp, lp_ref.repeat_interleave(4, 0), atol=1e-12)
    picked = select_state(new, torch.tensor([5, 0]))
    assert torch.allclose(picked["c1"], new_ref["c1"][[1, 0]], atol=1e-12)


def test_truncated_bptt_state_carry_equals_one_forward():
    lm = _lm(dropout_output=0.3, dropout_hidden=0.3).eval()
    tokens = torch.randint(0, 13, (2, 10))
    full, full_state, full_h = lm(tokens)
    a, state_a, h_a = lm(tokens[:, :4])
    b, state_b, h_b = lm(tokens[:, 4:], lm.detach_state(state_a))
    assert torch.allclose(torch.cat([a, b], 1), full, atol=1e-12)
    assert torch.allclose(torch.cat([h_a, h_b], 1), full_h, atol=1e-12)
    for k in full_state:
        assert torch.allclose(state_b[k], full_state[k], atol=1e-12)
    # in training, detach_state cuts the graph: chunk 2's loss does not reach chunk 1's inputs
    lm.train()
    for detach in (True, False):
        start = {k: v.requires_grad_() for k, v in lm.init_state(2).items()}  # leaves
        _, s, _ = lm(tokens[:, :4], start)
        if detach:
            s = lm.detach_state(s)
            assert all(not v.requires_grad for v in s.values())
        logits, _, _ = lm(tokens[:, 4:], s)
        logits.sum().backward()
        assert (start["h0"].grad is None) == detach
        assert lm.layers[0].weight_hh_l0_raw.grad is not None


def test_padded_batch_equals_each_sequence_alone():
    lm = _lm(dropout_input=0.4, dropout_weight=0.5).eval()
    seqs = [torch.randint(1, 13, (n,)) for n in (5, 2, 4)]
    tokens = nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=0)  # (3, 5)
    lengths = torch.tensor([5, 2, 4])
    start = {k: torch.randn_like(v) for k, v in lm.init_state(3).items()}
    logits, state, hiddens = lm(tokens, start, lengths)
    for b, seq in enumerate(seqs):
        n = len(seq)
        alone = {k: v[b : b + 1] for k, v in start.items()}
        ref_logits, ref_state, ref_h = lm(seq[None], alone)
        assert torch.allclose(logits[b, :n], ref_logits[0], atol=1e-12)
        assert torch.allclose(hiddens[b, :n], ref_h[0], atol=1e-12)
        assert torch.all(logits[b, n:] == 0) and torch.all(hiddens[b, n:] == 0)
        for k in state:
            assert torch.allclose(state[k][b], ref_state[k][0], atol=1e-12)


def test_rnnlm_gradcheck_train_mode():
    torch.manual_seed(0)
    lm = RNNLM(
        5,
        3,
        4,
        2,
        dropout_input=0.2,
        dropout_hidden=0.2,
        dropout_output=0.2,
        dropout_embedding=0.2,
        dropout_weight=0.3,
    ).double()
    tokens = torch.tensor([[1, 2, 3], [4, 0, 2]])
    names, params = zip(*lm.named_parameters(), strict=True)

    def fn(*tensors):
        torch.manual_seed(9)
        logits, state, _ = functional_call(lm, dict(zip(names, tensors, strict=True)), (tokens,))
        return logits, state["c1"]

    inputs = tuple(p.detach().clone().requires_grad_() for p in params)
    assert torch.autograd.gradcheck(fn, inputs)


def test_rnnlm_memorises_a_repeated_text():
    torch.manual_seed(0)
    text = torch.randint(0, 12, (24,)).repeat(3)  # a 24-token text, three times
    lm = RNNLM(12, 16, 32, 2, dropout_input=0.1, dropout_hidden=0.1, dropout_weight=0.1)
    opt = torch.optim.Adam(lm.parameters(), lr=0.02)
    inputs, targets = text[None, :-1], text[None, 1:]
    for _ in range(300):
        lm.train()
        logits, _, _ = lm(inputs)
        loss = F.cross_entropy(logits.view(-1, 12), targets.view(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    lm.eval()
    with torch.no_grad():
        logits, _, _ = lm(inputs)
    # the first copy cannot be predicted from its prefix; the repeats can
    later = slice(24, None)
    loss = F.cross_entropy(logits[0, later], targets[0, later]).item()
    assert loss < 0.05, loss
    assert torch.equal(logits[0, later].argmax(-1), targets[0, later])


# ----------------------------------------------------------------------------- cache pointer


def _brute_force_cache(model_lp, hiddens, targets, cache_size, theta, lam):
    """p(w) = (1 - lam) p_model(w) + lam p_cache(w), one position and one key at a time."""
    t_len, vocab = model_lp.shape
    out = torch.empty_like(model_lp)
    for t in range(t_len):
        window = range(max(0, t - cache_size), t)
        if not window:
            out[t] = model_lp[t]
            continue
        weights = {i: math.exp(theta * float(hiddens[t] @ hiddens[i])) for i in window}
        total = sum(weights.values())
        for w in range(vocab):
            p_cache = sum(v for i, v in weights.items() if int(targets[i]) == w) / total
            p = (1 - lam) * math.exp(float(model_lp[t, w])) + lam * p_cache
            out[t, w] = math.log(p) if p > 0 else float("-inf")
    return out


def _cache_inputs(t_len=9, vocab=5, dim=3, seed=0):
    torch.manual_seed(seed)
    model_lp = F.log_softmax(torch.randn(t_len, vocab, dtype=torch.float64), -1)
    hiddens = torch.randn(t_len, dim, dtype=torch.float64)
    targets = torch.randint(0, vocab, (t_len,))
    return model_lp, hiddens, targets


@pytest.mark.parametrize("cache_size, theta, lam", [(1, 0.7, 0.3), (3, 1.3, 0.5), (20, 0.5, 0.9)])
@pytest.mark.parametrize("chunk_size", [2, 1024])
def test_cache_pointer_matches_brute_force(cache_size, theta, lam, chunk_size):
    model_lp, hiddens, targets = _cache_inputs()
    got = cache_pointer_log_probs(
        model_lp, hiddens, targets, cache_size, theta, lam, chunk_size=chunk_size
    )
    ref = _brute_force_cache(model_lp, hiddens, targets, cache_size, theta, lam)
    assert torch.allclose(got, ref, atol=1e-12)
    assert torch.allclose(got.logsumexp(-1), torch.zeros(9, dtype=torch.float64), atol=1e-12)


def test_cache_pointer_lambda_zero_and_empty_cache_are_the_model():
    model_lp, hiddens, targets = _cache_inputs()
    assert torch.equal(cache_pointer_log_probs(model_lp, hiddens, targets, 4, 1.0, 0.0), model_lp)
    assert torch.equal(cache_pointer_log_probs(model_lp, hiddens, targets, 0, 1.0, 0.5), model_lp)
    out = cache_pointer_log_probs(model_lp, hiddens, targets, 4, 1.0, 0.5)
    assert torch.equal(out[0], model_lp[0])  # beginning of the text: nothing cached yet
    # one cached pair: all cache mass on the word that followed it
    expected = 0.5 * model_lp[1].exp()
    expected[targets[0]] += 0.5
    assert torch.allclose(out[1], expected.log(), atol=1e-12)
    # lambda = 1: words absent from the cache get probability 0
    only_cache = cache_pointer_log_probs(model_lp, hiddens, targets, 4, 1.0, 1.0)
    absent = torch.ones(5, dtype=torch.bool)
    absent[targets[0]] = False
    assert torch.all(only_cache[1, absent] == float("-inf")) and only_cache[1, targets[0]] == 0


def test_cache_pointer_theta_zero_is_a_unigram_cache():
    vocab = 50
    targets = torch.tensor([3, 7, 3, 3, 9, 7, 3, 3])
    model_lp = torch.full((8, vocab), -math.log(vocab), dtype=torch.float64)
    hiddens = torch.randn(8, 4, dtype=torch.float64)
    out = cache_pointer_log_probs(model_lp, hiddens, targets, 5, 0.0, 0.4)
    for t in range(1, 8):
        window = targets[max(0, t - 5) : t]
        counts = torch.bincount(window, minlength=vocab).double()
        ref = 0.6 / vocab + 0.4 * counts / len(window)
        assert torch.allclose(out[t], ref.log(), atol=1e-12)
    nll_model = -model_lp[1:].gather(1, targets[1:, None]).mean()
    nll_cache = -out[1:].gather(1, targets[1:, None]).mean()
    assert nll_cache < nll_model  # a repetitive text is cheaper with the cache


def test_continuous_cache_streaming_equals_one_call():
    model_lp, hiddens, targets = _cache_inputs(t_len=11)
    whole = cache_pointer_log_probs(model_lp, hiddens, targets, 4, 0.8, 0.3)
    cache = ContinuousCache(4, 0.8, 0.3)
    parts = [cache(model_lp[a:b], hiddens[a:b], targets[a:b]) for a, b in ((0, 3), (3, 4), (4, 11))]
    assert torch.allclose(torch.cat(parts), whole, atol=1e-12)
    # parallel texts (S, T, ...), each with its own cache
    texts = [_cache_inputs(t_len=8, seed=s) for s in (1, 2)]
    stacked = [torch.stack(x) for x in zip(*texts, strict=True)]
    cache = ContinuousCache(3, 1.1, 0.6)
    got = torch.cat([cache(*(x[:, a:b] for x in stacked)) for a, b in ((0, 5), (5, 8))], 1)
    for s, (lp, h, tg) in enumerate(texts):
        ref = _brute_force_cache(lp, h, tg, 3, 1.1, 0.6)
        assert torch.allclose(got[s], ref, atol=1e-12)
    with pytest.raises(ValueError):
        cache(model_lp[:2], hiddens[:2], targets[:2])  # 1 text, but the cache holds 2
    cache.reset()
    assert torch.equal(cache(model_lp[:1], hiddens[:1], targets[:1]), model_lp[:1])


def test_cache_pointer_gradcheck():
    model_lp, hiddens, targets = _cache_inputs(t_len=6, vocab=4)
    model_lp.requires_grad_()
    hiddens.requires_grad_()

    def fn(lp, h):
        return cache_pointer_log_probs(lp, h, targets, 3, 0.9, 0.4, chunk_size=4)

    assert torch.autograd.gradcheck(fn, (model_lp, hiddens))


def test_cache_pointer_on_rnnlm_outputs():
    """End to end at evaluation: the LM's hiddens feed the cache, batch of one text."""
    lm = _lm().eval()
    text = torch.randint(0, 13, (1, 12))
    with torch.no_grad():
        logits, _, hiddens = lm(text[:, :-1])
    lp = F.log_softmax(logits[0], -1)
    got = cache_pointer_log_probs(lp, hiddens[0], text[0, 1:], 5, 0.6, 0.25)
    ref = _brute_force_cache(lp, hiddens[0], text[0, 1:], 5, 0.6, 0.25)
    assert torch.allclose(got, ref, atol=1e-12)

