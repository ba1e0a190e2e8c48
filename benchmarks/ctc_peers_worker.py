"""Worker of ``benchmarks/ctc_peers.py``: one CTC decoder over the cached log-probabilities.

Run by the interpreter of the decoder's own environment (seqkit: the project's venv;
pyctcdecode and flashlight-text: their venvs under ``.bench_venvs/``)::

    python benchmarks/ctc_peers_worker.py SIDE NPZ [ARPA]

``SIDE`` is ``seqkit``, ``pyctcdecode`` or ``flashlight``.  It imports only NumPy and the
decoder of its side.  It reads one JSON command per line on stdin and answers one JSON line
on stdout:

* ``{"op": "info"}`` -> ``{"versions": {...}}``;
* ``{"op": "run", "cfg": {...}}`` -> ``{"seconds": s, "hyps": [...]}``: builds the decoder
  of ``cfg`` on first use (LM loading, lexicon, one untimed warm-up pass over 5
  utterances), prepares the pass (seqkit: a fresh ``ArpaLM``, so that its score memo does
  not carry over from an earlier pass), then times ONE pass over all utterances with
  ``time.perf_counter`` around the decode loop only (text output included, process start
  and model forward excluded);
* ``{"op": "quit"}``.

``cfg`` keys: ``method`` (``greedy`` / ``beam``), ``beam``, ``lm`` (bool), ``lm_weight``
(natural-log weight, seqkit's and pyctcdecode's ``alpha``; flashlight gets it times ln 10
because its KenLM wrapper returns log10 scores), ``word_bonus``, ``token_min_logp``,
``beam_prune_logp``, ``unk_score_offset`` (pyctcdecode), ``beam_size_token``,
``log_add`` (flashlight).
"""

from __future__ import annotations

import itertools
import json
import math
import sys
import time

import numpy as np
from _bench_common import serve  # benchmarks/ is sys.path[0] when run as a script


def load(npz: str):
    d = np.load(npz, allow_pickle=False)
    lp, offs = d["log_probs"], d["offsets"]  # (sum T, V) float32, (N + 1,)
    utts = [np.ascontiguousarray(lp[offs[i] : offs[i + 1]]) for i in range(len(offs) - 1)]
    tokens = [str(t) for t in d["tokens"]]
    return utts, tokens, int(d["blank"]), [str(s) for s in d["specials"]], str(d["unk"]), str(d["eos"])


class Text:
    """Token ids -> text as seqkit's ASR task does for characters (``Vocab.decode``: stop at
    the end symbol, drop the other specials but keep ``<unk>``; then collapse spaces)."""

    def __init__(self, tokens, specials, unk, eos):
        self.tokens = tokens
        self.eos = tokens.index(eos) if eos in tokens else -1
        self.drop = {tokens.index(s) for s in specials if s != unk and s in tokens}

    def __call__(self, ids) -> str:
        out = []
        for i in ids:
            if i == self.eos:
                break
            if i not in self.drop:
                out.append(self.tokens[i])
        return " ".join("".join(out).split())


# --------------------------------------------------------------------------- seqkit


def seqkit_side(utts, tokens, blank, text, arpa):
    import torch

    import seqkit
    from seqkit.nn.ctc import ctc_greedy_decode
    from seqkit.search.ctc_decoder import ctc_prefix_beam_search
    from seqkit.search.lm_scorer import ArpaLM

    torch.set_num_threads(1)
    lm_lines = None

    def build(cfg):
        nonlocal lm_lines
        if cfg["method"] == "greedy":

            def run(_prep, xs):
                return [text(ctc_greedy_decode(torch.from_numpy(x)[None], None, blank)[0]) for x in xs]

            return (lambda: None), run
        if cfg["lm"] and lm_lines is None:
            with open(arpa, encoding="utf-8") as f:
                lm_lines = f.read().splitlines()

        def prepare():
            return ArpaLM.from_lines(lm_lines, name=arpa) if cfg["lm"] else None

        def run(lm, xs):
            return [
                text(
                    ctc_prefix_beam_search(
                        x, beam=cfg["beam"], blank=blank, tokens=tokens, lm=lm, lm_unit="word",
                        lm_weight=cfg["lm_weight"], word_bonus=cfg["word_bonus"],
                        word_delimiter=" ", word_prefix=None, lm_eos=True,
                        token_min_logp=cfg["token_min_logp"], beam_prune_logp=cfg["beam_prune_logp"],
                        n_best=1,
                    )[0].tokens
                )
                for x in xs
            ]

        return prepare, run

    versions = {"seqkit": getattr(seqkit, "__version__", "?"), "torch": torch.__version__,
                "numpy": np.__version__, "torch_threads": torch.get_num_threads()}
    return build, versions


# --------------------------------------------------------------------------- pyctcdecode


def pyctcdecode_side(utts, tokens, blank, text, arpa):
    import logging
    from importlib.metadata import version

    import pyctcdecode

    logging.getLogger("pyctcdecode").setLevel(logging.ERROR)
    labels = ["" if i == blank else t for i, t in enumerate(tokens)]

    def build(cfg):
        if cfg["method"] != "beam":
            raise ValueError("pyctcdecode: beam search only")
        dec = pyctcdecode.build_ctcdecoder(
            labels, kenlm_model_path=arpa if cfg["lm"] else None, alpha=cfg["lm_weight"],
            beta=cfg["word_bonus"], unk_score_offset=cfg["unk_score_offset"], lm_score_boundary=True,
        )

        def run(_prep, xs):
            return [
                " ".join(
                    dec.decode(x, beam_width=cfg["beam"], beam_prune_logp=cfg["beam_prune_logp"],
                               token_min_logp=cfg["token_min_logp"]).split()
                )
                for x in xs
            ]

        return (lambda: None), run

    versions = {"pyctcdecode": version("pyctcdecode"), "numpy": np.__version__}
    try:
        versions["kenlm"] = version("kenlm")
    except Exception:  # noqa: BLE001 -- pypi-kenlm or none
        try:
            versions["kenlm"] = "pypi-kenlm " + version("pypi-kenlm")
        except Exception:  # noqa: BLE001
            versions["kenlm"] = None
    return build, versions


