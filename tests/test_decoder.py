"""Tests for seqkit.nn.decoder and seqkit.nn.losses: torch references, masking, gradcheck,
scheduled sampling, label smoothing and tiny copy/reverse overfits."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from seqkit.data.batching import lengths_to_mask, pad_sequences
from seqkit.nn.attention import AdditiveAttention, GeneralAttention, LocationAwareAttention
from seqkit.nn.decoder import AttentionalDecoder, scheduled_sampling_prob
from seqkit.nn.losses import linear_cross_entropy, sequence_cross_entropy
from seqkit.nn.rnn import RNNEncoder
from seqkit.search.state import expand_state, select_state

V, E, H, DM, S = 7, 5, 6, 4, 5
LENGTHS = torch.tensor([5, 2, 4])
KINDS = ["additive", "dot", "general", "local_p", "location"]


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one intra-op thread is much faster on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _data(dm=DM, dtype=torch.float32, seed=0, L=4):
    g = torch.Generator().manual_seed(seed)
    b = len(LENGTHS)
    memory = torch.randn(b, S, dm, generator=g, dtype=dtype)
    mask = lengths_to_mask(LENGTHS, S)
    memory = memory * mask.unsqueeze(-1)  # encoders give zeros at padding
    enc_final = torch.randn(b, dm, generator=g, dtype=dtype)
    tokens = torch.randint(1, V, (b, L), generator=g)
    return memory, mask, enc_final, tokens


def _decoder(kind="additive", dm=DM, **kw):
    torch.manual_seed(0)
    if kind == "dot":
        dm = H
    return AttentionalDecoder(V, E, H, dm, attention=kind, **kw)


# ----------------------------------------------------------------------------- references


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_stacked_cells_match_torch_rnn_and_luong_equations(cell):
    """h_t of the stack == torch.nn.LSTM/GRU over the fed inputs x_t = [E y; h~_{t-1}];
    context, h~ = tanh(W_c [c; h]) and logits follow Luong et al. (2015) eqs. 5-6."""
    dec = _decoder(num_layers=2, cell=cell).eval()
    memory, mask, enc_final, tokens = _data()
    state = dec.init_state(memory, mask, enc_final)
    init = torch.tanh(dec.bridge(enc_final)).view(3, -1, H)  # (B, layers [* 2], H)
    outs, xs = [], []
    feed = torch.zeros(3, H)
    for t in range(tokens.size(1)):
        out, state = dec.core(tokens[:, t], state)
        assert torch.equal(out["embedded"], dec.embedding(tokens[:, t]))
        xs.append(torch.cat([out["embedded"], feed], -1))
        feed = out["output"]
        outs.append(out)
        ctx, w = dec.attention(out["hidden"], memory, mask)
        assert torch.allclose(out["context"], ctx, atol=1e-6)
        assert torch.allclose(out["weights"], w, atol=1e-6)
        h_tilde = torch.tanh(torch.cat([ctx, out["hidden"]], -1) @ dec.combine.weight.T)
        assert torch.allclose(out["output"], h_tilde, atol=1e-6)
        ref_logits = h_tilde @ dec.out_proj.weight.T + dec.out_proj.bias
        assert torch.allclose(dec.logits(out["output"]), ref_logits, atol=1e-6)
    rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(E + H, H, num_layers=2, batch_first=True)
    with torch.no_grad():
        for i, c in enumerate(dec.cells):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(rnn, f"{name}_l{i}").copy_(getattr(c, name))
    h0 = init[:, :2].transpose(0, 1).contiguous()  # (layers, B, H)
    hx = (h0, init[:, 2:].transpose(0, 1).contiguous()) if cell == "lstm" else h0
    ref, _ = rnn(torch.stack(xs, 1), hx)  # (B, L, H)
    got = torch.stack([o["hidden"] for o in outs], 1)
    assert torch.allclose(got, ref, atol=1e-6)


def test_init_state_bridge_zeros_and_batch_first():
    dec = _decoder(num_layers=2, coverage=True)
    memory, mask, enc_final, _ = _data()
    st = dec.init_state(memory, mask, enc_final)
    assert all(v.size(0) == 3 for v in st.values())
    z = torch.tanh(dec.bridge(enc_final)).view(3, 4, H)
    for i in range(2):
        assert torch.equal(st[f"h{i}"], z[:, i]) and torch.equal(st[f"c{i}"], z[:, 2 + i])
    assert torch.equal(st["feed"], torch.zeros(3, H))
    assert torch.equal(st["coverage"], torch.zeros(3, S))
    assert torch.allclose(st["prev_weights"].sum(1), torch.ones(3))
    assert torch.equal(st["prev_weights"][~mask], torch.zeros(int((~mask).sum())))
    assert torch.equal(st["proj_keys"], dec.attention.project_keys(memory))
    st0 = dec.init_state(memory, mask)
    assert torch.equal(st0["h1"], torch.zeros(3, H)) and torch.equal(st0["c0"], torch.zeros(3, H))
    nob = _decoder(bridge=False, input_feeding=False, cell="gru")
    assert nob.bridge is None
    st = nob.init_state(memory, mask)
    assert "feed" not in st and "c0" not in st and "coverage" not in st
    with pytest.raises(ValueError, match="bridge"):
        nob.init_state(memory, mask, enc_final)


@pytest.mark.parametrize("kind", KINDS)
def test_forward_equals_step_loop_and_beam_state_ops(kind):
    dec = _decoder(kind, coverage=True).eval()
    dm = H if kind == "dot" else DM
    memory, mask, enc_final, tokens = _data(dm=dm)
    res = dec(tokens, memory, mask, enc_final)
    assert torch.equal(res["inputs"], tokens)
    state = dec.init_state(memory, mask, enc_final)
    beam = expand_state(state, 2)  # every entry batch-first
    cov = torch.zeros(3, S)
    for t in range(tokens.size(1)):
        logp, new = dec.step(tokens[:, t], state)
        assert torch.allclose(logp, torch.log_softmax(res["logits"][:, t], -1), atol=1e-6)
        assert torch.allclose(new["prev_weights"], res["weights"][:, t], atol=1e-6)
        w = res["weights"][:, t]
        assert torch.allclose(res["coverage_loss"][:, t], torch.minimum(w, cov).sum(-1), atol=1e-6)
        cov = cov + w
        assert torch.allclose(new["coverage"], cov, atol=1e-6)
        blogp, beam = dec.step(tokens[:, t].repeat_interleave(2), beam)
        assert torch.allclose(blogp, logp.repeat_interleave(2, 0), atol=1e-6)
        state = new
    # select_state reorders rows consistently
    idx = torch.tensor([5, 0, 2])
    sel = select_state(beam, idx)
    lp_sel, _ = dec.step(tokens[idx // 2, 0], sel)
    lp_all, _ = dec.step(tokens.repeat_interleave(2, 0)[:, 0], beam)
    assert torch.allclose(lp_sel, lp_all[idx], atol=1e-6)


# ----------------------------------------------------------------------------- masking


@pytest.mark.parametrize(
    "kind,cell,feeding", [(k, "lstm", True) for k in KINDS] + [("additive", "gru", False)]
)
def test_padded_memory_batch_equals_each_sequence_alone(kind, cell, feeding):
    dec = _decoder(kind, cell=cell, input_feeding=feeding, coverage=True, num_layers=2).eval()
    dm = H if kind == "dot" else DM
    memory, mask, enc_final, tokens = _data(dm=dm)
    g = torch.Generator().manual_seed(5)
    garbage = 50 * torch.randn(memory.shape, generator=g)
    memory = torch.where(mask.unsqueeze(-1), memory, garbage)  # padding must not matter
    res = dec(tokens, memory, mask, enc_final)
    pad = ~mask.unsqueeze(1).expand_as(res["weights"])  # (B, L, S)
    assert (res["weights"][pad] == 0).all()  # exactly zero at padded keys
    for i in range(3):
        n = int(LENGTHS[i])
        one = dec(
            tokens[i : i + 1], memory[i : i + 1, :n], mask[i : i + 1, :n], enc_final[i : i + 1]
        )
        assert torch.allclose(res["logits"][i], one["logits"][0], atol=1e-5)
        assert torch.allclose(res["weights"][i, :, :n], one["weights"][0], atol=1e-6)
        assert torch.allclose(res["coverage_loss"][i], one["coverage_loss"][0], atol=1e-6)


# ----------------------------------------------------------------------------- gradcheck


@pytest.mark.parametrize(
    "kind,cell,kw",
    [
        ("additive", "lstm", {"coverage": True}),
        ("location", "gru", {"num_layers": 2}),
        ("general", "lstm", {"tie_embeddings": True, "extra_input_size": 2}),
    ],
)
def test_gradcheck_float64(kind, cell, kw):
    torch.manual_seed(0)
    v, e, h, dm, s = 4, 3, 3, 2, 3
    att = {
        "additive": lambda: AdditiveAttention(h, dm, 2, coverage=True),
        "location": lambda: LocationAwareAttention(h, dm, 2, conv_channels=2, kernel_size=3),
        "general": lambda: GeneralAttention(h, dm),
    }[kind]()
    dec = AttentionalDecoder(v, e, h, dm, attention=att, cell=cell, **kw).double()
    memory = torch.randn(2, s, dm, dtype=torch.float64)
    mask = lengths_to_mask(torch.tensor([3, 2]), s)
    enc_final = torch.randn(2, dm, dtype=torch.float64)
    # no pad id (0) among the inputs: nn.Embedding(padding_idx=0) zeroes that row's gradient
    tokens = torch.tensor([[1, 2, 3], [1, 3, 2]])
    extra = torch.randn(2, 2, dtype=torch.float64)
    wrapper = _StepLoop(dec, tokens, mask, use_extra="extra_input_size" in kw)
    names = [n for n, _ in wrapper.named_parameters()]  # tied weights appear once
    params = [p.detach().clone().requires_grad_() for _, p in wrapper.named_parameters()]

    def f(memory, enc_final, extra, *ps):
        return functional_call(wrapper, dict(zip(names, ps)), (memory, enc_final, extra))

    inputs = [memory.requires_grad_(), enc_final.requires_grad_(), extra.requires_grad_()]
    assert torch.autograd.gradcheck(f, (*inputs, *params), eps=1e-6, atol=1e-5)


class _StepLoop(nn.Module):
    """init_state + core loop + logits as one module, so functional_call can swap its
    parameters (tied ones included) for gradcheck."""

    def __init__(self, dec, tokens, mask, use_extra):
        super().__init__()
        self.dec, self.tokens, self.mask, self.use_extra = dec, tokens, mask, use_extra

    def forward(self, memory, enc_final, extra):
        state = self.dec.init_state(memory, self.mask, enc_final)
        outs = []
        for t in range(self.tokens.size(1)):
            out, state = self.dec.core(self.tokens[:, t], state, extra if self.use_extra else None)
            outs.append(self.dec.logits(out["output"]))
        return torch.stack(outs, 1)  # (B, L, V)


# ----------------------------------------------------------------------------- options


def test_tied_embeddings_extra_input_and_errors():
    dec = AttentionalDecoder(V, H, H, DM, tie_embeddings=True)
    assert dec.out_proj.weight is dec.embedding.weight
    with pytest.raises(ValueError, match="hidden_size == emb_dim"):
        AttentionalDecoder(V, E, H, DM, tie_embeddings=True)
    with pytest.raises(ValueError, match="cell"):
        AttentionalDecoder(V, E, H, DM, cell="rnn")
    with pytest.raises(ValueError, match="coverage=True"):
        AttentionalDecoder(V, E, H, DM, attention=AdditiveAttention(H, DM, 3, coverage=True))
    with pytest.raises(ValueError, match="query_size == key_size"):
        AttentionalDecoder(V, E, H, DM, attention="dot")
    memory, mask, enc_final, tokens = _data()
    dec = _decoder(extra_input_size=3).eval()
    st = dec.init_state(memory, mask, enc_final)
    with pytest.raises(ValueError, match="extra_input"):
        dec.core(tokens[:, 0], st)
    x = torch.randn(3, 3)
    a, _ = dec.core(tokens[:, 0], st, extra_input=x)
    b, _ = dec.core(tokens[:, 0], st, extra_input=2 * x)
    assert not torch.allclose(a["hidden"], b["hidden"])
    with pytest.raises(ValueError, match="extra_input"):
        _decoder().core(tokens[:, 0], _decoder().init_state(memory, mask), extra_input=x)


def test_coverage_reaches_additive_attention_and_other_kinds_keep_the_vector():
    memory, mask, enc_final, tokens = _data()
    dec = _decoder("additive", coverage=True).eval()
    assert dec.attention.supports_coverage
    st = dec.init_state(memory, mask, enc_final)
    _, st = dec.core(tokens[:, 0], st)
    out_cov, _ = dec.core(tokens[:, 1], st)
    out_zero, _ = dec.core(tokens[:, 1], dict(st, coverage=torch.zeros_like(st["coverage"])))
    assert not torch.allclose(out_cov["weights"], out_zero["weights"])
    gen = _decoder("general", coverage=True).eval()  # no coverage term: vector + loss only
    res = gen(tokens, memory, mask, enc_final)
    cum = torch.cumsum(res["weights"], 1) - res["weights"]  # coverage before each step
    assert torch.allclose(res["coverage_loss"], torch.minimum(res["weights"], cum).sum(-1))
    assert "coverage_loss" not in _decoder()(tokens, memory, mask)


def test_dropout_is_active_in_training_only():
    memory, mask, enc_final, tokens = _data()
    dec = _decoder(dropout=0.5, num_layers=2)
    torch.manual_seed(1)
    a = dec(tokens, memory, mask, enc_final)["logits"]
    b = dec(tokens, memory, mask, enc_final)["logits"]
    assert not torch.allclose(a, b)
    dec.eval()
    assert torch.equal(dec(tokens, memory, mask)["logits"], dec(tokens, memory, mask)["logits"])


# ----------------------------------------------------------------------------- scheduled sampling


def test_scheduled_sampling_argmax_prob_one_is_free_running_greedy():
    memory, mask, enc_final, tokens = _data(L=5)
    dec = _decoder("location", num_layers=2).train()
    scrambled = torch.cat([tokens[:, :1], torch.randint(1, V, (3, 4))], 1)
    res = dec(scrambled, memory, mask, enc_final, sampling_prob=1.0, sampling="argmax")
    # reference: greedy decoding through step()
    st = dec.init_state(memory, mask, enc_final)
    tok, fed, logps = tokens[:, 0], [], []
    for _ in range(5):
        fed.append(tok)
        logp, st = dec.step(tok, st)
        logps.append(logp)
        tok = logp.argmax(-1)
    assert torch.equal(res["inputs"], torch.stack(fed, 1))
    assert torch.allclose(torch.log_softmax(res["logits"], -1), torch.stack(logps, 1), atol=1e-6)
    # probability 0, or eval mode: plain teacher forcing
    tf = dec(tokens, memory, mask, enc_final)
    assert torch.equal(
        dec(tokens, memory, mask, enc_final, sampling_prob=0.0)["logits"], tf["logits"]
    )
    dec.eval()
    ev = dec(tokens, memory, mask, enc_final, sampling_prob=1.0)
    assert torch.equal(ev["inputs"], tokens) and torch.allclose(ev["logits"], tf["logits"])


def test_scheduled_sampling_rate_and_sampled_tokens():
    torch.manual_seed(0)
    b, L = 400, 6
    dec = AttentionalDecoder(V, E, H, DM).train()
    memory = torch.randn(b, S, DM)
    mask = torch.ones(b, S, dtype=torch.bool)
    tokens = torch.randint(1, 3, (b, L))  # ground truth only uses ids 1, 2
    with torch.no_grad():
        dec.out_proj.bias.fill_(-30.0)
        dec.out_proj.bias[5] = 30.0  # the model predicts id 5 with probability ~1
        g = torch.Generator().manual_seed(0)
        res = dec(tokens, memory, mask, sampling_prob=0.3, sampling="sample", generator=g)
    replaced = res["inputs"][:, 1:] != tokens[:, 1:]
    assert torch.equal(res["inputs"][:, 1:][replaced], torch.full((int(replaced.sum()),), 5))
    assert torch.equal(res["inputs"][:, 0], tokens[:, 0])
    rate = replaced.double().mean().item()  # 2000 Bernoulli(0.3) draws: sd ~0.01
    assert 0.26 < rate < 0.34
    # the same generator seed gives the same draws
    with torch.no_grad():
        g = torch.Generator().manual_seed(0)
        again = dec(tokens, memory, mask, sampling_prob=0.3, generator=g)
    assert torch.equal(again["inputs"], res["inputs"])
    with pytest.raises(ValueError):
        dec(tokens, memory, mask, sampling_prob=1.5)


def test_scheduled_sampling_schedules():
    # eps_i = probability of the ground truth; the function returns 1 - eps_i
    assert scheduled_sampling_prob(0, "linear", k=1.0, c=0.01) == 0.0
    assert math.isclose(scheduled_sampling_prob(30, "linear", k=1.0, c=0.01), 0.3)
    assert math.isclose(scheduled_sampling_prob(500, "linear", k=1.0, c=0.01, eps_min=0.1), 0.9)
    assert math.isclose(scheduled_sampling_prob(10, "exponential", k=0.9), 1 - 0.9**10)
    for i in (0, 7, 100, 5000):
        ref = 1 - 10 / (10 + math.exp(i / 10)) if i < 7000 else 1.0
        assert math.isclose(scheduled_sampling_prob(i, "inverse_sigmoid", k=10), ref, abs_tol=1e-12)
    assert scheduled_sampling_prob(10**7, "inverse_sigmoid", k=10) == 1.0  # no overflow
    seq = [scheduled_sampling_prob(i, "inverse_sigmoid", k=50) for i in range(0, 2000, 50)]
    assert all(a <= b for a, b in zip(seq, seq[1:]))
    with pytest.raises(ValueError):
        scheduled_sampling_prob(1, "exponential", k=1.5)
    with pytest.raises(ValueError):
        scheduled_sampling_prob(1, "inverse_sigmoid", k=0.5)
    with pytest.raises(ValueError):
        scheduled_sampling_prob(1, "cosine")


# ----------------------------------------------------------------------------- loss


def test_sequence_cross_entropy_matches_brute_force():
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 6, dtype=torch.float64)
    targets = torch.tensor([[3, 1, 2, 5], [4, 2, 0, 0], [1, 0, 0, 0]])
    mask = targets != 0
    for eps in (0.0, 0.1, 0.3):
        logp = torch.log_softmax(logits, -1)
        ref = torch.zeros(3, 4, dtype=torch.float64)
        for b in range(3):
            for t in range(4):
                if targets[b, t] != 0:
                    q = torch.full((6,), eps / 6, dtype=torch.float64)
                    q[targets[b, t]] += 1 - eps
                    ref[b, t] = -(q * logp[b, t]).sum()
        got = sequence_cross_entropy(logits, targets, 0, eps, "none")
        assert torch.allclose(got, ref) and torch.equal(got[~mask], torch.zeros(int((~mask).sum())))
        assert torch.allclose(sequence_cross_entropy(logits, targets, 0, eps), ref.sum() / 7)
        assert torch.allclose(sequence_cross_entropy(logits, targets, 0, eps, "sum"), ref.sum())
        sent = sequence_cross_entropy(logits, targets, 0, eps, "sentence_sum")
        assert torch.allclose(sent, ref.sum(1))
        mean = sequence_cross_entropy(logits, targets, 0, eps, "sentence_mean")
        assert torch.allclose(mean, ref.sum(1).mean())
    # equals torch's own flat cross_entropy(ignore_index) token mean
    flat = F.cross_entropy(logits.view(-1, 6), targets.view(-1), ignore_index=0)
    assert torch.allclose(sequence_cross_entropy(logits, targets), flat)
    # log-probabilities in give the same loss; -100 as the ignore index
    t100 = targets.masked_fill(~mask, -100)
    lp = torch.log_softmax(logits, -1)
    assert torch.allclose(
        sequence_cross_entropy(lp, t100, -100, 0.1), sequence_cross_entropy(logits, targets, 0, 0.1)
    )
    empty = torch.zeros(2, 3, dtype=torch.long)
    assert sequence_cross_entropy(logits[:2, :3], empty).item() == 0.0
    with pytest.raises(ValueError, match="reduction"):
        sequence_cross_entropy(logits, targets, reduction="mean")
    with pytest.raises(ValueError, match="expected"):
        sequence_cross_entropy(logits, targets[:, :2])


@pytest.mark.parametrize("onednn", [True, False])
def test_linear_cross_entropy_matches_the_unfused_loss_and_gradients(onednn, monkeypatch):
    """Blocks of 1, 4 and all rows; eps 0 and 0.2; padded rows; sum and token_mean; both
    product routes (oneDNN and F.linear): value and all three gradients as the unfused loss."""
    from seqkit.nn.dense import set_onednn_linear

    previous = set_onednn_linear(onednn)
    try:
        torch.manual_seed(0)
        x = torch.randn(3, 5, 64, requires_grad=True)
        w = torch.randn(40, 64, requires_grad=True)
        b = torch.randn(40, requires_grad=True)
        y = torch.randint(1, 40, (3, 5))
        y[1, 2:] = 0
        y[2, 4] = 0
        for eps in (0.0, 0.2):
            for reduction in ("sum", "token_mean"):
                ref = sequence_cross_entropy(F.linear(x, w, b), y, 0, eps, reduction)
                g_ref = torch.autograd.grad(2.5 * ref, (x, w, b))
                for rows in (1, 4, None):
                    got = linear_cross_entropy(x, w, b, y, 0, eps, reduction, block_rows=rows)
                    assert torch.allclose(got, ref, rtol=1e-5, atol=1e-5)
                    for a, g in zip(g_ref, torch.autograd.grad(2.5 * got, (x, w, b))):
                        assert torch.allclose(a, g, rtol=1e-4, atol=1e-5)
    finally:
        set_onednn_linear(previous)
    # no bias, only x needs a gradient, all rows padded, grad mode off
    xb = x.detach().requires_grad_()
    ref = sequence_cross_entropy(F.linear(xb, w.detach()), y, 0, 0.1)
    got = linear_cross_entropy(xb, w.detach(), None, y, 0, 0.1)
    assert torch.allclose(got, ref, atol=1e-5)
    assert torch.allclose(torch.autograd.grad(got, xb)[0], torch.autograd.grad(ref, xb)[0], atol=1e-6)
    pad = torch.zeros_like(y)
    assert linear_cross_entropy(x, w, b, pad).item() == 0.0
    with torch.autocast("cpu", dtype=torch.bfloat16):  # falls back to the unfused loss
        assert torch.equal(linear_cross_entropy(x, w, b, y), sequence_cross_entropy(F.linear(x, w, b), y))
    import seqkit.nn.losses as losses_mod

    calls = []
    real_mm_t = losses_mod.mm_t
    monkeypatch.setattr(losses_mod, "mm_t", lambda *a: calls.append(1) or real_mm_t(*a))
    with torch.no_grad():  # logits only: one product per block, no gradient products
        got = linear_cross_entropy(x, w, b, y, 0, 0.1, block_rows=4)
    assert torch.allclose(got, sequence_cross_entropy(F.linear(x, w, b), y, 0, 0.1))
    assert len(calls) == 4  # 15 rows in blocks of 4
    with pytest.raises(ValueError, match="reduction"):
        linear_cross_entropy(x, w, b, y, reduction="none")
    with pytest.raises(ValueError, match="expected"):
        linear_cross_entropy(x, w, b, y[:, :2])


def test_decoder_token_loss_without_logits_equals_the_loss_of_the_logits():
    """project=False + token_loss (the fused path) = sequence_cross_entropy of the logits,
    in train mode with dropout (same seed), with tied output weights."""
    dec = AttentionalDecoder(12, 16, 16, 32, dropout=0.3, tie_embeddings=True)
    torch.manual_seed(1)
    memory, mask = torch.randn(2, 5, 32), lengths_to_mask(torch.tensor([5, 3]), 5)
    tokens = torch.tensor([[1, 4, 5, 6], [1, 7, 0, 0]])
    targets = torch.tensor([[4, 5, 6, 2], [7, 2, 0, 0]])
    dec.train()
    losses, grads = [], []
    for project in (True, False):
        torch.manual_seed(7)
        out = dec(tokens, memory, mask, project=project)
        assert ("logits" in out) == project and ("outputs" in out) != project
        loss = dec.token_loss(out, targets, 0, 0.1)
        losses.append(loss)
        grads.append(torch.autograd.grad(loss, list(dec.parameters()), allow_unused=True))
    assert torch.allclose(losses[0], losses[1], atol=1e-6)
    assert sum(g is not None for g in grads[0]) >= 8  # embedding/output, cell, attention, W_c
    for a, b in zip(*grads):
        assert (a is None) == (b is None)
        assert a is None or torch.allclose(a, b, atol=1e-5)


# ----------------------------------------------------------------------------- overfit

PAD, BOS, EOS = 0, 1, 2
TOY_V = 10


class _Seq2Seq(nn.Module):
    """Embedding + bidirectional RNNEncoder + AttentionalDecoder (bridge from final states)."""

    def __init__(self, **dec_kw):
        super().__init__()
        self.emb = nn.Embedding(TOY_V, 16, padding_idx=PAD)
        self.enc = RNNEncoder(16, 16, bidirectional=True, cell=dec_kw.get("cell", "lstm"))
        self.dec = AttentionalDecoder(TOY_V, 16, 32, 32, **dec_kw)

    def encode(self, src, lengths):
        memory, final = self.enc(self.emb(src), lengths)  # (B, S, 32)
        h = final[0] if isinstance(final, tuple) else final  # (2, B, 16)
        return memory, lengths_to_mask(lengths, src.size(1)), torch.cat([h[-2], h[-1]], -1)

    @torch.no_grad()
    def greedy(self, src, lengths, max_len):
        """Greedy decoding through the step() contract: (B, max_len) ids."""
        state = self.dec.init_state(*self.encode(src, lengths))
        tok = torch.full((src.size(0),), BOS)
        out = []
        for _ in range(max_len):
            logp, state = self.dec.step(tok, state)
            tok = logp.argmax(-1)
            out.append(tok)
        return torch.stack(out, 1)


def _toy(task, n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    srcs = []
    for _ in range(n):
        length = int(torch.randint(3, 8, (1,), generator=g))
        srcs.append(torch.randint(3, TOY_V, (length,), generator=g).tolist())
    tgts = [(s[::-1] if task == "reverse" else s) + [EOS] for s in srcs]
    return srcs, tgts


@pytest.mark.parametrize(
    "task,dec_kw",
    [("reverse", {"attention": k}) for k in KINDS]
    + [("copy", {"attention": "additive", "cell": "gru", "coverage": True, "num_layers": 2})],
)
def test_overfit_copy_reverse_to_100_percent(task, dec_kw):
    srcs, tgts = _toy(task)
    src, slen = pad_sequences(srcs, PAD)
    tgt, tlen = pad_sequences(tgts, PAD)  # [y_1 .. y_n EOS]
    tin = torch.cat([torch.full((len(srcs), 1), BOS), tgt[:, :-1]], 1)  # [BOS y_1 .. y_n]
    torch.manual_seed(0)
    model = _Seq2Seq(**dec_kw)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    solved_at = None
    for it in range(1, 301):
        res = model.dec(tin, *model.encode(src, slen))
        loss = sequence_cross_entropy(res["logits"], tgt, PAD, label_smoothing=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if it % 10 == 0:
            model.eval()
            pred = model.greedy(src, slen, tgt.size(1))
            model.train()
            correct = sum(pred[i, : tlen[i]].tolist() == tgts[i] for i in range(len(srcs)))
            if correct == len(srcs):
                solved_at = it
                break
    assert solved_at is not None, f"{task} {dec_kw}: {correct}/{len(srcs)} after 300 steps"
