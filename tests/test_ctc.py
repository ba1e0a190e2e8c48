"""CTC head, loss, length checks and greedy decoding (seqkit.nn.ctc) against brute force and torch."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from seqkit.data.batching import pad_sequences
from seqkit.nn.ctc import (
    CTCHead,
    check_ctc_lengths,
    ctc_candidate_log_likelihoods,
    ctc_greedy_decode,
    ctc_loss,
    ctc_min_input_lengths,
)


def collapse(path, blank):
    out, prev = [], None
    for s in path:
        if s != prev and s != blank:
            out.append(s)
        prev = s
    return out


def brute_force_nll(log_probs, target, blank=0):
    """-log sum over every alignment of the (T, V) log-probs that collapses to target."""
    t_len, v = log_probs.shape
    terms = [
        sum(float(log_probs[t, s]) for t, s in enumerate(path))
        for path in itertools.product(range(v), repeat=t_len)
        if collapse(path, blank) == list(target)
    ]
    if not terms:
        return math.inf
    m = max(terms)
    return -(m + math.log(sum(math.exp(x - m) for x in terms)))


def test_min_input_lengths_counts_adjacent_repeats_in_both_target_layouts():
    seqs = [[1, 1, 2], [2, 2, 2, 2], [1, 2, 1], [3]]
    padded, lengths = pad_sequences(seqs, pad_value=-100)
    expected = [4, 7, 3, 1]  # L + repeats; the -100 padding must not count as a repeat
    assert ctc_min_input_lengths(padded, lengths).tolist() == expected
    flat = torch.tensor([x for s in seqs for x in s])
    assert ctc_min_input_lengths(flat, lengths).tolist() == expected
    # padding equal to the last label must not be counted either
    padded_same = torch.tensor([[1, 1, 2, 2], [2, 2, 2, 2], [1, 2, 1, 1], [3, 3, 3, 3]])
    assert ctc_min_input_lengths(padded_same, lengths).tolist() == expected


def test_min_input_length_is_the_shortest_alignable_input_by_brute_force():
    torch.manual_seed(0)
    for target in ([1], [1, 1], [1, 2], [2, 2, 1], [1, 1, 1]):
        need = int(ctc_min_input_lengths(torch.tensor([target]), torch.tensor([len(target)]))[0])
        for t_len in range(1, 6):
            lp = torch.randn(t_len, 3, dtype=torch.float64).log_softmax(-1)
            possible = math.isfinite(brute_force_nll(lp, target))
            assert possible == (t_len >= need), (target, t_len)


def test_impossible_target_raises_naming_utterance_and_lengths():
    targets = torch.tensor([[1, 2, 0], [1, 1, 2], [2, 2, 2]])
    target_lengths = torch.tensor([2, 3, 3])
    input_lengths = torch.tensor([5, 3, 5])  # utterance 1 needs 4, utterance 2 needs 5
    with pytest.raises(ValueError) as err:
        check_ctc_lengths(input_lengths, targets, target_lengths)
    msg = str(err.value)
    assert "utterance 1: input length 3 < 4 frames needed" in msg
    assert "target length 3 + 1 adjacent repeat(s)" in msg
    assert "utterance 0" not in msg and "utterance 2" not in msg
    # the head's loss runs the same check
    head = CTCHead(4, 3)
    lp = head(torch.randn(3, 5, 4))
    with pytest.raises(ValueError, match="utterance 1: input length 3"):
        head.loss(lp, input_lengths, targets, target_lengths)
    # without the check, zero_infinity turns the impossible utterance into a zero loss
    per_utt = head.loss(lp, input_lengths, targets, target_lengths, reduction="none", check=False)
    assert per_utt[1].item() == 0.0 and per_utt[0].item() > 0 and per_utt[2].item() > 0


def test_check_lists_every_bad_utterance_and_bad_label_ids():
    with pytest.raises(ValueError) as err:
        check_ctc_lengths(
            torch.tensor([1, 1, 9]), torch.tensor([[1, 1], [2, 3], [1, 2]]), torch.tensor([2, 2, 2])
        )
    assert "utterance 0: input length 1 < 3" in str(err.value)
    assert "utterance 1: input length 1 < 2" in str(err.value)
    with pytest.raises(ValueError, match="utterance 1: target contains the blank id 0"):
        check_ctc_lengths(torch.tensor([5, 5]), torch.tensor([[1, 2], [0, 2]]), [2, 2], blank=0)
    with pytest.raises(ValueError, match=r"utterance 0: target has a label id outside \[0, 3\)"):
        check_ctc_lengths(torch.tensor([5]), torch.tensor([[1, 3]]), [2], vocab_size=3)
    check_ctc_lengths(torch.tensor([4]), torch.tensor([[1, 1, 2]]), [3], blank=0, vocab_size=3)


def test_loss_equals_brute_force_and_torch_ctc_loss():
    torch.manual_seed(1)
    b, t_len, v = 4, 4, 3
    log_probs = torch.randn(b, t_len, v, dtype=torch.float64).log_softmax(-1)
    lengths = torch.tensor([4, 3, 4, 2])
    targets, target_lengths = pad_sequences([[1, 2], [2, 2], [1, 1, 2], [1]], pad_value=-1)
    nll = ctc_loss(log_probs, lengths, targets, target_lengths, reduction="none")
    for i in range(b):
        ref = brute_force_nll(log_probs[i, : lengths[i]], targets[i, : target_lengths[i]].tolist())
        assert nll[i].item() == pytest.approx(ref, rel=1e-10, abs=1e-10)
    safe_targets = targets.clamp(min=1)
    for reduction in ("none", "sum", "mean"):
        ref = F.ctc_loss(
            log_probs.transpose(0, 1), safe_targets, lengths, target_lengths, reduction=reduction
        )
        got = ctc_loss(log_probs, lengths, targets, target_lengths, reduction=reduction)
        torch.testing.assert_close(got, ref)
    mean = ctc_loss(log_probs, lengths, targets, target_lengths)
    torch.testing.assert_close(mean, (nll / target_lengths).mean())
    with pytest.raises(ValueError, match="reduction"):
        ctc_loss(log_probs, lengths, targets, target_lengths, reduction="token_mean")


def test_candidate_log_likelihoods_equal_brute_force_and_pick_the_best():
    torch.manual_seed(2)
    log_probs = torch.randn(3, 4, 4, dtype=torch.float64).log_softmax(-1)
    lengths = torch.tensor([4, 2, 3])
    cands = [[1, 2], [2, 2], [3], [], [1, 1, 2]]
    scores = ctc_candidate_log_likelihoods(log_probs, lengths, cands, blank=0)
    assert scores.shape == (3, 5)
    for b in range(3):
        for k, c in enumerate(cands):
            frames = log_probs[b, : lengths[b]]
            if len(c) + sum(x == y for x, y in zip(c, c[1:])) > lengths[b]:
                assert scores[b, k] == -math.inf  # too short for this candidate
            else:
                assert scores[b, k].item() == pytest.approx(-brute_force_nll(frames, c), rel=1e-6)
    # blank 3 and a candidate list the argmax must read back
    peaked = torch.full((1, 3, 4), -20.0)
    for t, label in enumerate([1, 3, 2]):
        peaked[0, t, label] = 0.0
    got = ctc_candidate_log_likelihoods(peaked.log_softmax(-1), torch.tensor([3]), [[2], [1, 2], [2, 1]], blank=3)
    assert got.argmax(-1).item() == 1


def test_loss_with_nonzero_blank_and_concatenated_targets():
    torch.manual_seed(2)
    log_probs = torch.randn(2, 4, 3, dtype=torch.float64).log_softmax(-1)
    lengths, target_lengths = torch.tensor([4, 4]), torch.tensor([2, 3])
    flat = torch.tensor([0, 1, 1, 0, 1])  # blank = 2: targets [0, 1] and [1, 0, 1]
    head = CTCHead(5, 3, blank=2)
    got = head.loss(log_probs, lengths, flat, target_lengths, reduction="none")
    assert got[0].item() == pytest.approx(brute_force_nll(log_probs[0], [0, 1], blank=2))
    assert got[1].item() == pytest.approx(brute_force_nll(log_probs[1], [1, 0, 1], blank=2))


def test_padded_batch_loss_equals_each_utterance_alone():
    torch.manual_seed(3)
    head = CTCHead(6, 5).double()
    xs = [torch.randn(n, 6, dtype=torch.float64) for n in (7, 4, 9)]
    ys = [[1, 2, 2], [3], [4, 1, 4, 4]]
    x, lengths = pad_sequences(xs, pad_value=1e3)  # absurd padding must not leak
    y, y_len = pad_sequences(ys, pad_value=-100)
    lp = head(x, lengths)
    assert (lp[1, 4:] == 0).all() and (lp[0, 7:] == 0).all()
    batch = head.loss(lp, lengths, y, y_len, reduction="none")
    for i, (xi, yi) in enumerate(zip(xs, ys, strict=True)):
        alone_lp = head(xi.unsqueeze(0))
        torch.testing.assert_close(lp[i, : len(xi)], alone_lp[0])
        alone = head.loss(alone_lp, torch.tensor([len(xi)]), torch.tensor([yi]), [len(yi)], "none")
        torch.testing.assert_close(batch[i], alone[0])


def test_head_gradcheck():
    torch.manual_seed(4)
    head = CTCHead(3, 4).double()
    x = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([5, 4])
    targets, target_lengths = torch.tensor([[1, 2, 2], [3, 1, 0]]), torch.tensor([3, 2])
    weight, bias = head.proj.weight, head.proj.bias

    def f(x, w, b):
        lp = F.log_softmax(F.linear(x, w, b), dim=-1)
        return ctc_loss(lp, lengths, targets, target_lengths, reduction="sum")

    assert torch.autograd.gradcheck(f, (x, weight, bias))
    # the module computes the same function
    lp = head(x)
    torch.testing.assert_close(
        head.loss(lp, lengths, targets, target_lengths, "sum"), f(x, weight, bias)
    )
    head.loss(lp, lengths, targets, target_lengths).backward()
    assert head.proj.weight.grad is not None and torch.isfinite(head.proj.weight.grad).all()


def reference_greedy(log_probs, lengths, blank):
    out = []
    for i in range(log_probs.size(0)):
        best = log_probs[i, : lengths[i]].argmax(-1).tolist()
        out.append(collapse(best, blank))
    return out


def test_greedy_is_argmax_collapse_remove_blank_within_lengths():
    torch.manual_seed(5)
    for blank in (0, 4):
        log_probs = torch.randn(6, 12, 5).log_softmax(-1)
        lengths = torch.tensor([12, 1, 5, 8, 12, 3])
        got = ctc_greedy_decode(log_probs, lengths, blank=blank)
        assert got == reference_greedy(log_probs, lengths, blank)
    # a hand case: frames "a a - a b b -" then padding that would add a "c"
    ids = [1, 1, 0, 1, 2, 2, 0, 3, 3]
    lp = F.one_hot(torch.tensor([ids]), 4).float().log_softmax(-1)
    assert ctc_greedy_decode(lp, torch.tensor([7])) == [[1, 1, 2]]
    assert ctc_greedy_decode(lp) == [[1, 1, 2, 3]]
    assert CTCHead(2, 4).greedy(lp, torch.tensor([7])) == [[1, 1, 2]]


def test_head_rejects_bad_arguments():
    with pytest.raises(ValueError, match="blank"):
        CTCHead(3, 4, blank=4)
    with pytest.raises(ValueError, match="vocab_size"):
        CTCHead(3, 1)
    head = CTCHead(3, 4)
    with pytest.raises(ValueError, match="lengths must lie"):
        head.loss(head(torch.randn(1, 3, 3)), torch.tensor([4]), torch.tensor([[1]]), [1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_loss_and_greedy_match_cpu():
    torch.manual_seed(6)
    head = CTCHead(8, 6)
    x = torch.randn(3, 10, 8)
    lengths = torch.tensor([10, 7, 9])
    targets, target_lengths = pad_sequences([[1, 2, 2], [5], [3, 4, 3, 1]], pad_value=-100)
    cpu_lp = head(x, lengths)
    cpu = head.loss(cpu_lp, lengths, targets, target_lengths, reduction="none")
    head_cuda = head.cuda()
    lp = head_cuda(x.cuda(), lengths.cuda())
    loss = head_cuda.loss(lp, lengths.cuda(), targets.cuda(), target_lengths.cuda(), "none")
    torch.testing.assert_close(loss.cpu(), cpu, rtol=1e-4, atol=1e-4)
    loss.sum().backward()
    assert torch.isfinite(head_cuda.proj.weight.grad).all()
    assert head_cuda.greedy(lp, lengths.cuda()) == ctc_greedy_decode(cpu_lp, lengths)


def test_encoder_plus_ctc_head_overfits_reversal_to_100_percent():
    """Tiny overfit: a BiLSTM + CTC head learns to emit each input sequence *reversed*
    (2 frames per input symbol, so repeats stay alignable) on 24 toy sequences, reaching
    100 % exact greedy output within a bounded number of steps."""
    from seqkit.nn.rnn import RNNEncoder

    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        vocab = 6  # 0 = blank, labels 1..5
        seqs = [torch.randint(1, vocab, (int(n),)) for n in torch.randint(2, 6, (24,))]
        frames = [F.one_hot(s.repeat_interleave(2), vocab).float() for s in seqs]  # (2L, V)
        x, lengths = pad_sequences(frames, dtype=torch.float)
        targets = [s.flip(0) for s in seqs]
        flat = torch.cat(targets)
        target_lengths = torch.tensor([len(t) for t in targets])
        encoder = RNNEncoder(vocab, 32, num_layers=1, bidirectional=True)
        head = CTCHead(encoder.output_size, vocab, blank=0)
        params = list(encoder.parameters()) + list(head.parameters())
        opt = torch.optim.Adam(params, lr=0.02)
        solved_at = None
        for step in range(1, 601):
            out, _ = encoder(x, lengths)
            log_probs = head(out, lengths)
            loss = head.loss(log_probs, lengths, flat, target_lengths)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 20 == 0:
                with torch.no_grad():
                    hyp = ctc_greedy_decode(head(encoder(x, lengths)[0], lengths), lengths)
                if all(h == t.tolist() for h, t in zip(hyp, targets)):
                    solved_at = step
                    break
        assert solved_at is not None, f"not solved in 600 steps (last loss {float(loss):.3f})"
    finally:
        torch.set_num_threads(threads)
