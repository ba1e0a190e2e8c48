"""CTC prefix beam search speed: utterances per second, without and with LM fusion.

Runs :func:`seqkit.search.ctc_decoder.ctc_prefix_beam_search` on CTC log-posteriors of
ASR-like size (default T = 200 frames, V = 30: blank, space, 26 letters, ``'`` and ``.``)
and prints utterances/s for greedy decoding, beam search without an LM, with a word bigram
(:class:`~seqkit.search.lm_scorer.ArpaLM`, word-level fusion at spaces) and with a character
RNN LM (:class:`~seqkit.nn.lm.RNNLM` through
:class:`~seqkit.search.lm_scorer.NeuralLMScorer`, token-level fusion).

Two kinds of posteriors (``--kind``):

* ``peaky``: like a trained model's: a random text of words from a 500-word lexicon is
  spelled out, each character held 1-3 frames and followed by 0-2 blank frames, and the
  logits are ``8 * one_hot + N(0, 1)`` noise (about 1/2 of the frames are blank).
* ``random``: ``log_softmax(N(0, 1))`` logits: flat posteriors, every token passes the
  default cut-off at every frame (the worst case for the search).

The word LM is a synthetic but normalised backoff bigram over the lexicon (random unigram
distribution; 20 listed successors per word holding half of the mass; backoff weights that
make every conditional sum to 1), read from ARPA text.  The RNN LM (1-layer LSTM, 256
units, random weights) is evaluated on the CPU.

Usage (1 CPU thread by default)::

    python benchmarks/ctc_decode_speed.py                       # peaky, 20 utterances
    python benchmarks/ctc_decode_speed.py --kind random --utterances 5
"""

from __future__ import annotations

import argparse
import math
import random
import time

import _bench_common  # noqa: F401  (puts this checkout first on sys.path)
import torch

from seqkit.nn.ctc import ctc_greedy_decode
from seqkit.nn.lm import RNNLM
from seqkit.search.ctc_decoder import ctc_prefix_beam_search
from seqkit.search.lm_scorer import ArpaLM, NeuralLMScorer

TOKENS = ["<b>", " ", *"abcdefghijklmnopqrstuvwxyz", "'", "."]


def lexicon(rng: random.Random, size: int) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        words.add(
            "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 7)))
        )
    return sorted(words)


def bigram_arpa(words: list[str], rng: random.Random, successors: int = 20) -> list[str]:
    """ARPA lines of a normalised backoff bigram over ``words`` (see the module docstring)."""
    vocab = [*words, "</s>", "<unk>"]
    weights = [rng.random() ** 2 + 1e-3 for _ in vocab]
    total = sum(weights)
    uni = {w: x / total for w, x in zip(vocab, weights, strict=True)}
    bigrams: dict[tuple[str, str], float] = {}
    backoff: dict[str, float] = {}
    for h in ["<s>", *words]:
        nxt = rng.sample([*words, "</s>"], successors)
        q = [rng.random() + 0.1 for _ in nxt]
        qs = sum(q)
        listed = {w: 0.5 * x / qs for w, x in zip(nxt, q, strict=True)}
        for w, p in listed.items():
            bigrams[(h, w)] = p
        backoff[h] = 0.5 / (1.0 - sum(uni[w] for w in nxt))
    lines = ["\\data\\", f"ngram 1={len(vocab) + 1}", f"ngram 2={len(bigrams)}", "", "\\1-grams:"]
    lines.append(f"-99\t<s>\t{math.log10(backoff['<s>']):.6f}")
    for w in vocab:
        bo = f"\t{math.log10(backoff[w]):.6f}" if w in backoff else ""
        lines.append(f"{math.log10(uni[w]):.6f}\t{w}{bo}")
    lines += ["", "\\2-grams:"]
    lines += [f"{math.log10(p):.6f}\t{h} {w}" for (h, w), p in bigrams.items()]
    lines += ["", "\\end\\"]
    return lines


def peaky_log_probs(words: list[str], frames: int, gen: torch.Generator, rng: random.Random):
    ids = []
    while len(ids) < frames:
        for ch in rng.choice(words) + " ":
            ids += [TOKENS.index(ch)] * rng.randint(1, 3) + [0] * rng.randint(0, 2)
    path = torch.tensor(ids[:frames])
    logits = 8.0 * torch.nn.functional.one_hot(path, len(TOKENS)).float()
    logits += torch.randn(frames, len(TOKENS), generator=gen)
    return logits.log_softmax(-1)


def timed(fn, inputs) -> tuple[float, list]:
    start = time.perf_counter()
    out = [fn(x) for x in inputs]
    return len(inputs) / (time.perf_counter() - start), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--utterances", type=int, default=20)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--beam", type=int, default=10)
    parser.add_argument("--kind", choices=("peaky", "random"), default="peaky")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    words = lexicon(rng, 500)
    if args.kind == "peaky":
        utts = [peaky_log_probs(words, args.frames, gen, rng) for _ in range(args.utterances)]
    else:
        utts = [
            torch.randn(args.frames, len(TOKENS), generator=gen).log_softmax(-1)
            for _ in range(args.utterances)
        ]
    word_lm = ArpaLM.from_lines(bigram_arpa(words, rng))
    torch.manual_seed(args.seed)
    rnnlm = RNNLM(len(TOKENS), 64, 256, num_layers=1, tie_weights=False).eval()
    char_lm = NeuralLMScorer(rnnlm, bos=0, eos=0, vocab={t: i for i, t in enumerate(TOKENS)})

    print(
        f"CTC decoding, {args.kind} posteriors: {args.utterances} utterances, T={args.frames}, "
        f"V={len(TOKENS)}, beam {args.beam}, {args.threads} thread(s)"
    )
    runs = {
        "greedy": lambda x: ctc_greedy_decode(x.unsqueeze(0))[0],
        "beam, no LM": lambda x: ctc_prefix_beam_search(x, beam=args.beam, tokens=TOKENS),
        "beam + word bigram (ARPA)": lambda x: ctc_prefix_beam_search(
            x, beam=args.beam, tokens=TOKENS, lm=word_lm, lm_weight=0.5, word_bonus=1.0
        ),
        "beam + char RNN LM (LSTM 256)": lambda x: ctc_prefix_beam_search(
            x, beam=args.beam, tokens=TOKENS, lm=char_lm, lm_unit="token", lm_weight=0.3
        ),
    }
    for name, fn in runs.items():
        rate, _ = timed(fn, utts)
        print(f"  {name:32s} {rate:9.1f} utterances/s  ({1000.0 / rate:8.2f} ms/utterance)")


if __name__ == "__main__":
    main()