# --------------------------------------------------------------------------- flashlight


def flashlight_side(utts, tokens, blank, text, arpa):
    from importlib.metadata import version

    from flashlight.lib.text import decoder as fl
    from flashlight.lib.text.dictionary import Dictionary

    sil = tokens.index(" ")
    n_tok = len(tokens)

    def build(cfg):
        if cfg["method"] != "beam":
            raise ValueError("flashlight: beam search only")
        common = dict(
            beam_size=cfg["beam"], beam_size_token=cfg["beam_size_token"] or n_tok,
            beam_threshold=-cfg["beam_prune_logp"], sil_score=0.0, log_add=cfg["log_add"],
            criterion_type=fl.CriterionType.CTC,
        )
        if not cfg["lm"]:
            # lexicon-free search with no LM (torchaudio's ctc_decoder(lexicon=None, lm=None))
            lm = fl.ZeroLM()
            dec = fl.LexiconFreeDecoder(fl.LexiconFreeDecoderOptions(lm_weight=0.0, **common),
                                        lm, sil, blank, [])

            def run(_prep, xs):
                out = []
                for x in xs:
                    res = dec.decode(x.ctypes.data, x.shape[0], x.shape[1])[0]
                    ids = [g for g, _ in itertools.groupby(res.tokens)]
                    out.append(text([i for i in ids if i != blank]))
                return out

            return (lambda: None), run
        # Lexicon decoding with the word n-gram (torchaudio's ctc_decoder(lexicon=..., lm=ARPA)):
        # the lexicon is the LM's word list, each word spelled by its characters and the word
        # separator " " (the silence token), as in torchaudio's lexicon files ("word w o r d |").
        words = []
        with open(arpa, encoding="utf-8") as f:
            section = None
            for line in f:
                line = line.strip()
                if line.startswith("\\") and line.endswith("-grams:"):
                    section = line
                elif section == "\\1-grams:" and line and not line.startswith("\\"):
                    w = line.split()[1]
                    if w not in ("<s>", "</s>", "<unk>"):
                        words.append(w)
        word_dict = Dictionary()
        for w in [*words, "<unk>"]:
            word_dict.add_entry(w)
        unk = word_dict.get_index("<unk>")
        word_dict.set_default_index(unk)
        lm = fl.KenLM(arpa, word_dict)
        trie = fl.Trie(n_tok, sil)
        start = lm.start(False)
        for w in words:
            idx = word_dict.get_index(w)
            _, score = lm.score(start, idx)
            trie.insert([tokens.index(c) for c in w] + [sil], idx, score)
        trie.smear(fl.SmearingMode.MAX)
        opts = fl.LexiconDecoderOptions(
            lm_weight=cfg["lm_weight"] * math.log(10.0), word_score=cfg["word_bonus"],
            unk_score=float("-inf"), **common,
        )
        dec = fl.LexiconDecoder(opts, trie, lm, sil, blank, unk, [], False)
        # Every spelling ends in the separator; the model emits none after the last word, so
        # one frame in which the separator has probability 1 closes it (score + 0).
        end = np.full((1, n_tok), math.log(1e-15), dtype=np.float32)
        end[0, sil] = 0.0
        padded = [np.ascontiguousarray(np.concatenate([x, end])) for x in utts]

        def prepare():
            return padded

        def run(padded, xs):
            out = []
            for x in padded[: len(xs)]:
                res = dec.decode(x.ctypes.data, x.shape[0], x.shape[1])[0]
                out.append(" ".join(word_dict.get_entry(w) for w in res.words if w >= 0))
            return out

        build.keep.append((lm, trie, word_dict))  # pybind11: keep the LM alive with the decoder
        return prepare, run

    build.keep = []
    versions = {"flashlight-text": version("flashlight-text"), "numpy": np.__version__}
    return build, versions


def main() -> None:
    side, npz = sys.argv[1], sys.argv[2]
    arpa = sys.argv[3] if len(sys.argv) > 3 else None
    utts, tokens, blank, specials, unk, eos = load(npz)
    text = Text(tokens, specials, unk, eos)
    make = {"seqkit": seqkit_side, "pyctcdecode": pyctcdecode_side, "flashlight": flashlight_side}[side]
    build, versions = make(utts, tokens, blank, text, arpa)
    built: dict[str, tuple] = {}

    def handle(cmd: dict) -> dict:
        if cmd["op"] == "info":
            return {"versions": versions}
        cfg = cmd["cfg"]
        key = json.dumps(cfg, sort_keys=True)
        if key not in built:
            prepare, run = build(cfg)
            run(prepare(), utts[:5])  # warm-up, untimed
            built[key] = (prepare, run)
        prepare, run = built[key]
        prep = prepare()
        t0 = time.perf_counter()
        hyps = run(prep, utts)
        seconds = time.perf_counter() - t0
        return {"seconds": seconds, "hyps": hyps}

    serve(handle)


if __name__ == "__main__":
    main()
