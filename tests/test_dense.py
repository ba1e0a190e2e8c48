"""seqkit.nn.dense: the oneDNN route agrees with torch's products and falls back where it should."""

import pytest
import torch
import torch.nn.functional as F

from seqkit.nn import dense as L
from seqkit.nn.cells import TorchGRUCell, TorchLSTMCell

from .conftest import spy_shapes

needs_onednn = pytest.mark.skipif(not L._AVAILABLE, reason="torch built without oneDNN")


@pytest.fixture
def onednn():
    previous = L.set_onednn_linear(True)
    yield
    L.set_onednn_linear(previous)


@needs_onednn
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(40, 256), (3, 17, 256)])
def test_forward_and_grads_match_torch(onednn, bias, shape):
    torch.manual_seed(0)
    x = torch.randn(*shape, requires_grad=True)
    w = torch.randn(128, 256, requires_grad=True)
    b = torch.randn(128, requires_grad=True) if bias else None
    g = torch.randn(*shape[:-1], 128)
    assert L.onednn_applies(x, w)
    y = L.linear(x, w, b)
    y.backward(g)
    got = [x.grad.clone(), w.grad.clone()] + ([b.grad.clone()] if bias else [])
    x.grad = w.grad = None
    if bias:
        b.grad = None
    ref = F.linear(x, w, b)
    ref.backward(g)
    want = [x.grad, w.grad] + ([b.grad] if bias else [])
    assert y.shape == ref.shape
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-4)
    for a, c in zip(got, want):
        torch.testing.assert_close(a, c, rtol=1e-5, atol=1e-4)


@needs_onednn
def test_non_contiguous_input_and_tied_weight(onednn):
    torch.manual_seed(1)
    emb = torch.nn.Embedding(300, 128)
    x = torch.randn(128, 30).t()  # (30, 128), not contiguous
    assert L.onednn_applies(x, emb.weight)
    torch.testing.assert_close(
        L.linear(x, emb.weight), F.linear(x, emb.weight), rtol=1e-5, atol=1e-4
    )


@needs_onednn
def test_oneDNN_is_used_only_where_it_pays(onednn, monkeypatch):
    x = torch.randn(64, 256)
    assert L.onednn_applies(x, torch.randn(256, 256))
    assert not L.onednn_applies(x, torch.randn(1, 256))  # a matrix-vector product
    assert not L.onednn_applies(torch.randn(8, 64), torch.randn(64, 64))  # too small
    assert not L.onednn_applies(x.double(), torch.randn(256, 256).double())
    assert not L.onednn_applies(x.bfloat16(), torch.randn(256, 256).bfloat16())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not L.onednn_applies(x, torch.randn(256, 256))
        assert L.linear(x, torch.randn(256, 256)).dtype == torch.bfloat16
    L.set_onednn_linear(False)
    assert not L.onednn_linear_enabled()
    assert not L.onednn_applies(x, torch.randn(256, 256))


@needs_onednn
def test_backward_products_go_through_oneDNN(onednn, monkeypatch):
    seen = spy_shapes(monkeypatch, L, "_mm_t")
    x = torch.randn(50, 160, requires_grad=True)
    w = torch.randn(160, 160, requires_grad=True)
    y = L.linear(x, w)
    assert seen == [(50, 160)]  # the forward product
    seen.clear()
    y.sum().backward()
    assert seen == [(50, 160), (160, 50)]  # dx = dy W, dW = dy^T x


@needs_onednn
@pytest.mark.parametrize(
    "m, n, k, swapped",
    [
        (600, 256, 64, True),  # many rows, N > K: (x^T g)^T, oneDNN's output features = N
        (450, 256, 10, True),  # K < 32: swapped below 512 rows too
        (80, 256, 64, False),  # few rows
        (600, 64, 256, False),  # N < K
    ],
)
def test_weight_gradient_in_either_operand_order(onednn, monkeypatch, m, n, k, swapped):
    torch.manual_seed(3)
    x = torch.randn(m, k, requires_grad=True)
    w = torch.randn(n, k, requires_grad=True)
    g = torch.randn(m, n)
    seen = spy_shapes(monkeypatch, L, "_mm_t")
    L.linear(x, w).backward(g)
    assert seen[-1] == ((k, m) if swapped else (n, m))  # the first operand of dW's product
    assert w.grad.shape == (n, k)
    torch.testing.assert_close(w.grad, g.t() @ x.detach(), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(x.grad, g @ w.detach(), rtol=1e-5, atol=1e-4)
    w.grad = None  # a second backward accumulates into the transposed-view gradient correctly
    L.linear(x, w).backward(g)
    L.linear(x, w).backward(g)
    torch.testing.assert_close(w.grad, 2 * (g.t() @ x.detach()), rtol=1e-5, atol=1e-4)


@needs_onednn
def test_second_derivative_is_refused(onednn):
    x = torch.randn(50, 160, requires_grad=True)
    w = torch.randn(160, 160, requires_grad=True)
    (gx,) = torch.autograd.grad(L.linear(x, w).pow(2).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError):
        gx.sum().backward()


@needs_onednn
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_cells_match_torch_cells(onednn, kind):
    torch.manual_seed(2)
    ours = (TorchLSTMCell if kind == "lstm" else TorchGRUCell)(128, 96)
    ref = (torch.nn.LSTMCell if kind == "lstm" else torch.nn.GRUCell)(128, 96)
    ref.load_state_dict(ours.state_dict())
    assert list(ours.state_dict()) == list(ref.state_dict())
    x = torch.randn(64, 128, requires_grad=True)
    assert L.onednn_applies(x, ours.weight_ih) and L.onednn_applies(x[:, :96], ours.weight_hh)
    h = torch.randn(64, 96)
    state = (h, torch.randn(64, 96)) if kind == "lstm" else h
    got, want = ours(x, state), ref(x, state)
    got, want = (got, want) if kind == "lstm" else ((got,), (want,))
    for a, c in zip(got, want):
        torch.testing.assert_close(a, c, rtol=1e-5, atol=1e-5)
    sum(t.sum() for t in got).backward()
    g_ours = [p.grad.clone() for p in ours.parameters()] + [x.grad.clone()]
    x.grad = None
    sum(t.sum() for t in want).backward()
    g_ref = [p.grad for p in ref.parameters()] + [x.grad]
    for a, c in zip(g_ours, g_ref):
        torch.testing.assert_close(a, c, rtol=1e-5, atol=1e-4)
    # no state: zeros, as torch
    torch.testing.assert_close(
        ours(x)[0] if kind == "lstm" else ours(x),
        ref(x)[0] if kind == "lstm" else ref(x),
        rtol=1e-5,
        atol=1e-5,
    )


def test_off_is_plain_torch():
    previous = L.set_onednn_linear(False)
    try:
        layer = L.Linear(96, 64)
        x = torch.randn(40, 96)
        assert torch.equal(layer(x), F.linear(x, layer.weight, layer.bias))
    finally:
        L.set_onednn_linear(previous)
