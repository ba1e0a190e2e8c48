"""CTC prefix beam search and LM scorers (seqkit.search.ctc_decoder / lm_scorer).

Proofs: with a beam wide enough to keep every prefix and no pruning, the search's scores
equal brute-force summation over all alignments (and, with an LM, the brute-force fused
score of every label sequence); ARPA probabilities equal values computed by hand; the
neural-LM adapter equals a full-sequence forward of the LM.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from seqkit.errors import DataError
from seqkit.nn.ctc import ctc_greedy_decode
from seqkit.nn.lm import RNNLM
from seqkit.search import ctc_decoder
from seqkit.search.ctc_decoder import ctc_prefix_beam_search, ctc_prefix_beam_search_batch
from seqkit.search.lm_scorer import ArpaLM, NeuralLMScorer

LN10 = math.log(10.0)
EXACT = {"token_min_logp": None, "beam_prune_logp": None, "token_top_k": None, "beam": 1000}

WORD_ARPA = r"""
This free text before the data section is ignored.

\data\
ngram 1=5
ngram 2=4
ngram 3=2

\1-grams:
-0.8	<unk>
-1.0	</s>
-99	<s>	-0.3
-0.5	a	-0.2
-0.6	b	-0.4

\2-grams:
-0.3	<s> a	-0.1
-0.4	a b	-0.25
-0.2	b a
-0.7	a </s>

\3-grams:
-0.15	<s> a b
-0.05	a b a

\end\
"""

CHAR_ARPA = r"""
\data\
ngram 1=5
ngram 2=3

\1-grams:
-1.2	</s>
-99	<s>	-0.2
-0.4	a	-0.3
-0.5	b	-0.1
-0.7	|	-0.6

\2-grams:
-0.1	<s> a
-0.3	a |
-0.2	| b

