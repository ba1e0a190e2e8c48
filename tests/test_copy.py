"""Copy networks: extended-vocabulary helpers, PointerGeneratorDecoder (See et al. 2017) and
CopyNetDecoder (Gu et al. 2016) against brute-force references, masking, gradcheck, the
search contract, and a toy copy task (sources mostly OOV) learned to 100 %."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.func import functional_call

from seqkit.data.batching import lengths_to_mask
from seqkit.data.vocab import Vocab
from seqkit.nn.copy import (
    CopyNetDecoder,
    PointerGeneratorDecoder,
    collate_copy_batch,
    extend_source,
    extend_target,
    extended_log_probs,
    extended_to_tokens,
    oov_to_unk,
)
from seqkit.nn.rnn import RNNEncoder
from seqkit.search.state import expand_state, select_state

NEG_INF = float("-inf")


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: intra-op threads only add overhead (and oversubscribe a shared CPU)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


V = 7  # decoder vocabulary in the module tests: ids 0..6, UNK = 1
UNK = 1


# ----------------------------------------------------------------------------- helpers


def test_extend_source_target_and_back():
    vocab = Vocab(["the", "cat"])  # <pad> <unk> <s> </s> the cat
    v = len(vocab)
    ids, oovs = extend_source(["the", "zorp", "cat", "blix", "zorp"], vocab)
    assert oovs == ["zorp", "blix"]
    assert ids == [vocab.index("the"), v, vocab.index("cat"), v + 1, v]  # repeated OOV, one slot
    tgt = extend_target(["blix", "the", "unseen", "zorp"], vocab, oovs)
    assert tgt == [v + 1, vocab.index("the"), vocab.unk_id, v]  # target-only OOV -> UNK
    assert extended_to_tokens(tgt + [vocab.eos_id, v], vocab, oovs) == [
        "blix",
        "the",
        "<unk>",
        "zorp",
    ]
    with pytest.raises(IndexError):
        extended_to_tokens([v + 2], vocab, oovs)
    assert oov_to_unk(torch.tensor([0, 5, v, v + 3]), v, vocab.unk_id).tolist() == [0, 5, 1, 1]


def test_collate_copy_batch():
    vocab = Vocab(["a", "b"])
    v = len(vocab)
    batch = collate_copy_batch([["a", "x", "y"], ["q"]], vocab, [["y", "a"], ["q", "q", "z"]])
    assert batch.oovs == [["x", "y"], ["q"]] and batch.n_oov == 2
    assert batch.src_ext_ids.tolist() == [[4, v, v + 1], [v, 0, 0]]
    assert batch.src_ids.tolist() == [[4, 1, 1], [1, 0, 0]]
    assert batch.src_lengths.tolist() == [3, 1]
    assert batch.tgt_in.tolist() == [[2, v + 1, 4, 0], [2, v, v, 1]]
    assert batch.tgt_out.tolist() == [[v + 1, 4, 3, 0], [v, v, 1, 3]]
    assert batch.tgt_lengths.tolist() == [3, 4]


def test_extended_log_probs_matches_brute_force_and_has_clean_gradients():
    g = torch.Generator().manual_seed(0)
    gen = torch.log_softmax(torch.randn(2, 4, generator=g), -1) + math.log(0.3)
    pad = torch.tensor([[False] * 5, [False] * 3 + [True] * 2])
    copy = torch.log_softmax(torch.randn(2, 5, generator=g).masked_fill(pad, NEG_INF), -1)
    copy = copy + math.log(0.7)  # -inf at padding
    ids = torch.tensor([[5, 2, 5, 6, 2], [4, 4, 1, 0, 0]])  # repeats: 5, 2 and 4
    gen.requires_grad_()
    copy.requires_grad_()
    out = extended_log_probs(gen, copy, ids, 8)
    for n in range(2):
        for w in range(8):
            p = gen[n, w].exp().item() if w < 4 else 0.0
            p += sum(copy[n, j].exp().item() for j in range(5) if ids[n, j] == w)
            assert out[n, w].item() == (pytest.approx(math.log(p), abs=1e-6) if p else NEG_INF)
    torch.testing.assert_close(out.exp().sum(-1), torch.ones(2))
    out[torch.isfinite(out)].sum().backward()
    assert torch.isfinite(gen.grad).all() and torch.isfinite(copy.grad).all()
    assert torch.all(copy.grad[1, 3:] == 0)


# ----------------------------------------------------------------------------- fixtures


def _inputs(seed=0, dtype=torch.float32, dm=6):
    """Batch of 3: lengths 4, 2, 3; sources with a repeated OOV and a repeated vocab word."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([4, 2, 3])
    mask = lengths_to_mask(lengths)
    memory = torch.randn(3, 4, dm, generator=g, dtype=dtype)
    memory[1, 2:] = 1e3  # garbage in padding must not matter
    src = torch.tensor([[V, 4, V, 4], [5, V + 1, 0, 0], [V, V + 1, V + 2, 0]])  # n_oov 1, 2, 3
    tok_in = torch.tensor([[2, V, 4, V, 3], [2, 5, V + 1, 0, 0], [2, V + 2, V, V + 1, 6]])
    tok_out = torch.tensor([[V, 4, V, 3, 0], [5, V + 1, 3, 0, 0], [V + 2, V, V + 1, 6, 3]])
    tgt_mask = lengths_to_mask(torch.tensor([4, 3, 5]))
    return memory, mask, src, tok_in, tok_out, tgt_mask


