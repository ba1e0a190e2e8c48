"""seqkit.nn.activation.tanh: numpy's kernel agrees with torch.tanh and falls back where it should."""

import pytest
import torch

from seqkit.nn import activation as A

from .conftest import spy_shapes


@pytest.fixture
def fast():
    previous = A.set_fast_tanh(True)
    yield
    A.set_fast_tanh(previous)


def test_values_and_gradient_match_torch(fast, monkeypatch):
    torch.manual_seed(0)
    calls = spy_shapes(monkeypatch, A, "_np_tanh")
    x = (torch.randn(13, 96, 256) * 3).requires_grad_()
    g = torch.randn(13, 96, 256)
    y = A.tanh(x)
    assert calls == [(13, 96, 256)]
    y.backward(g)
    gx = x.grad.clone()
    x.grad = None
    ref = torch.tanh(x)
    ref.backward(g)
    torch.testing.assert_close(y, ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(gx, x.grad, rtol=1e-5, atol=1e-6)
    assert y.grad_fn is not None and not y.grad_fn.name().startswith("Tanh")


def test_second_derivative(fast):
    torch.manual_seed(1)
    x = torch.randn(64, 100, dtype=torch.float32, requires_grad=True)
    (g1,) = torch.autograd.grad(A.tanh(x).sum(), x, create_graph=True)
    (g2,) = torch.autograd.grad(g1.sum(), x)
    t = torch.tanh(x.detach())
    torch.testing.assert_close(g2, -2 * t * (1 - t * t), rtol=1e-5, atol=1e-6)


def test_non_contiguous_and_no_grad(fast, monkeypatch):
    calls = spy_shapes(monkeypatch, A, "_np_tanh")
    x = torch.randn(256, 64).t()  # (64, 256), not contiguous
    with torch.inference_mode():
        y = A.tanh(x)
    assert calls == [(64, 256)]
    assert y.is_contiguous()
    torch.testing.assert_close(y, torch.tanh(x), rtol=1e-6, atol=1e-6)


def test_falls_back_where_it_should(fast, monkeypatch):
    calls = spy_shapes(monkeypatch, A, "_np_tanh")
    small = torch.randn(10, 10)
    assert torch.equal(A.tanh(small), torch.tanh(small))  # below _MIN_NUMEL
    big = torch.randn(100, 100)
    assert torch.equal(A.tanh(big.double()), torch.tanh(big.double()))
    assert A.tanh(big.bfloat16()).dtype == torch.bfloat16
    assert calls == []
    A.set_fast_tanh(False)
    assert not A.fast_tanh_enabled()
    assert torch.equal(A.tanh(big), torch.tanh(big))
    assert calls == []
