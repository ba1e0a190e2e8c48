"""``ctc_prefix_beam_search`` of the working tree against the same file at an earlier commit:
are the n-best lists identical, and how much faster is it?

Both versions decode the cached AN4 dev log-probabilities of ``benchmarks/ctc_peers.py``
(``exp/bench_ctc_peers/an4_dev_logprobs.npz``; run that first) in one process, 1 thread.

* Identity: for each setting (beams 1, 2, 10, 32; with and without the word 3-gram; word and
  token bonuses; ``token_top_k``; no pruning; no token strings) the full n-best lists
  (tokens, fused, acoustic and LM scores, word count, text) of every utterance are compared
  exactly; the script exits 1 when any differs.
* Speed: for a few settings, passes over the 104 utterances alternate between the versions
  (``--reps`` each, a fresh ``ArpaLM`` per pass); the median utterances/s and their ratio.

    python benchmarks/ctc_decoder_ab.py --base d607cb3
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from _bench_common import cpu_name
from ctc_peers_worker import load

import seqkit.search.ctc_decoder as current
from seqkit.search.lm_scorer import ArpaLM

IDENTITY = [
    dict(beam=b, lm=lm, **extra)
    for b in (1, 2, 10, 32)
    for lm in (False, True)
    for extra in ({}, dict(word_bonus=1.0, token_bonus=-0.3))
] + [
    dict(beam=10, lm=True, token_top_k=3),
    dict(beam=10, lm=False, token_min_logp=None, beam_prune_logp=None),
    dict(beam=10, lm=False, no_tokens=True),
]
SPEED = [
    dict(beam=10, lm=False),
    dict(beam=10, lm=True),
    dict(beam=32, lm=False),
    dict(beam=32, lm=True),
    dict(beam=10, lm=False, token_min_logp=None, beam_prune_logp=None),
]


def load_base(commit: str):
    """The module ``seqkit/search/ctc_decoder.py`` as it was at ``commit``."""
    src = subprocess.run(
        ["git", "show", f"{commit}:seqkit/search/ctc_decoder.py"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    path = Path(tempfile.mkdtemp()) / "ctc_decoder_base.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("ctc_decoder_base", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["ctc_decoder_base"] = mod  # (dataclasses look their module up)
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base", required=True, help="git commit of the version to compare with")
    p.add_argument("--npz", default="exp/bench_ctc_peers/an4_dev_logprobs.npz")
    p.add_argument("--lm", default="exp/an4_lm/word3.arpa")
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(1)
    base = load_base(args.base)
    utts, tokens, blank, *_ = load(args.npz)
    lines = Path(args.lm).read_text(encoding="utf-8").splitlines()

    def decode(mod, setting, n_best=None):
        """(n-best lists, seconds of the decoding loop alone)."""
        st = dict(setting)
        lm = ArpaLM.from_lines(lines) if st.pop("lm") else None
        kw = dict(blank=blank, lm=lm, word_delimiter=" ", word_prefix=None, n_best=n_best)
        if not st.pop("no_tokens", False):
            kw.update(tokens=tokens, lm_unit="word")
        t = time.perf_counter()
        out = [mod.ctc_prefix_beam_search(x, **kw, **st) for x in utts]
        return out, time.perf_counter() - t

    def key(h):
        return (tuple(h.tokens), h.score, h.acoustic_score, h.lm_score, h.num_words, h.text)

    differing = 0
    for st in IDENTITY:
        a, b = decode(base, st)[0], decode(current, st)[0]
        n = sum([key(h) for h in x] != [key(h) for h in y] for x, y in zip(a, b, strict=True))
        differing += n
        print(f"identity {st}: {n} of {len(utts)} utterances differ")

    print(
        f"\nspeed: {len(utts)} utterances, {args.reps} alternating passes each, 1 thread, {cpu_name()}"
    )
    print("| setting | base utt/s | current utt/s | speed-up |\n|---|---|---|---|")
    for st in SPEED:
        times = {"base": [], "current": []}
        for _ in range(args.reps):
            for name, mod in (("base", base), ("current", current)):
                times[name].append(decode(mod, st, n_best=1)[1])
        tb, tc = statistics.median(times["base"]), statistics.median(times["current"])
        print(f"| {st} | {len(utts) / tb:.1f} | {len(utts) / tc:.1f} | {tb / tc:.2f}x |")
    if differing:
        sys.exit(f"{differing} n-best lists differ")


if __name__ == "__main__":
    main()