def _pg(coverage=True, seed=0):
    torch.manual_seed(seed)
    return PointerGeneratorDecoder(V, 5, 8, 6, unk_id=UNK, coverage=coverage)


def _copynet(seed=0):
    torch.manual_seed(seed)
    return CopyNetDecoder(V, 5, 8, 6, unk_id=UNK)


def _reference_pg(model, memory, mask, src, tok_in):
    """Brute force of See et al. eqs. 8-12 for ONE example (batch of 1), step by step."""
    dec = model.decoder
    state = dec.init_state(memory, mask)
    n_src = int(mask.sum())
    ext = V + max(int(src[0, :n_src].max()) + 1 - V, 0)
    cov = torch.zeros(n_src)
    rows, covloss = [], []
    for t in range(tok_in.size(1)):
        tok = tok_in[:, t].clone()
        tok[tok >= V] = UNK
        out, state = dec.core(tok, state)
        a = out["weights"][0]
        x = torch.cat([out["context"], out["hidden"], out["embedded"]], -1)
        p_gen = torch.sigmoid(model.switch(x))[0, 0]
        p_vocab = torch.softmax(dec.logits(out["output"])[0], -1)
        row = []
        for w in range(ext):
            p = p_gen * p_vocab[w] if w < V else 0.0
            p = p + (1 - p_gen) * sum(a[j] for j in range(n_src) if src[0, j] == w)
            row.append(p)
        rows.append(torch.stack([torch.as_tensor(p) for p in row]).log())
        covloss.append(sum(min(a[j], cov[j]) for j in range(n_src)))
        cov = cov + a[:n_src]
    return torch.stack(rows), torch.stack([torch.as_tensor(c) for c in covloss])


def _reference_copynet(model, memory, mask, src, tok_in):
    """Brute force of Gu et al. eqs. 4-9 for ONE example (batch of 1), step by step."""
    dec = model.decoder
    state = dec.init_state(memory, mask)
    n_src = int(mask.sum())
    ext = V + max(int(src[0, :n_src].max()) + 1 - V, 0)
    h = memory[0, :n_src]  # (n, Dm)
    prev_copy = torch.zeros(n_src)
    rows = []
    for t in range(tok_in.size(1)):
        y = int(tok_in[0, t])
        match = [j for j in range(n_src) if int(src[0, j]) == y]
        k = sum(prev_copy[j] for j in match) if match else 0.0
        zeta = torch.zeros(memory.size(-1), dtype=memory.dtype)
        if match and k > 0:
            zeta = sum(prev_copy[j] / k * h[j] for j in match)
        out, state = dec.core(torch.tensor([y if y < V else UNK]), state, extra_input=zeta[None])
        s = out["hidden"][0]
        psi_g = dec.logits(out["output"])[0]  # (V,)
        psi_c = torch.stack([torch.tanh(model.copy_proj.weight @ h[j]) @ s for j in range(n_src)])
        z = psi_g.exp().sum() + psi_c.exp().sum()  # one normaliser for both modes
        row = []
        for w in range(ext):
            p = psi_g[w].exp() / z if w < V else 0.0
            p = p + sum(psi_c[j].exp() / z for j in range(n_src) if int(src[0, j]) == w)
            row.append(torch.as_tensor(p))
        rows.append(torch.stack(row).log())
        prev_copy = psi_c.exp() / z
    return torch.stack(rows)


