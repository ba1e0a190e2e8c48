"""Recurrent cells, the masked time loop, RNNEncoder (both paths) and the pyramidal encoder.

Equivalence with torch.nn.LSTM/GRU/RNN (copied weights, packed reference), independent
references for the custom cells, masking (a padded batch == each sequence alone), gradcheck
in float64 for every custom module.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.func import functional_call
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqkit.nn.cells import (
    ElmanCell,
    GRUCell,
    IRNNCell,
    JordanRNNCell,
    LayerNormLSTMCell,
    LSTMCell,
    PeepholeLSTMCell,
)
from seqkit.nn.pyramidal import PyramidalEncoder, concat_adjacent_frames
from seqkit.nn.rnn import CellRNN, RNNEncoder, masked_scan, reverse_padded

LENGTHS = [6, 3, 1, 6, 4]


def _batch(d=4, lengths=LENGTHS, total=7, dtype=torch.float32, garbage=True):
    """Random padded batch; padding filled with large values that must not leak."""
    lengths = torch.tensor(lengths)
    x = torch.randn(len(lengths), total, d, dtype=dtype)
    if garbage:
        for b, n in enumerate(lengths.tolist()):
            x[b, n:] = 1e3 * (-1) ** b
    return x, lengths


def _states(s):
    return s if isinstance(s, tuple) else (s,)


def _copy_torch_weights(rnn: nn.RNNBase, cells: CellRNN) -> None:
    dirs = 2 if rnn.bidirectional else 1
    with torch.no_grad():
        for layer in range(rnn.num_layers):
            for d, sfx in enumerate(["", "_reverse"][:dirs]):
                cell = cells.cells[layer * dirs + d]
                for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(cell, w).copy_(getattr(rnn, f"{w}_l{layer}{sfx}"))


def _packed_reference(rnn: nn.RNNBase, x, lengths, state=None):
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out, final = rnn(packed, state)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
    return out, final


# -- plain cells == torch.nn, with copied weights ---------------------------------------------


@pytest.mark.parametrize(
    "torch_cls,name,kwargs",
    [
        (nn.LSTM, "lstm", {}),
        (nn.GRU, "gru", {}),
        (nn.RNN, "elman", {}),
        (nn.RNN, "irnn", {"nonlinearity": "relu"}),
    ],
)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_custom_cell_with_copied_weights_equals_torch_rnn(torch_cls, name, kwargs, bidirectional):
    torch.manual_seed(0)
    ref = torch_cls(4, 5, num_layers=2, bidirectional=bidirectional, batch_first=True, **kwargs)
    ours = CellRNN(name, 4, 5, num_layers=2, bidirectional=bidirectional)
    _copy_torch_weights(ref, ours)
    x, lengths = _batch()
    n_states = 2 if name == "lstm" else 1
    dirs = 2 if bidirectional else 1
    init = tuple(0.5 * torch.randn(2 * dirs, 5, 5) for _ in range(n_states))
    init = init if n_states == 2 else init[0]
    want, want_state = _packed_reference(ref, x, lengths, init)
    got, got_state = ours(x, lengths, init)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for g, w in zip(_states(got_state), _states(want_state), strict=True):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)


def test_single_steps_equal_torch_cells():
    torch.manual_seed(0)
    x, h, c = torch.randn(3, 4), torch.randn(3, 5), torch.randn(3, 5)
    for ours, ref, state in [
        (LSTMCell(4, 5), nn.LSTMCell(4, 5), (h, c)),
        (GRUCell(4, 5), nn.GRUCell(4, 5), (h,)),
        (ElmanCell(4, 5), nn.RNNCell(4, 5), (h,)),
    ]:
        ours.load_state_dict(ref.state_dict())
        out, new = ours(x, state)
        want = ref(x, state if len(state) == 2 else state[0])
        want = want if isinstance(want, tuple) else (want,)
        torch.testing.assert_close(out, want[0])
        for g, w in zip(new, want, strict=True):
            torch.testing.assert_close(g, w)


def test_irnn_initialisation():
    torch.manual_seed(0)
    cell = IRNNCell(200, 6, recurrent_scale=0.5)
    torch.testing.assert_close(cell.weight_hh.detach(), 0.5 * torch.eye(6))
    assert torch.all(cell.bias_ih == 0) and torch.all(cell.bias_hh == 0)
    assert 0.0007 < cell.weight_ih.std().item() < 0.0013
    enc = RNNEncoder(3, 6, 2, True, "irnn")
    for name, p in enc.rnn.named_parameters():
        if name.startswith("weight_hh"):
            torch.testing.assert_close(p.detach(), torch.eye(6))
        elif name.startswith("bias"):
            assert torch.all(p == 0)
    assert enc.rnn.nonlinearity == "relu"


# -- custom cells against independent references ------------------------------------------


def _sig(v):
    return 1.0 / (1.0 + torch.exp(-v))


def _ln(v, gain, bias, eps=1e-5):
    mu = v.mean(-1, keepdim=True)
    var = ((v - mu) ** 2).mean(-1, keepdim=True)
    return (v - mu) / torch.sqrt(var + eps) * gain + bias


def test_peephole_lstm_matches_equations_and_reduces_to_lstm():
    torch.manual_seed(0)
    cell = PeepholeLSTMCell(4, 5)
    xs, h, c = torch.randn(6, 3, 4), torch.zeros(3, 5), torch.zeros(3, 5)
    wi, wh, b = cell.weight_ih, cell.weight_hh, cell.bias_ih + cell.bias_hh
    blk = [slice(k * 5, (k + 1) * 5) for k in range(4)]  # i, f, g, o
    state = None
    with torch.no_grad():
        for x in xs:  # Gers & Schmidhuber 2000 / Graves 2013 eq. 7-11
            pre = [x @ wi[s].T + h @ wh[s].T + b[s] for s in blk]
            i = _sig(pre[0] + cell.peephole[0] * c)
            f = _sig(pre[1] + cell.peephole[1] * c)
            c = f * c + i * torch.tanh(pre[2])
            o = _sig(pre[3] + cell.peephole[2] * c)
            h = o * torch.tanh(c)
            out, state = cell(x, state)
            torch.testing.assert_close(out, h)
            torch.testing.assert_close(state[1], c)
        cell.peephole.zero_()
        ref = nn.LSTMCell(4, 5)
        ref.load_state_dict({k: v for k, v in cell.state_dict().items() if k != "peephole"})
        torch.testing.assert_close(cell(xs[0], (h, c))[1][1], ref(xs[0], (h, c))[1])


def test_layernorm_lstm_matches_equations():
    torch.manual_seed(0)
    cell = LayerNormLSTMCell(4, 5)
    with torch.no_grad():  # non-trivial gains and biases
        for ln in (cell.ln_ih, cell.ln_hh, cell.ln_c):
            ln.weight.uniform_(0.5, 1.5)
            ln.bias.uniform_(-0.5, 0.5)
    xs, h, c = torch.randn(5, 3, 4), torch.zeros(3, 5), torch.zeros(3, 5)
    state = None
    with torch.no_grad():
        for x in xs:  # Ba, Kiros & Hinton 2016, layer-normalised LSTM
            gates = (
                _ln(h @ cell.weight_hh.T, cell.ln_hh.weight, cell.ln_hh.bias)
                + _ln(x @ cell.weight_ih.T, cell.ln_ih.weight, cell.ln_ih.bias)
                + cell.bias
            )
            i, f, g, o = gates.split(5, dim=1)
            c = _sig(f) * c + _sig(i) * torch.tanh(g)
            h = _sig(o) * torch.tanh(_ln(c, cell.ln_c.weight, cell.ln_c.bias))
            out, state = cell(x, state)
            torch.testing.assert_close(out, h)
            torch.testing.assert_close(state[1], c)


@pytest.mark.parametrize("act", ["tanh", "sigmoid", "softmax", "identity"])
def test_jordan_cell_feeds_back_its_output(act):
    torch.manual_seed(0)
    cell = JordanRNNCell(4, 6, output_size=3, output_activation=act)
    out_fn = {
        "tanh": torch.tanh,
        "sigmoid": _sig,
        "softmax": lambda v: torch.exp(v) / torch.exp(v).sum(-1, keepdim=True),
        "identity": lambda v: v,
    }[act]
    xs, y = torch.randn(5, 2, 4), torch.zeros(2, 3)
    state = None
    with torch.no_grad():
        for x in xs:  # h_t = tanh(W x_t + U y_{t-1} + b); y_t = g(V h_t + c)
            hid = torch.tanh(x @ cell.weight_ih.T + y @ cell.weight_yh.T + cell.bias)
            y = out_fn(hid @ cell.weight_out.T + cell.bias_out)
            out, state = cell(x, state)
            assert out.shape == (2, 3)
            torch.testing.assert_close(out, y)
            torch.testing.assert_close(state[0], y)


# -- the masked time loop ---------------------------------------------------------------


@pytest.mark.parametrize("cell_cls", [LSTMCell, PeepholeLSTMCell, LayerNormLSTMCell, JordanRNNCell])
def test_masked_scan_backward_starts_at_each_last_real_frame(cell_cls):
    torch.manual_seed(0)
    cell = cell_cls(4, 5)
    x, lengths = _batch()
    out, final = masked_scan(cell, x, lengths, reverse=True)
    fwd, _ = masked_scan(cell, x, lengths)
    for b, n in enumerate(lengths.tolist()):
        # alone and reversed by hand, run forwards step by step
        state, steps = None, []
        for t in reversed(range(n)):
            y, state = cell(x[b : b + 1, t], state)
            steps.append(y[0])
        torch.testing.assert_close(out[b, :n], torch.stack(steps[::-1]))
        for g, w in zip(final, state, strict=True):
            torch.testing.assert_close(g[b], w[0])
        assert torch.all(out[b, n:] == 0) and torch.all(fwd[b, n:] == 0)
        alone, _ = masked_scan(cell, x[b : b + 1, :n], lengths[b : b + 1])
        torch.testing.assert_close(fwd[b, :n], alone[0])


def test_reverse_padded():
    x = torch.arange(12.0).view(2, 6, 1)
    got = reverse_padded(x, torch.tensor([4, 6]))[..., 0]
    assert got.tolist() == [[3, 2, 1, 0, 4, 5], [11, 10, 9, 8, 7, 6]]
    torch.testing.assert_close(
        reverse_padded(reverse_padded(x, torch.tensor([4, 6])), torch.tensor([4, 6])), x
    )
    xd = torch.randn(3, 5, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: reverse_padded(v, torch.tensor([5, 2, 1])), (xd,))


# -- masking for every encoder ------------------------------------------------------------

ENCODERS = [
    ("lstm", "padded"),
    ("lstm", "packed"),
    ("gru", "padded"),
    ("gru", "packed"),
    ("rnn", "padded"),
    ("rnn", "packed"),
    ("irnn", "padded"),
    ("irnn", "packed"),
    ("peephole_lstm", "auto"),
    ("layernorm_lstm", "auto"),
    ("jordan", "auto"),
]


@pytest.mark.parametrize("cell,impl", ENCODERS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_encoder_padded_batch_equals_each_sequence_alone(cell, impl, bidirectional):
    torch.manual_seed(0)
    enc = RNNEncoder(4, 5, num_layers=2, bidirectional=bidirectional, cell=cell, impl=impl)
    if cell == "irnn":  # make the ReLU recurrence non-trivial
        with torch.no_grad():
            for p in enc.parameters():
                p.add_(0.3 * torch.randn_like(p))
    enc.eval()
    x, lengths = _batch(total=8)  # T > max(lengths): trailing all-padding steps too
    out, state = enc(x, lengths)
    dirs = 2 if bidirectional else 1
    assert out.shape == (5, 8, 5 * dirs) == (5, 8, enc.output_size)
    for b, n in enumerate(lengths.tolist()):
        alone, alone_state = enc(x[b : b + 1, :n], lengths[b : b + 1])
        torch.testing.assert_close(out[b, :n], alone[0], rtol=1e-5, atol=1e-5)
        assert torch.all(out[b, n:] == 0)
        for s, a in zip(_states(state), _states(alone_state), strict=True):
            assert s.shape == (2 * dirs, 5, 5)
            torch.testing.assert_close(s[:, b], a[:, 0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("lengths", [LENGTHS, [7, 7, 7, 7, 7], [5, 5, 5, 5, 5]])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_padded_path_equals_packed_path_with_gradients(cell, lengths, dtype):
    """Outputs, final states and every gradient (through h_n and c_n too) agree.

    float32 runs the oneDNN kernel on CPU, float64 the native one."""
    torch.manual_seed(0)
    enc = RNNEncoder(4, 5, 2, True, cell, dropout=0.0, impl="packed").to(dtype)
    x, lengths = _batch(lengths=lengths, dtype=dtype, garbage=False)
    results = []
    for impl in ("packed", "padded"):
        enc.impl = impl
        enc.zero_grad()
        xr = x.clone().requires_grad_()
        out, state = enc(xr, lengths)
        loss = (out * torch.linspace(-1, 1, out.numel(), dtype=dtype).view_as(out)).sum()
        loss = loss + sum((s * s).sum() for s in _states(state))
        loss.backward()
        grads = [xr.grad] + [p.grad for p in enc.parameters()]
        results.append((out, _states(state), grads))
    (o1, s1, g1), (o2, s2, g2) = results
    tol = {} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-5}
    torch.testing.assert_close(o2, o1, **tol)
    for a, b in zip(s2, s1, strict=True):
        torch.testing.assert_close(a, b, **tol)
    for a, b in zip(g2, g1, strict=True):
        torch.testing.assert_close(a, b, **tol)


def test_encoder_is_backward_compatible():
    torch.manual_seed(0)
    enc = RNNEncoder(5, 7, 2, True, "lstm", 0.0)  # the positional call of the tagger
    ref = nn.LSTM(5, 7, 2, bidirectional=True, batch_first=True)
    assert list(enc.state_dict()) == ["rnn." + k for k in ref.state_dict()]
    enc.rnn.load_state_dict(ref.state_dict())
    x, lengths = _batch(d=5)
    out, (h, c) = enc(x, lengths)
    want, (wh, wc) = _packed_reference(ref, x, lengths)
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h, wh, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(c, wc, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError):
        RNNEncoder(5, 7, cell="nope")
    with pytest.raises(ValueError):
        enc(x, torch.tensor([8, 1, 1, 1, 1]))


@pytest.mark.parametrize("cell,impl", ENCODERS)
def test_nan_in_padding_reaches_neither_outputs_nor_gradients(cell, impl):
    torch.manual_seed(0)
    enc = RNNEncoder(4, 5, 2, True, cell, impl=impl)
    x, lengths = _batch(garbage=False)
    clean, dirty = x, x.clone()
    for b, n in enumerate(lengths.tolist()):
        dirty[b, n:] = float("nan")
    results = []
    for v in (clean, dirty):
        enc.zero_grad()
        v = v.clone().requires_grad_()
        out, state = enc(v, lengths)
        (out.sum() + sum(s.sum() for s in _states(state))).backward()
        results.append((out, v.grad, [p.grad for p in enc.parameters()]))
    (o1, gx1, gp1), (o2, gx2, gp2) = results
    torch.testing.assert_close(o2, o1)
    torch.testing.assert_close(gx2, gx1)
    for a, b in zip(gp2, gp1, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("cell,impl", [("lstm", "padded"), ("gru", "packed"), ("jordan", "auto")])
def test_dropout_only_between_layers_and_padding_stays_zero(cell, impl):
    torch.manual_seed(0)
    x, lengths = _batch()
    one = RNNEncoder(4, 5, 1, True, cell, dropout=0.5, impl=impl)
    torch.testing.assert_close(one.train()(x, lengths)[0], one.eval()(x, lengths)[0])
    two = RNNEncoder(4, 5, 2, True, cell, dropout=0.5, impl=impl)
    train_out = two.train()(x, lengths)[0]
    assert not torch.allclose(train_out, two.eval()(x, lengths)[0])
    for b, n in enumerate(lengths.tolist()):
        assert torch.all(train_out[b, n:] == 0)


# -- gradcheck ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cell",
    [
        PeepholeLSTMCell(3, 2),
        LayerNormLSTMCell(3, 2),
        JordanRNNCell(3, 2, output_size=2, output_activation="softmax"),
        IRNNCell(3, 2, input_std=0.5),
        LSTMCell(3, 2),
        GRUCell(3, 2),
        ElmanCell(3, 2),
    ],
    ids=lambda c: type(c).__name__,
)
def test_cell_gradcheck(cell):
    torch.manual_seed(0)
    cell = cell.double()
    params = dict(cell.named_parameters())
    names = list(params)
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    state = tuple(
        torch.randn(2, s, dtype=torch.float64, requires_grad=True) for s in cell.state_sizes
    )

    def f(x, *rest):
        st, ps = rest[: len(state)], rest[len(state) :]
        out, new = functional_call(cell, dict(zip(names, ps, strict=True)), (x, st))
        return (out, *new)

    inputs = (x, *state, *(p.detach().clone().requires_grad_() for p in params.values()))
    assert torch.autograd.gradcheck(f, inputs)


@pytest.mark.parametrize("cell", ["peephole_lstm", "layernorm_lstm", "jordan"])
def test_cell_rnn_gradcheck(cell):
    torch.manual_seed(0)
    enc = RNNEncoder(3, 2, 2, True, cell).double()
    x, lengths = _batch(d=3, lengths=[4, 2, 1], total=4, dtype=torch.float64, garbage=False)
    x.requires_grad_()

    def f(v):
        out, state = enc(v, lengths)
        return (out, *_states(state))

    assert torch.autograd.gradcheck(f, (x,))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_padded_path_gradcheck(cell):
    torch.manual_seed(0)
    enc = RNNEncoder(3, 2, 2, True, cell, impl="padded").double()
    x, lengths = _batch(d=3, lengths=[5, 2, 3], total=5, dtype=torch.float64, garbage=False)
    x.requires_grad_()

    def f(v):
        out, state = enc(v, lengths)
        return (out, *_states(state))

    assert torch.autograd.gradcheck(f, (x,))


# -- pyramidal encoder ----------------------------------------------------------------------


def test_concat_adjacent_frames_pairs_an_odd_last_frame_with_zeros():
    torch.manual_seed(0)
    x, lengths = _batch(d=2, lengths=[7, 3, 4, 1], total=7)
    out, new = concat_adjacent_frames(x, lengths)
    assert out.shape == (4, 4, 4) and new.tolist() == [4, 2, 2, 1]
    for b, n in enumerate(lengths.tolist()):
        for t in range(4):
            left = x[b, 2 * t] if 2 * t < n else torch.zeros(2)
            right = x[b, 2 * t + 1] if 2 * t + 1 < n else torch.zeros(2)
            torch.testing.assert_close(out[b, t], torch.cat([left, right]))


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 10_000), k=st.integers(0, 6))
def test_pyramid_length_rule(n, k):
    halved = n
    for _ in range(k):
        halved = (halved + 1) // 2  # one reduction: L -> ceil(L / 2)
    got = PyramidalEncoder.output_lengths(torch.tensor([n]), k).item()
    assert got == halved == math.ceil(n / 2**k)


@pytest.mark.parametrize("total", [9, 8])
def test_pyramidal_encoder_lengths_and_masking(total):
    torch.manual_seed(0)
    enc = PyramidalEncoder(3, 4, num_reductions=2).eval()
    lengths = [total, 7, 5, 1, 3, 6]  # odd lengths, and an odd T (9) that needs a zero frame
    x, lengths = _batch(d=3, lengths=lengths, total=total)
    out, new = enc(x, lengths)
    assert out.shape == (6, math.ceil(total / 4), 8)
    assert new.tolist() == [math.ceil(n / 4) for n in lengths.tolist()]
    assert new.tolist() == enc.output_lengths(lengths, 2).tolist()
    for b, n in enumerate(lengths.tolist()):
        alone, alone_len = enc(x[b : b + 1, :n], lengths[b : b + 1])
        assert alone.shape[1] == alone_len.item() == new[b].item()
        torch.testing.assert_close(out[b, : new[b]], alone[0], rtol=1e-5, atol=1e-5)
        assert torch.all(out[b, new[b] :] == 0)


def test_pyramidal_encoder_gradcheck_and_no_reduction():
    torch.manual_seed(0)
    enc = PyramidalEncoder(2, 2, num_reductions=2, cell="gru").double()
    x, lengths = _batch(d=2, lengths=[5, 3], total=5, dtype=torch.float64, garbage=False)
    x.requires_grad_()
    assert torch.autograd.gradcheck(lambda v: enc(v, lengths)[0], (x,))
    flat = PyramidalEncoder(2, 2, num_reductions=0).double()
    out, new = flat(x, lengths)
    assert out.shape == (2, 5, 4) and torch.equal(new, lengths)
