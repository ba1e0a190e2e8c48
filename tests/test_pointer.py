"""PointerNetwork (Vinyals et al. 2015): reference equations, masking, gradcheck, search
contract, and a tiny sorting task learned to 100 %."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from seqkit.nn.pointer import POINTER_START, PointerNetwork
from seqkit.search.state import expand_state, select_state


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: intra-op threads only add overhead (and oversubscribe a shared CPU)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _reference_one(net: PointerNetwork, x: torch.Tensor, targets: list[int]) -> torch.Tensor:
    """Brute force for ONE unpadded sequence x (n, D): the paper's equations step by step.

    Decoder input: start vector, then x[previous target]; distribution: softmax over the n
    positions of the attention energies (computed without the cached key projection), with
    already-chosen positions removed when ``mask_chosen`` (unless all n are chosen).
    """
    n = x.size(0)
    memory, (h_n, c_n) = net.encoder(x.unsqueeze(0), torch.tensor([n]))
    k = net.directions
    h = torch.cat(list(h_n[-k:]), -1)
    c = torch.cat(list(c_n[-k:]), -1)
    mask = torch.ones(1, n, dtype=torch.bool)
    chosen: set[int] = set()
    rows = []
    prev = None
    for t in targets:
        inp = net.start.unsqueeze(0) if prev is None else x[prev].unsqueeze(0)
        h, c = net.decoder(inp, (h, c))
        e = net.attention.energies(h, memory, mask)[0]  # (n,)
        if net.mask_chosen and prev is not None:
            chosen.add(prev)
        if net.mask_chosen and len(chosen) < n:
            e = torch.stack(
                [e[j] if j not in chosen else e.new_tensor(float("-inf")) for j in range(n)]
            )
        rows.append(torch.log_softmax(e, -1))
        prev = t
    return torch.stack(rows)  # (L, n)


def _batch(seed=0, d=3):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([5, 2, 4])
    x = torch.randn(3, 5, d, generator=g)
    x[1, 2:] = 1e3  # garbage in padding must not matter
    x[2, 4:] = -1e3
    targets = torch.full((3, 5), -100)
    for b, n in enumerate(lengths.tolist()):
        targets[b, :n] = torch.randperm(n, generator=g)
    return x, lengths, targets


@pytest.mark.parametrize("mask_chosen,bidirectional", [(False, False), (True, True)])
def test_padded_batch_matches_each_sequence_and_reference(mask_chosen, bidirectional):
    torch.manual_seed(0)
    net = PointerNetwork(3, 6, attn_size=5, bidirectional=bidirectional, mask_chosen=mask_chosen)
    x, lengths, targets = _batch()
    logp = net(x, lengths, targets)
    assert logp.shape == (3, 5, 5)
    for b, n in enumerate(lengths.tolist()):
        tgt = targets[b, :n]
        alone = net(x[b : b + 1, :n], lengths[b : b + 1], tgt.unsqueeze(0))[0]
        torch.testing.assert_close(logp[b, :n, :n], alone, rtol=1e-5, atol=1e-6)
        ref = _reference_one(net, x[b, :n], tgt.tolist())
        torch.testing.assert_close(alone, ref, rtol=1e-5, atol=1e-6)
        # padded input positions have probability exactly 0
        assert torch.all(logp[b, :n, n:] == float("-inf"))
        torch.testing.assert_close(logp[b, :n].exp().sum(-1), torch.ones(n))


def test_mask_chosen_gives_permutations_and_lifts_when_exhausted():
    torch.manual_seed(1)
    net = PointerNetwork(2, 5, mask_chosen=True)
    x, lengths, _ = _batch(d=2)
    pred = net.greedy_decode(x, lengths)
    for b, n in enumerate(lengths.tolist()):
        assert sorted(pred[b, :n].tolist()) == list(range(n))
    # one step beyond the length: all real positions chosen -> mask lifted, still normalised
    state = net.init_state(x, lengths)
    tokens = torch.full((3,), POINTER_START)
    for t in range(3):
        logp, state = net.step(tokens, state)
        tokens = pred[:, t]
    logp, state = net.step(tokens, state)  # row 1 (length 2) has used both positions
    assert torch.isfinite(logp[1, :2]).all() and torch.all(logp[1, 2:] == float("-inf"))
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(3))


def test_gradcheck_float64():
    torch.manual_seed(0)
    net = PointerNetwork(2, 3, attn_size=3, mask_chosen=True).double()
    lengths = torch.tensor([3, 2])
    x = torch.randn(2, 3, 2, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([[2, 0, 1], [1, 0, -100]])
    names = [n for n, _ in net.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in net.parameters())

    def f(x, *ps):
        logp = functional_call(net, dict(zip(names, ps)), (x, lengths, targets))
        keep = targets >= 0
        return logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)[keep]

    assert torch.autograd.gradcheck(f, (x, *params), eps=1e-6, atol=1e-5)


def test_search_contract_expand_and_select_state():
    torch.manual_seed(0)
    net = PointerNetwork(3, 4, mask_chosen=True)
    x, lengths, targets = _batch()
    state = net.init_state(x, lengths)
    assert all(v.size(0) == 3 for v in state.values())
    tokens = torch.full((3,), POINTER_START)
    logp1, state1 = net.step(tokens, state)
    beam = expand_state(state, 2)
    logp2, state2 = net.step(tokens.repeat_interleave(2), beam)
    torch.testing.assert_close(logp2, logp1.repeat_interleave(2, 0))
    # reorder hypotheses and continue: same as continuing the original rows
    idx = torch.tensor([5, 0, 3])
    nxt = targets[:, 0]
    a, _ = net.step(nxt[idx // 2], select_state(state2, idx))
    b, _ = net.step(nxt, state1)
    torch.testing.assert_close(a, b[idx // 2])


def test_overfits_sorting_to_100_percent():
    """Learn to output the positions of the inputs in ascending order (Vinyals et al. 4.1)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    n_ex = 24
    lengths = torch.randint(3, 6, (n_ex,), generator=g)
    x = torch.rand(n_ex, 5, 1, generator=g)
    targets = torch.full((n_ex, 5), -100)
    for b, n in enumerate(lengths.tolist()):
        x[b, n:] = 0.0
        targets[b, :n] = x[b, :n, 0].argsort()
    net = PointerNetwork(1, 32, mask_chosen=True)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    acc = 0.0
    for it in range(400):
        logp = net(x, lengths, targets)
        loss = F.nll_loss(logp.transpose(1, 2), targets, ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if it % 20 == 19:
            pred = net.greedy_decode(x, lengths)
            real = targets >= 0
            acc = (pred[real] == targets[real]).float().mean().item()
            if acc == 1.0:
                break
    assert acc == 1.0, f"sorting accuracy {acc:.3f} after {it + 1} steps"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    torch.manual_seed(0)
    net = PointerNetwork(3, 6, mask_chosen=True)
    x, lengths, targets = _batch()
    cpu = net(x, lengths, targets)
    net = net.cuda()
    gpu = net(x.cuda(), lengths.cuda(), targets.cuda())
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=1e-4)
    assert torch.equal(
        net.greedy_decode(x.cuda(), lengths.cuda()).cpu(), net.cpu().greedy_decode(x, lengths)
    )