# ----------------------------------------------------------------------------- both models


@pytest.mark.parametrize("kind", ["pg", "copynet"])
def test_matches_brute_force_and_padded_batch_matches_each_example(kind):
    model = _pg() if kind == "pg" else _copynet()
    memory, mask, src, tok_in, _, tgt_mask = _inputs()
    out = model(tok_in, memory, mask, src)
    logp = out["log_probs"]
    assert logp.shape == (3, 5, V + 3)
    for b in range(3):
        n, m = int(mask[b].sum()), int(tgt_mask[b].sum())
        n_oov = b + 1
        alone = model(
            tok_in[b : b + 1, :m], memory[b : b + 1, :n], mask[b : b + 1, :n], src[b : b + 1, :n]
        )
        assert alone["log_probs"].shape == (1, m, V + n_oov)
        torch.testing.assert_close(
            logp[b, :m, : V + n_oov], alone["log_probs"][0], rtol=1e-5, atol=1e-5
        )
        assert torch.all(logp[b, :, V + n_oov :] == NEG_INF)  # slots this example does not use
        args = (
            memory[b : b + 1, :n],
            mask[b : b + 1, :n],
            src[b : b + 1, :n],
            tok_in[b : b + 1, :m],
        )
        if kind == "pg":
            ref, covloss = _reference_pg(model, *args)
            torch.testing.assert_close(out["coverage_loss"][b, :m], covloss, rtol=1e-5, atol=1e-6)
        else:
            ref = _reference_copynet(model, *args)
        torch.testing.assert_close(alone["log_probs"][0], ref, rtol=1e-5, atol=1e-5)
    # a normalised distribution over the extended vocabulary at every step
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(3, 5))


@pytest.mark.parametrize("kind", ["pg", "copynet"])
def test_oov_probability_only_through_copying_and_repeats_summed(kind):
    model = _pg() if kind == "pg" else _copynet()
    memory, mask, src, tok_in, _, _ = _inputs()
    out = model(tok_in, memory, mask, src)
    p = out["log_probs"].exp()
    if kind == "pg":
        copy_mass = (1 - out["p_gen"]).unsqueeze(-1) * out["weights"]  # (B, L, S)
    else:  # joint softmax: copy-mode probability of each source position
        both = torch.cat([out["gen_scores"], out["copy_scores"]], -1)
        copy_mass = torch.softmax(both, -1)[..., V:]
        gen_mass = torch.softmax(both, -1)[..., :V]
    # example 0: OOV slot V sits at positions 0 and 2 (summed); in-vocab word 4 at 1 and 3
    torch.testing.assert_close(p[0, :, V], copy_mass[0, :, 0] + copy_mass[0, :, 2])
    if kind == "pg":
        gen_mass = out["p_gen"].unsqueeze(-1) * out["vocab_log_probs"].exp()
    torch.testing.assert_close(
        p[0, :, 4], gen_mass[0, :, 4] + copy_mass[0, :, 1] + copy_mass[0, :, 3]
    )
    # a word in V that is not in the source: generation only
    torch.testing.assert_close(p[0, :, 6], gen_mass[0, :, 6])
    # if nothing is copied from position 0 / 2 the OOV has probability exactly 0
    if kind == "pg":
        with torch.no_grad():
            model.switch.bias.fill_(1e4)  # p_gen = 1: generation only
        p_gen_only = model(tok_in, memory, mask, src)["log_probs"].exp()
        assert torch.all(p_gen_only[..., V:] == 0)
        torch.testing.assert_close(p_gen_only.sum(-1), torch.ones(3, 5))


@pytest.mark.parametrize("kind", ["pg", "copynet"])
def test_decoder_inputs_beyond_vocab_are_fed_as_unk(kind):
    model = _pg() if kind == "pg" else _copynet()
    memory, mask, src, _, _, _ = _inputs()
    state = model.init_state(memory, mask, src)
    _, state = model.step(torch.full((3,), 2), state)
    ext_tokens = torch.tensor([V, V + 1, V + 2])  # all in the batch's extended vocabulary
    res_ext, _ = model._step(ext_tokens, state)
    res_unk, _ = model._step(torch.full((3,), UNK), state)
    if kind == "pg":  # the token only enters through the embedding: identical to UNK
        torch.testing.assert_close(res_ext["log_probs"], res_unk["log_probs"])
    else:  # embedding of UNK, but the selective read still knows which word was copied
        torch.testing.assert_close(res_ext["embedded"], res_unk["embedded"])
        assert torch.all(res_unk["selective_read"] == 0)
        assert torch.all(res_ext["selective_read"].abs().sum(-1) > 0)