\end\
"""


def word_lm() -> ArpaLM:
    return ArpaLM.from_lines(WORD_ARPA.splitlines())


def brute_force_ctc(log_probs, blank=0):
    """{label tuple: log sum over all alignments collapsing to it} for (T, V) log-probs."""
    lp = np.asarray(log_probs, dtype=np.float64)
    t_len, v = lp.shape
    sums: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(v), repeat=t_len):
        labels, prev = [], None
        for s in path:
            if s != prev and s != blank:
                labels.append(s)
            prev = s
        key = tuple(labels)
        sums[key] = float(np.logaddexp(sums.get(key, -np.inf), lp[np.arange(t_len), path].sum()))
    return sums


def random_log_probs(t_len, v, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(t_len, v, generator=g, dtype=torch.float64)).log_softmax(-1)


# --------------------------------------------------------------------------- ARPA LM


def test_arpa_probabilities_equal_hand_computed_backoff():
    lm = word_lm()
    assert lm.order == 3
    s0 = lm.initial_state()
    assert s0 == ("<s>",)
    cases = [
        (("<s>",), "a", -0.3),  # listed bigram
        (("<s>", "a"), "b", -0.15),  # listed trigram
        (("a", "b"), "a", -0.05),  # listed trigram
        (("<s>",), "b", -0.3 + -0.6),  # backoff(<s>) + P(b)
        (("b", "a"), "b", 0.0 + -0.4),  # "b a" has no backoff weight -> P(b | a)
        (("a", "b"), "b", -0.25 + -0.4 + -0.6),  # bo(a b) + bo(b) + P(b)
        (("<s>", "b"), "b", 0.0 + -0.4 + -0.6),  # "<s> b" unlisted: bo 0, then bo(b) + P(b)
        (("<s>",), "zzz", -0.3 + -0.8),  # OOV scored as <unk>
    ]
    for history, word, log10p in cases:
        assert lm.score(history, [word])[0] == pytest.approx(log10p * LN10), (history, word)
    assert lm.final_score(("b", "a")) == pytest.approx(-0.7 * LN10)
    assert lm.final_score(("<s>",)) == pytest.approx((-0.3 - 1.0) * LN10)
    # states keep the last n - 1 = 2 words, OOV mapped to <unk>
    s = lm.advance(lm.advance(lm.advance(s0, "a"), "b"), "zzz")
    assert s == ("b", "<unk>")
    # "a b a </s>": -0.3 - 0.15 - 0.05 - 0.7;  "b b </s>": -0.9 - 1.0 + (-0.4 - 1.0)
    assert lm.score_sequence(["a", "b", "a"]) == pytest.approx(-1.2 * LN10)
    assert lm.score_sequence(["b", "b"]) == pytest.approx(-3.3 * LN10)
    assert lm.score_sequence(["a"], eos=False) == pytest.approx(-0.3 * LN10)
    logp, state = lm.step(s0, "a")
    assert logp == pytest.approx(-0.3 * LN10) and state == ("<s>", "a")


def test_arpa_without_unk_uses_kenlm_oov_penalty_and_reads_files(tmp_path):
    path = tmp_path / "uni.arpa"
    path.write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-0.3\ta\n-0.5\t</s>\n\n\\end\\\n")
    lm = ArpaLM.from_file(path)
    assert lm.order == 1 and lm.initial_state() == ()
    assert lm.score((), ["a", "q"]) == pytest.approx([-0.3 * LN10, -100 * LN10])
    assert lm.score_sequence(["a", "a"]) == pytest.approx((-0.3 - 0.3 - 0.5) * LN10)


@pytest.mark.parametrize(
    "text, message",
    [
        ("\\data\\\nngram 1=2\n\\1-grams:\n-0.3\ta\n\\end\\\n", "announces 2 1-grams, found 1"),
        ("\\data\\\nngram 1=1\n\\1-grams:\n-0.3\ta b c\n\\end\\\n", "arpa:4: a 1-gram line"),
        ("\\data\\\nngram 1=1\n\\1-grams:\nx\ta\n\\end\\\n", "arpa:4: bad number"),
        ("\\data\\\nngram 1=1\n\\1-grams:\n-0.3\ta\n", "missing \\end\\"),
        ("hello\n", "not an ARPA file"),
        ("\\data\\\nngram 1=1\n\\2-grams:\n\\end\\\n", "arpa:3: section"),
    ],
)
def test_arpa_format_errors_name_the_line(text, message):
    with pytest.raises(DataError, match=message.replace("\\", "\\\\")):
        ArpaLM.from_lines(text.splitlines(), name="arpa")


# --------------------------------------------------------------------------- neural LM


class TinyLM(nn.Module):
    """Stand-in LM: embedding -> GRU -> linear, with the seqkit search step contract."""

    def __init__(self, vocab_size=6, hidden=8):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, hidden)
        self.rnn = nn.GRU(hidden, hidden, batch_first=True)
        self.out = nn.Linear(hidden, vocab_size)
        self.hidden = hidden

    def forward(self, tokens):  # (B, T) -> (B, T, V), the whole sequence at once
        return F.log_softmax(self.out(self.rnn(self.emb(tokens))[0]), dim=-1)

    def init_state(self, n):
        return {"h": self.out.weight.new_zeros(n, self.hidden)}

    def step(self, tokens, state):  # (N,), {"h": (N, H)} -> (N, V), {"h": (N, H)}
        out, h = self.rnn(self.emb(tokens).unsqueeze(1), state["h"].unsqueeze(0).contiguous())
        return F.log_softmax(self.out(out[:, 0]), dim=-1), {"h": h[0]}


def full_sequence_logp(model, ids, bos, eos):
    with torch.no_grad():
        lp = model(torch.tensor([[bos, *ids]]))[0]  # (n + 1, V)
    targets = [*ids, eos]
    return float(sum(lp[i, y] for i, y in enumerate(targets)))


def test_neural_adapter_equals_full_sequence_forward_and_batches_exactly():
    torch.manual_seed(0)
    model = TinyLM().double().eval()
    bos = eos = 5
    scorer = NeuralLMScorer(model, bos=bos, eos=eos)
    for ids in ([], [1], [2, 3, 3, 1], [4, 0, 2]):
        assert scorer.score_sequence(ids) == pytest.approx(full_sequence_logp(model, ids, bos, eos))
    # a batched advance equals one advance at a time
    s0 = scorer.initial_state()
    s1 = scorer.advance(s0, 2)
    alone = [scorer.advance(s0, 3), scorer.advance(s1, 1), scorer.advance(s1, 4)]
    batched = scorer.advance_batch([s0, s1, s1], [3, 1, 4])
    for a, b in zip(alone, batched, strict=True):
        np.testing.assert_allclose(a.next_log_probs, b.next_log_probs, rtol=0, atol=1e-12)
        torch.testing.assert_close(a.model_state["h"], b.model_state["h"])
    # units through a vocabulary, unknown units -> unk or KeyError
    named = NeuralLMScorer(model, bos=bos, eos=eos, vocab={"x": 1, "y": 2}, unk=0)
    assert named.score_sequence(["y", "x", "?"]) == pytest.approx(scorer.score_sequence([2, 1, 0]))
    with pytest.raises(KeyError, match="not in the LM vocabulary"):
        NeuralLMScorer(model, bos=bos, vocab={"x": 1}).score(s0, ["?"])


def test_neural_adapter_drives_seqkit_rnnlm():
    torch.manual_seed(1)
    model = RNNLM(7, 6, 5, num_layers=2).double().eval()
    scorer = NeuralLMScorer(model, bos=0, eos=0)
    ids = [3, 1, 6, 2]
    with torch.no_grad():
        logits, _, _ = model(torch.tensor([[0, *ids]]))
    lp = logits[0].log_softmax(-1)
    ref = sum(float(lp[i, y]) for i, y in enumerate([*ids, 0]))
    assert scorer.score_sequence(ids) == pytest.approx(ref)


# --------------------------------------------------------------------------- search, no LM


@pytest.mark.parametrize("t_len, v, blank", [(1, 3, 0), (3, 3, 0), (5, 3, 0), (4, 4, 0), (5, 3, 2)])
def test_prefix_beam_search_equals_brute_force_sum_over_alignments(t_len, v, blank):
    for seed in range(3):
        lp = random_log_probs(t_len, v, seed)
        ref = brute_force_ctc(lp, blank)
        hyps = ctc_prefix_beam_search(lp, blank=blank, **EXACT)
        got = {tuple(h.tokens): h.acoustic_score for h in hyps}
        assert set(got) == set(ref)
        for key, value in ref.items():
            assert got[key] == pytest.approx(value, abs=1e-12)
        assert tuple(hyps[0].tokens) == max(ref, key=ref.get)
        assert all(h.score == h.acoustic_score and h.lm_score == 0.0 for h in hyps)
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)


def test_token_pruning_equals_brute_force_over_the_allowed_alignments():
    # A frame may emit the blank, one of its candidate tokens (top-k and above the cut-off),
    # or repeat the previous frame's label; nothing else is pruned when the beam is wide.
    blank, v = 0, 4
    for seed, (top_k, min_logp) in enumerate([(1, None), (2, None), (None, -1.5), (2, -1.2)]):
        lp = random_log_probs(5, v, 40 + seed)
        allowed = []
        for t in range(5):
            order = [int(i) for i in torch.argsort(lp[t], descending=True) if int(i) != blank]
            cand = order[:top_k] if top_k is not None else order
            if min_logp is not None:
                cand = [c for c in cand if lp[t, c] >= min_logp] or (
                    [order[0]] if int(lp[t].argmax()) != blank else []
                )
            allowed.append(set(cand))
        ref: dict[tuple[int, ...], float] = {}
        for path in itertools.product(range(v), repeat=5):
            if any(
                s != blank and s not in allowed[t] and not (t and path[t - 1] == s)
                for t, s in enumerate(path)
            ):
                continue
            labels = tuple(
                s for t, s in enumerate(path) if s != blank and (not t or path[t - 1] != s)
            )
            score = float(sum(lp[t, s] for t, s in enumerate(path)))
            ref[labels] = float(np.logaddexp(ref.get(labels, -np.inf), score))
        kw = {**EXACT, "token_top_k": top_k, "token_min_logp": min_logp}
        got = {tuple(h.tokens): h.acoustic_score for h in ctc_prefix_beam_search(lp, **kw)}
        assert set(got) == set(ref)
        for key, value in ref.items():
            assert got[key] == pytest.approx(value, abs=1e-12)


def test_batched_search_respects_lengths():
    lps = [random_log_probs(n, 4, seed) for seed, n in enumerate((6, 3, 5))]
    padded = torch.full((3, 6, 4), float("nan"), dtype=torch.float64)  # padding never read
    for i, lp in enumerate(lps):
        padded[i, : len(lp)] = lp
    batch = ctc_prefix_beam_search_batch(padded, torch.tensor([6, 3, 5]), beam=4)
    for lp, hyps in zip(lps, batch, strict=True):
        alone = ctc_prefix_beam_search(lp, beam=4)
        assert [(h.tokens, h.score) for h in hyps] == [(h.tokens, h.score) for h in alone]


def test_default_pruning_on_peaky_posteriors_finds_the_greedy_path():
    g = torch.Generator().manual_seed(7)
    path = torch.randint(0, 6, (60,), generator=g)
    logits = 6.0 * F.one_hot(path, 6).double() + torch.randn(
        60, 6, generator=g, dtype=torch.float64
    )
    lp = logits.log_softmax(-1)
    hyps = ctc_prefix_beam_search(lp, beam=8, n_best=3)
    assert len(hyps) == 3
    assert hyps[0].tokens == ctc_greedy_decode(lp.unsqueeze(0))[0]
    # under pruning the acoustic score is a lower bound on the true CTC log-likelihood
    for h in hyps:
        nll = F.ctc_loss(lp.unsqueeze(1), torch.tensor([h.tokens]), [60], [len(h.tokens)], 0, "sum")
        assert h.acoustic_score <= -nll.item() + 1e-9


# --------------------------------------------------------------------------- shallow fusion


def brute_force_fused(lp, tokens, lm, alpha, beta, gamma, unit, text_of):
    """{label tuple: brute-force fused score} with words taken from text_of(labels)."""
    out = {}
    for labels, acoustic in brute_force_ctc(lp).items():
        words = text_of(labels).split()
        if lm is None:
            lm_score = 0.0
        elif unit == "word":
            lm_score = lm.score_sequence(words)
        else:
            lm_score = lm.score_sequence([tokens[i] for i in labels])
        out[labels] = acoustic + alpha * lm_score + beta * len(words) + gamma * len(labels)
    return out


def check_fusion(lp, tokens, lm, unit, text_of, **kw):
    alpha, beta, gamma = 0.8, 1.3, -0.4
    ref = brute_force_fused(lp, tokens, lm, alpha, beta, gamma, unit, text_of)
    hyps = ctc_prefix_beam_search(
        lp, tokens=tokens, lm=lm, lm_unit=unit, lm_weight=alpha, word_bonus=beta,
        token_bonus=gamma, **EXACT, **kw,
    )  # fmt: skip
    got = {tuple(h.tokens): h for h in hyps}
    assert set(got) == set(ref)
    for key, value in ref.items():
        h = got[key]
        assert h.score == pytest.approx(value, abs=1e-9), key
        assert h.text == " ".join(text_of(key).split())
        assert h.num_words == len(text_of(key).split())
        assert h.score == pytest.approx(
            h.acoustic_score + alpha * h.lm_score + beta * h.num_words + gamma * len(h.tokens)
        )
    assert tuple(hyps[0].tokens) == max(ref, key=ref.get)
    return hyps


def test_word_level_fusion_with_space_delimiter_equals_brute_force():
    tokens = ["<b>", "a", "b", " "]
    lm = word_lm()
    for seed in range(3):
        lp = random_log_probs(4, 4, seed)
        check_fusion(lp, tokens, lm, "word", lambda ls: "".join(tokens[i] for i in ls))


def test_word_level_fusion_with_sentencepiece_prefix_equals_brute_force():
    tokens = ["<b>", "\u2581a", "b", "\u2581b"]  # "ab", "bb", ... are OOV -> <unk>
    lm = word_lm()

    def text_of(labels):
        return "".join(tokens[i] for i in labels).replace("\u2581", " ")

    for seed in range(3):
        check_fusion(random_log_probs(4, 4, 10 + seed), tokens, lm, "word", text_of)


def test_token_level_fusion_with_char_ngram_equals_brute_force():
    tokens = ["-", "a", "b", "|"]
    lm = ArpaLM.from_lines(CHAR_ARPA.splitlines())
    # hand check of one backoff: P(b | a) = bo(a) + P(b) = -0.3 - 0.5
    assert lm.score(("a",), ["b"])[0] == pytest.approx(-0.8 * LN10)

    def text_of(labels):
        return "".join(tokens[i] for i in labels).replace("|", " ")

    for seed in range(3):
        check_fusion(random_log_probs(4, 4, 20 + seed), tokens, lm, "token", text_of,
                     word_delimiter="|")  # fmt: skip


def test_token_level_fusion_with_neural_lm_equals_brute_force():
    torch.manual_seed(3)
    model = TinyLM(vocab_size=4).double().eval()  # LM ids: CTC id - 1 for labels, 3 = <s>/</s>
    scorer = NeuralLMScorer(model, bos=3, eos=3, vocab={1: 0, 2: 1, 3: 2})
    alpha, gamma = 0.6, 0.5
    for seed in range(2):
        lp = random_log_probs(5, 4, 30 + seed)
        hyps = ctc_prefix_beam_search(lp, lm=scorer, lm_weight=alpha, token_bonus=gamma, **EXACT)
        ref = {
            labels: acoustic
            + alpha * full_sequence_logp(model, [i - 1 for i in labels], 3, 3)
            + gamma * len(labels)
            for labels, acoustic in brute_force_ctc(lp).items()
        }
        got = {tuple(h.tokens): h.score for h in hyps}
        assert set(got) == set(ref)
        for key, value in ref.items():
            assert got[key] == pytest.approx(value, abs=1e-9)
        assert tuple(hyps[0].tokens) == max(ref, key=ref.get)


def test_lm_changes_the_decision_and_pruned_scores_stay_consistent():
    # acoustics: P("a b") = .5 * .7 * .5 = .175 > P("a a") = .14 > P("b a") = .112; the LM:
    # log10 P(a b </s>) = -2.1, log10 P(a a </s>) = log10 P(b a </s>) = -1.8, so with
    # lm_weight 1 "a a" wins by log(.14 / .175) + 0.3 log(10) = 0.47
    tokens = ["<b>", "a", "b", " "]
    frames = [[0.1, 0.5, 0.4, 0.0], [0.3, 0.0, 0.0, 0.7], [0.1, 0.4, 0.5, 0.0]]
    lp = torch.tensor(frames, dtype=torch.float64).clamp_min(1e-6).log()
    plain = ctc_prefix_beam_search(lp, tokens=tokens)
    assert plain[0].text == "a b"
    lm = word_lm()
    assert lm.score_sequence(["a", "b"]) == pytest.approx(-2.1 * LN10)
    assert lm.score_sequence(["b", "a"]) == pytest.approx(-1.8 * LN10)
    assert lm.score_sequence(["a", "a"]) == pytest.approx(-1.8 * LN10)
    fused = ctc_prefix_beam_search(lp, tokens=tokens, lm=lm, lm_weight=1.0, word_bonus=0.5)
    assert fused[0].text == "a a"
    by_tokens = {tuple(h.tokens): h.score for h in fused}
    margin = by_tokens[(1, 3, 1)] - by_tokens[(1, 3, 2)]
    assert margin == pytest.approx(math.log(0.14 / 0.175) + 0.3 * LN10)
    # with default pruning every reported score is still acoustic + fusion terms of its text
    lp_long = random_log_probs(25, 4, 99, scale=2.0)
    for h in ctc_prefix_beam_search(lp_long, tokens=tokens, lm=lm, lm_weight=0.7, word_bonus=2.0):
        assert h.lm_score == pytest.approx(lm.score_sequence(h.text.split()))
        assert h.score == pytest.approx(h.acoustic_score + 0.7 * h.lm_score + 2.0 * h.num_words)


def test_search_argument_checks():
    lp = random_log_probs(3, 4, 0)
    with pytest.raises(ValueError, match="need the token strings"):
        ctc_prefix_beam_search(lp, lm=word_lm(), lm_unit="word")
    with pytest.raises(ValueError, match="tokens has 3 entries"):
        ctc_prefix_beam_search(lp, tokens=["a", "b", "c"])
    with pytest.raises(ValueError, match="NaN"):
        ctc_prefix_beam_search(torch.full((2, 3), float("nan")))
    empty = ctc_prefix_beam_search(lp, length=0)
    assert [(h.tokens, h.score) for h in empty] == [([], 0.0)]


@pytest.mark.parametrize("unit", ["none", "word", "token"])
def test_skipping_children_that_cannot_be_kept_changes_no_hypothesis(monkeypatch, unit):
    # With a full beam or a pruning threshold, the search stops scoring an entry's children
    # at the first (most probable first) that cannot be kept, but still merges the paths of
    # the rest into beam entries; the n-best lists equal those with every child scored.
    tokens = ["-", "a", "b", "|", "c", "d"] if unit == "token" else ["<b>", "a", "b", " ", "c", "d"]
    lm = {"none": None, "word": word_lm(), "token": ArpaLM.from_lines(CHAR_ARPA.splitlines())}[unit]
    kw = dict(
        beam=3, tokens=tokens, lm=lm, lm_unit=None if unit == "none" else unit, lm_weight=0.7,
        word_bonus=0.5, word_delimiter=" " if unit != "token" else "|", token_min_logp=None,
    )  # fmt: skip
    # (these seeds were checked to stop early at entries with beam children left to merge)
    for seed in range(4):
        lp = random_log_probs(12, 6, 100 + seed, scale=2.0)
        for prune in (-4.0, None):
            fast = ctc_prefix_beam_search(lp, beam_prune_logp=prune, **kw)
            with monkeypatch.context() as m:
                m.setattr(ctc_decoder, "_SKIP_CHILDREN", False)
                full = ctc_prefix_beam_search(lp, beam_prune_logp=prune, **kw)
            key = [(h.tokens, h.score, h.acoustic_score, h.lm_score, h.text) for h in fast]
            assert key == [(h.tokens, h.score, h.acoustic_score, h.lm_score, h.text) for h in full]