@pytest.mark.parametrize("kind", ["pg", "copynet"])
def test_gradcheck_float64(kind):
    torch.manual_seed(0)
    if kind == "pg":
        model = PointerGeneratorDecoder(5, 2, 3, 3, unk_id=UNK, coverage=True).double()
    else:
        model = CopyNetDecoder(5, 2, 3, 3, unk_id=UNK).double()
    memory = torch.randn(2, 3, 3, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    src = torch.tensor([[5, 3, 5], [6, 5, 0]])
    tok_in = torch.tensor([[2, 5, 3], [2, 6, 5]])
    tok_out = torch.tensor([[5, 3, 5], [6, 5, 4]])
    own = ["switch.weight", "switch.bias"] if kind == "pg" else ["copy_proj.weight"]
    params = dict(model.named_parameters())

    def run(names):
        def f(memory, *ps):
            out = functional_call(
                model, {**params, **dict(zip(names, ps))}, (tok_in, memory, mask, src)
            )
            res = [out["log_probs"].gather(-1, tok_out.unsqueeze(-1)), out["log_probs"][..., :5]]
            if kind == "pg":
                res.append(out["coverage_loss"][:, 1:])  # min() has a kink at c^0 = 0
            return torch.cat([r.flatten() for r in res])

        return f, tuple(params[n].detach().clone().requires_grad_() for n in names)

    # full Jacobians for the memory and this module's own parameters ...
    f, ps = run(own)
    assert torch.autograd.gradcheck(f, (memory, *ps), eps=1e-6, atol=1e-5)
    # ... and random projections of it (fast mode) for every parameter, decoder's included
    f, ps = run(list(params))
    assert torch.autograd.gradcheck(f, (memory, *ps), eps=1e-6, atol=1e-5, fast_mode=True)


@pytest.mark.parametrize("kind", ["pg", "copynet"])
def test_search_contract_expand_and_select_state(kind):
    model = _pg() if kind == "pg" else _copynet()
    memory, mask, src, tok_in, _, _ = _inputs()
    state = model.init_state(memory, mask, src)
    assert all(v.size(0) == 3 for v in state.values())
    logp1, state1 = model.step(tok_in[:, 0], state)
    logp2, state2 = model.step(tok_in[:, 0].repeat_interleave(2), expand_state(state, 2))
    assert logp2.shape == (6, V + 3)
    torch.testing.assert_close(logp2, logp1.repeat_interleave(2, 0))
    idx = torch.tensor([5, 0, 3])
    a, _ = model.step(tok_in[idx // 2, 1], select_state(state2, idx))
    b, _ = model.step(tok_in[:, 1], state1)
    torch.testing.assert_close(a, b[idx // 2])


def test_pg_reduces_to_the_attentional_decoder_when_p_gen_is_one():
    """Same attention and coverage loss as AttentionalDecoder.forward; with p_gen = 1 the
    extended distribution is the decoder's softmax (OOV slots: log-probability <= -1e4)."""
    model = _pg()
    memory, mask, src, tok_in, _, _ = _inputs()
    with torch.no_grad():
        model.switch.bias.fill_(1e4)
    out = model(tok_in, memory, mask, src)
    base = model.decoder(oov_to_unk(tok_in, V, UNK), memory, mask)
    torch.testing.assert_close(out["weights"], base["weights"])
    torch.testing.assert_close(out["coverage_loss"], base["coverage_loss"])
    torch.testing.assert_close(out["log_probs"][..., :V], torch.log_softmax(base["logits"], -1))
    assert torch.all(out["log_probs"][..., V:].exp() == 0)


def test_pg_loss_is_masked_nll_plus_weighted_coverage():
    model = _pg()
    model.coverage_weight = 0.5
    memory, mask, src, tok_in, tok_out, tgt_mask = _inputs()
    out = model(tok_in, memory, mask, src)
    loss = model.loss(out, tok_out, tgt_mask)
    ref, n = 0.0, 0
    for b in range(3):
        for t in range(5):
            if tgt_mask[b, t]:
                ref += -out["log_probs"][b, t, tok_out[b, t]] + 0.5 * out["coverage_loss"][b, t]
                n += 1
    torch.testing.assert_close(loss, ref / n)


# ----------------------------------------------------------------------------- overfit


class _Seq2Seq(nn.Module):
    """Embedding + BiLSTM encoder over in-vocabulary ids (OOVs are UNK), then a copy decoder."""

    def __init__(self, kind, vocab_size, unk_id):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, 16, padding_idx=0)
        self.enc = RNNEncoder(16, 16, bidirectional=True)
        cls = PointerGeneratorDecoder if kind == "pg" else CopyNetDecoder
        self.dec = cls(vocab_size, 16, 32, 32, unk_id=unk_id)

    def encode(self, batch):
        memory, _ = self.enc(self.emb(batch.src_ids), batch.src_lengths)
        return memory, lengths_to_mask(batch.src_lengths)


@pytest.mark.parametrize("kind", ["pg", "copynet"])
def test_overfits_copying_mostly_oov_sources_to_100_percent(kind):
    """Copy the source: 80 % of its tokens are outside the decoder's vocabulary, so only the
    copy mechanism can reproduce them."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    vocab = Vocab(["a", "b", "c"])
    pool = [f"w{i}" for i in range(60)]
    sources = []
    for _ in range(16):
        n = int(torch.randint(3, 6, (1,), generator=g))
        toks = []
        for _ in range(n):
            if torch.rand(1, generator=g) < 0.8:
                toks.append(pool[int(torch.randint(len(pool), (1,), generator=g))])
            else:
                toks.append("abc"[int(torch.randint(3, (1,), generator=g))])
        sources.append(toks)
    batch = collate_copy_batch(sources, vocab, sources)
    oov_share = sum(t not in vocab for s in sources for t in s) / sum(map(len, sources))
    assert oov_share > 0.7
    model = _Seq2Seq(kind, len(vocab), vocab.unk_id)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    tgt_mask = lengths_to_mask(batch.tgt_lengths)
    correct = 0
    for it in range(300):
        memory, mask = model.encode(batch)
        out = model.dec(batch.tgt_in, memory, mask, batch.src_ext_ids, batch.n_oov)
        loss = model.dec.loss(out, batch.tgt_out, tgt_mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if it % 25 == 24:
            with torch.no_grad():  # greedy decoding through the search contract
                memory, mask = model.encode(batch)
                state = model.dec.init_state(memory, mask, batch.src_ext_ids, batch.n_oov)
                tokens = torch.full((len(sources),), vocab.bos_id)
                hyp = []
                for _ in range(batch.tgt_out.size(1)):
                    logp, state = model.dec.step(tokens, state)
                    tokens = logp.argmax(-1)
                    hyp.append(tokens)
                hyp = torch.stack(hyp, 1)
            words = [extended_to_tokens(h, vocab, o) for h, o in zip(hyp, batch.oovs)]
            correct = sum(w == s for w, s in zip(words, sources))
            if correct == len(sources):
                break
    assert correct == len(sources), f"{correct}/{len(sources)} copied exactly after {it + 1} steps"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("kind", ["pg", "copynet"])
def test_cuda_matches_cpu(kind):
    model = _pg() if kind == "pg" else _copynet()
    memory, mask, src, tok_in, tok_out, tgt_mask = _inputs()
    cpu = model(tok_in, memory, mask, src)
    dev = [t.cuda() for t in (tok_in, memory, mask, src)]
    model = model.cuda()
    gpu = model(*dev)
    for k in ("log_probs", "weights"):
        torch.testing.assert_close(gpu[k].cpu(), cpu[k], rtol=1e-4, atol=1e-4)
    model.loss(gpu, tok_out.cuda(), tgt_mask.cuda()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    state = expand_state(model.init_state(dev[1], dev[2], dev[3]), 2)  # a beam of 2
    logp, state = model.step(torch.full((6,), 2, device="cuda"), state)
    assert logp.shape == (6, V + 3) and logp.is_cuda
    torch.testing.assert_close(logp.exp().sum(-1).cpu(), torch.ones(6))
