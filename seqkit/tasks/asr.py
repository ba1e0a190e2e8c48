"""Speech recognition (``task: asr``): CTC, Listen-Attend-Spell and joint CTC/attention.

Data: JSONL manifests (:mod:`seqkit.data.manifest`; ``data_prep/an4.py``, ``fsdd.py`` and
``yesno.py`` write them).  Audio is read with soundfile, resampled to ``data.sample_rate``
and turned into log-mel filterbanks (:mod:`seqkit.data.audio`); features are cached in
``data.cache_dir`` (one file per manifest, speed factor and feature setting), so only the
first run computes them.  ``data.speed_perturb`` adds copies of the training set at other
speeds (Ko et al. 2015), ``data.vtlp`` copies with a warped frequency axis (Jaitly & Hinton
2013).  Normalisation is per utterance, per speaker or global (statistics of the training set,
stored in the checkpoint).

Units: characters (``data.units: char``; the space is a unit), whole words (``word``: for
small closed vocabularies such as digits) or SentencePiece pieces
(``sentencepiece``, trained on the training transcripts, stored in the checkpoint).

Training utterances that no CTC alignment can fit (fewer encoder frames than labels plus
repeats) or longer than ``data.max_frames`` are skipped and counted, never trained on as an
infinite or zeroed loss.

Decoding (``decode.method``): ``ctc_greedy``; ``ctc_beam`` (prefix beam search,
:func:`seqkit.search.ctc_prefix_beam_search`); ``attention`` (batched beam search over the
speller); ``joint`` (attention beam search with the CTC prefix score weighted
``decode.ctc_weight``, Watanabe et al. 2017); ``ctc_closed`` (the transcript of highest CTC
likelihood among the lines of ``decode.candidates``: exact isolated-word or command
recognition, :func:`seqkit.nn.ctc.ctc_candidate_log_likelihoods`).  Shallow fusion (``decode.lm``, weight
``decode.lm_weight``): an ARPA word n-gram with ``ctc_beam``, or a seqkit character RNN LM
(a ``language_model`` checkpoint over the same characters, ``|`` for the space) with any
beam method.  Dev evaluations during training use ``decode.eval_method``.

Metrics: WER and CER (jiwer); sentence accuracy (the share of utterances recognised exactly:
digit accuracy for isolated digits); the decoding real-time factor (decoding seconds per
second of audio, features precomputed).  ``seqkit evaluate`` also writes ``dev.hyp``,
``dev.ref`` and ``dev.ids`` (one line per utterance, so ``seqkit score wer --ref dev.ref --hyp
dev.hyp`` gives the same WER), ``dev.worst.txt`` (alignments of the worst utterances) and, with
``ctc_closed``, ``dev.scores.tsv`` (every candidate's log-likelihood per utterance:
:func:`write_candidate_scores`; tables of several models average into an ensemble).
``seqkit predict`` reads audio paths (one per line) and prints one transcript per path.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from ..data import BOS, EOS, PAD, UNK, Vocab, pad_sequences
from ..data.manifest import Utterance
from ..data.tokenizers import SentencePieceTokenizer, tokenizer_from_dict
from ..errors import ConfigError, DataError, Skips
from ..metrics import cer, wer
from ..models.asr import ASRModel, time_reduction
from ..nn.ctc import ctc_candidate_log_likelihoods, ctc_min_input_lengths
from ..nn.frontend import SpecAugment
from ..search import beam_search, ctc_prefix_beam_search, greedy_search
from ..search.ctc_prefix_score import CTCPrefixScorer
from ..search.lm_scorer import ArpaLM, MappedLMStepper, NeuralLMScorer
from ..textio import read_lines
from ..train.trainer import move_to
from .audio import AudioTask

# decoding methods without a beam or LM fusion (their metrics carry beam 1 and no LM)
_NO_SEARCH = ("ctc_greedy", "ctc_closed")


def write_candidate_scores(path: str | Path, ids: list[str], candidates: list[str], scores: torch.Tensor) -> None:
    """The ``ctc_closed`` scores as TSV: a header ``id`` + the K candidate transcripts, then one
    row per utterance: its id and K log-likelihoods ((N, K) ``scores``; ``-inf`` where the
    input is too short for a candidate)."""
    if scores.shape != (len(ids), len(candidates)):
        raise ValueError(f"scores {tuple(scores.shape)} for {len(ids)} ids x {len(candidates)} candidates")
    rows = ["\t".join(["id", *candidates])]
    rows += ["\t".join([i, *(f"{x:.6g}" for x in row)]) for i, row in zip(ids, scores.tolist())]
    Path(path).write_text("".join(r + "\n" for r in rows), encoding="utf-8")


def read_candidate_scores(path: str | Path) -> tuple[list[str], list[str], torch.Tensor]:
    """``(ids, candidates, scores (N, K))`` of a :func:`write_candidate_scores` file; a
    malformed row is a :class:`DataError` naming the file and line."""
    lines = read_lines(path)
    if not lines or not lines[0].startswith("id\t"):
        raise DataError("not a candidate score table (the header 'id<TAB>candidate...' is missing)", path, 1)
    cands = lines[0].split("\t")[1:]
    ids, rows = [], []
    for line, text in enumerate(lines[1:], 2):
        fields = text.split("\t")
        if len(fields) != len(cands) + 1:
            raise DataError(f"{len(fields) - 1} scores where the header names {len(cands)} candidates", path, line)
        try:
            rows.append([float(x) for x in fields[1:]])
        except ValueError:
            raise DataError(f"a score is not a number: {text!r}", path, line) from None
        ids.append(fields[0])
    if not ids:
        raise DataError("no utterances in the score table", path)
    return ids, cands, torch.tensor(rows)


@dataclass
class ASRDataConfig:
    train: str = "data/an4/train.jsonl"
    dev: str = "data/an4/dev.jsonl"
    units: Literal["char", "sentencepiece", "word"] = "char"  # word: one unit per word (small vocabularies)
    sp_vocab_size: int = 100
    lowercase: bool = False
    sample_rate: int = 16000
    features: Literal["fbank", "mfcc"] = "fbank"
    n_mels: int = 80
    n_mfcc: int = 13  # features: mfcc
    cmvn: Literal["global", "speaker", "utterance", "none"] = "global"
    speed_perturb: list[float] = field(default_factory=lambda: [1.0])
    vtlp: list[float] = field(default_factory=lambda: [1.0])  # VTLP warp factors; the training set
    # holds one copy per (speed, warp) pair
    cache_dir: str | None = None  # None: features are kept in memory only
    allow_outside_paths: bool = False  # manifest audio paths may leave the manifest's folder
    max_frames: int | None = None  # longer training utterances are skipped, counted


@dataclass
class ASRModelConfig:
    front: Literal["none", "stack", "conv"] = "stack"
    stack: int = 3
    conv_channels: int = 32
    encoder: Literal["blstm", "pyramidal"] = "blstm"
    enc_hidden: int = 256
    enc_layers: int = 4
    reductions: int | None = None  # pyramidal: pyramid layers (None: enc_layers - 1)
    dropout: float = 0.2
    ctc_weight: float = 1.0  # 1: CTC only; 0: attention only; between: joint training
    emb_dim: int = 128
    dec_hidden: int = 256
    dec_layers: int = 1
    attention: Literal["location", "additive", "dot", "general"] = "location"
    label_smoothing: float = 0.1
    specaugment: bool = True
    freq_masks: int = 2
    freq_width: int = 15
    time_masks: int = 2
    time_width: int = 40


@dataclass
class ASRDecodeConfig:
    method: Literal["ctc_greedy", "ctc_beam", "ctc_closed", "attention", "joint"] = "ctc_greedy"
    eval_method: Literal["ctc_greedy", "ctc_beam", "ctc_closed", "attention", "joint"] | None = None  # None: greedy
    beam_size: int = 10
    ctc_weight: float = 0.3  # joint decoding: weight of the CTC prefix score
    length_penalty: float = 0.0  # GNMT alpha for attention / joint beam search
    max_len_ratio: float = 1.0  # attention decoding: at most ratio * encoder frames + 5 tokens
    lm: str | None = None  # shallow fusion: an ARPA n-gram over words (ctc_beam), or a seqkit
    # language_model checkpoint over the output units (every method but ctc_greedy), e.g. the
    # character LM of recipes/asr/an4/char_lm.yaml ("|" is the word boundary)
    lm_weight: float = 0.5
    word_bonus: float = 0.0  # ctc_beam: added per word
    candidates: str | None = None  # ctc_closed: a file of allowed transcripts, one per line; each
    # utterance gets the one of highest CTC likelihood (exact closed-vocabulary decoding)
    batch_size: int = 32


class ASRTask(AudioTask):
    name = "asr"
    DataConfig = ASRDataConfig
    ModelConfig = ASRModelConfig
    DecodeConfig = ASRDecodeConfig

    def __init__(self, cfg):
        super().__init__(cfg)
        self.vocab: Vocab | None = None
        self.sp = None
        self._dev_cache: tuple | None = None
        self._lm: ArpaLM | tuple | None = None  # see _load_lm
        self._cands: tuple[str, list[list[int]]] | None = None  # see _candidates
        m, dc = cfg.model, cfg.decode
        needs = {"ctc_greedy": "ctc", "ctc_beam": "ctc", "ctc_closed": "ctc", "attention": "att", "joint": "both"}
        for key, method in (("decode.method", dc.method), ("decode.eval_method", dc.eval_method)):
            need = needs.get(method)
            if (need in ("ctc", "both") and m.ctc_weight == 0) or (need in ("att", "both") and m.ctc_weight == 1):
                raise ConfigError(f"{cfg.source}: key '{key}': {method!r} needs a model with "
                                  f"{'a CTC head' if need == 'ctc' else 'an attention decoder' if need == 'att' else 'both heads'}"
                                  f" (model.ctc_weight={m.ctc_weight})")
        for key in ("speed_perturb", "vtlp"):
            factors = getattr(cfg.data, key)
            if not factors or any(f <= 0 for f in factors):
                raise ConfigError(f"{cfg.source}: key 'data.{key}': positive factors expected")

    # ------------------------------------------------------------------ text units
    def _norm(self, text: str) -> str:
        text = " ".join(text.split())
        return text.lower() if self.cfg.data.lowercase else text

    def units(self, text: str) -> list[str]:
        text = self._norm(text)
        if self.sp is not None:
            return self.sp.encode(text)
        if self.cfg.data.units == "word":
            return text.split()
        return list(text)

    def detok(self, ids: list[int]) -> str:
        toks = self.vocab.decode(ids)
        if self.sp is not None:
            return self.sp.decode(toks)
        if self.cfg.data.units == "word":
            return " ".join(toks)
        return " ".join("".join(toks).split())

    # ------------------------------------------------------------------ state
    def build_state(self) -> None:
        d = self.cfg.data
        utts = self._manifest(d.train, "data.train")
        if not utts:
            raise ConfigError(f"{self.cfg.source}: key 'data.train': no utterances in {d.train}")
        texts = [self._norm(u.text) for u in utts]
        if d.units == "sentencepiece":
            out = Path(self.cfg.train.output_dir)
            self.sp = SentencePieceTokenizer.train(texts=texts, model_prefix=out / "spm", vocab_size=d.sp_vocab_size,
                                                   model_type="unigram", seed=self.cfg.train.seed)
        self.vocab = Vocab.build([self.units(t) for t in texts], 1, None, (PAD, UNK, BOS, EOS))
        self.fit_cmvn(utts, "train")
        print(f"asr: {len(utts)} training utterances, {len(self.vocab)} {d.units} units", file=sys.stderr)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "vocab": self.vocab.to_dict(),
                "sp": None if self.sp is None else self.sp.to_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.vocab = Vocab.from_dict(state["vocab"])
        self.sp = None if state["sp"] is None else tokenizer_from_dict(state["sp"])

    # ------------------------------------------------------------------ features
    def collate(self, items: list[dict]) -> dict:
        x, lengths = self.pad_features(items)
        batch = {"feats": x, "feat_lengths": lengths}
        if "targets" in items[0]:
            v = self.vocab
            tg = [it["targets"] for it in items]
            batch["targets"], batch["target_lengths"] = pad_sequences(tg, v.pad_id)
            batch["tgt_in"], _ = pad_sequences([[v.bos_id, *t] for t in tg], v.pad_id)
            batch["tgt_out"], _ = pad_sequences([[*t, v.eos_id] for t in tg], v.pad_id)
        return batch

    def _items(self, utts: list[Utterance], speed: float, name: str, skips: Skips | None,
               manifest: str, warp: float = 1.0) -> list[dict]:
        """Encoded examples; with ``skips``, drop (and count) the ones CTC cannot fit."""
        feats = self.normalize_all(self._features(utts, name, speed, warp), [u.speaker for u in utts])
        d, m = self.cfg.data, self.cfg.model
        k = time_reduction(m.front, m.stack, m.encoder, m.enc_layers, m.reductions)
        items = []
        for line, (u, f) in enumerate(zip(utts, feats), 1):
            ids = self.vocab.encode(self.units(u.text))
            it = {"feats": f, "targets": ids}
            if skips is not None:
                frames = -(-f.size(0) // k)  # encoder frames
                need = int(ctc_min_input_lengths(torch.tensor([ids]), torch.tensor([len(ids)]))[0])
                if d.max_frames is not None and f.size(0) > d.max_frames:
                    skips.add(manifest, line, f"{u.id}: longer than data.max_frames={d.max_frames}")
                    continue
                if m.ctc_weight > 0 and frames < need:
                    copy = f"speed {speed}" + ("" if warp == 1.0 else f", warp {warp}")
                    skips.add(manifest, line, f"{u.id} ({copy}): {frames} encoder frames < {need} needed by CTC")
                    continue
            items.append(it)
        return items

    def training_data(self):
        d = self.cfg.data
        utts = self._manifest(d.train, "data.train")
        skips = Skips()
        items = []
        for speed in d.speed_perturb:
            for warp in d.vtlp:
                items += self._items(utts, speed, "train", skips, d.train, warp)
        if not items:
            raise ConfigError(f"{self.cfg.source}: key 'data.train': every training utterance of {d.train} was "
                              f"skipped ({skips.summary()})")
        if len(skips):
            print(f"{d.train}: {skips.summary()}", file=sys.stderr)
        return items, [it["feats"].size(0) for it in items], self.collate

    # ------------------------------------------------------------------ model
    def build_model(self) -> ASRModel:
        m = self.cfg.model
        spec = None
        if m.specaugment:
            spec = SpecAugment(m.freq_masks, m.freq_width, m.time_masks, m.time_width)
        return ASRModel(
            self.feature_options.dim, len(self.vocab), m.front, m.stack, m.conv_channels, m.encoder, m.enc_hidden,
            m.enc_layers, m.reductions, m.dropout, m.ctc_weight, m.emb_dim, m.dec_hidden, m.dec_layers, m.attention,
            m.label_smoothing, spec, pad_id=self.vocab.pad_id,
        )

    # ------------------------------------------------------------------ decoding
    def _load_lm(self):
        """``None``, an :class:`ArpaLM`, or ``(RNNLM, {unit: LM id}, LM end id, LM unk id)``."""
        path = self.cfg.decode.lm
        if path is None or self._lm is not None:
            return self._lm
        key = "decode.lm"
        if not Path(path).is_file():
            raise ConfigError(f"{self.cfg.source}: key '{key}': file not found: {path}")
        if path.endswith(".arpa"):
            self._lm = ArpaLM.from_file(path)
            return self._lm
        from ..config import build_config
        from ..tasks.lm import EOS as LM_EOS
        from ..train.checkpoint import load_checkpoint
        from .base import load_for_inference

        raw = dict(load_checkpoint(path).get("config", {}))
        raw.pop("source", None)
        if raw.get("task") != "language_model":
            raise ConfigError(f"{self.cfg.source}: key '{key}': {path} is a {raw.get('task')!r} checkpoint, "
                              "not an ARPA file or a language_model checkpoint")
        threads = torch.get_num_threads()
        lm_task, lm_model = load_for_inference(build_config(raw, where=path), path)
        torch.set_num_threads(threads)
        lm_vocab = lm_task.vocab
        v = self.vocab
        # every unit but PAD (the blank), BOS and EOS; one the LM lacks is its <unk>
        units = {unit: lm_vocab.index("|" if unit == " " else unit)
                 for i, unit in enumerate(v.tokens) if i not in (v.pad_id, v.bos_id, v.eos_id)}
        self._lm = (lm_model.lm, units, lm_vocab.index(LM_EOS), lm_vocab.unk_id)
        return self._lm

    def _candidates(self) -> list[list[int]]:
        """The unit ids of every line of ``decode.candidates`` (read once)."""
        path = self.cfg.decode.candidates
        if self._cands is not None and self._cands[0] == path:
            return self._cands[1]
        key = "decode.candidates"
        if path is None:
            raise ConfigError(f"{self.cfg.source}: key '{key}': decode.method ctc_closed needs a file of "
                              "candidate transcripts")
        if not Path(path).is_file():
            raise ConfigError(f"{self.cfg.source}: key '{key}': file not found: {path}")
        cands, seen = [], set()
        for line, text in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            text = self._norm(text)
            if not text or text in seen:
                continue
            units = self.units(text)
            unknown = sorted({u for u in units if u not in self.vocab})
            if unknown:
                raise DataError(f"candidate {text!r} holds units the model does not know: {unknown}", path, line)
            seen.add(text)
            cands.append(self.vocab.encode(units))
        if not cands:
            raise DataError("no candidate transcripts", path)
        self._cands = (path, cands)
        return cands

    def _lm_stepper(self) -> MappedLMStepper | None:
        """The neural LM as a beam-search scorer over this task's vocabulary."""
        lm = self._load_lm()
        if lm is None:
            return None
        if isinstance(lm, ArpaLM):
            raise ConfigError(f"{self.cfg.source}: key 'decode.lm': an ARPA word LM fuses with ctc_beam only; "
                              f"{self.cfg.decode.method!r} needs a language_model checkpoint over the output units")
        model, units, eos, _ = lm
        v = self.vocab
        index = [-1] * len(v)
        for unit, i in units.items():
            index[v.index(unit)] = i
        index[v.bos_id] = index[v.eos_id] = eos  # the LM's line boundary starts and ends
        return MappedLMStepper(model, index)

    def decode(self, model, items: list[dict], method: str) -> list[str]:
        """Transcripts of ``items`` (dicts with normalised ``feats``) by ``method``."""
        if method == "ctc_closed":
            return self._closed_transcripts(self.closed_scores(model, items))
        dc = self.cfg.decode
        v = self.vocab
        out = [""] * len(items)
        tokens = [v.token(i) for i in range(len(v))]
        if self.cfg.data.units == "word":  # every unit starts a word
            tokens = ["\u2581" + t for t in tokens]
            delim, prefix = None, "\u2581"
        elif self.sp is None:  # characters: the space token separates words
            delim, prefix = " ", None
        else:
            delim, prefix = None, "\u2581"
        with torch.inference_mode(False), torch.no_grad():
            for idx, enc, enc_lengths in self._encoded_batches(model, items):
                if method == "ctc_greedy":
                    hyps = model.ctc.greedy(model.ctc_log_probs(enc, enc_lengths), enc_lengths)
                elif method == "ctc_beam":
                    lp = model.ctc_log_probs(enc, enc_lengths).float().cpu()
                    lm = self._load_lm()
                    unit = "word"
                    if isinstance(lm, tuple):
                        model_lm, units, eos, unk = lm
                        lm = NeuralLMScorer(model_lm, bos=eos, eos=eos, vocab=units, unk=unk)
                        unit = "token"
                    hyps = [
                        ctc_prefix_beam_search(lp[j], beam=dc.beam_size, blank=model.ctc.blank,
                                               length=int(enc_lengths[j]), tokens=tokens, lm=lm, lm_unit=unit,
                                               lm_weight=dc.lm_weight, word_bonus=dc.word_bonus,
                                               word_delimiter=delim, word_prefix=prefix, n_best=1)[0].tokens
                        for j in range(len(idx))
                    ]
                else:
                    hyps = self._attention_search(model, enc, enc_lengths, method)
                for j, i in enumerate(idx):
                    out[i] = self.detok(hyps[j])
        return out

    def _batch_indices(self, items: list[dict]) -> list[list[int]]:
        """Indices into ``items`` in batches of ``decode.batch_size``, shortest first."""
        order = sorted(range(len(items)), key=lambda i: items[i]["feats"].size(0))
        bs = self.cfg.decode.batch_size
        return [order[start : start + bs] for start in range(0, len(order), bs)]

    def _encoded_batches(self, model, items: list[dict]):
        """``(indices into items, enc (B, T', H), enc_lengths (B,))`` per :meth:`_batch_indices` batch."""
        device = next(model.parameters()).device
        for idx in self._batch_indices(items):
            batch = move_to(self.collate([{"feats": items[i]["feats"]} for i in idx]), device)
            yield (idx, *model.encode(batch["feats"], batch["feat_lengths"]))

    @torch.no_grad()
    def closed_scores(self, model, items: list[dict]) -> torch.Tensor:
        """CTC log-likelihood of every ``decode.candidates`` line for every item: (N, K) float.

        The argmax per row is the ``ctc_closed`` transcript; rows of several models can be
        summed (a product-of-experts ensemble, see :func:`read_candidate_scores`)."""
        cands = self._candidates()
        with torch.inference_mode(False):  # (a caller's inference tensor could not be written below)
            scores = torch.empty(len(items), len(cands))
            for idx, enc, enc_lengths in self._encoded_batches(model, items):
                scores[idx] = ctc_candidate_log_likelihoods(model.ctc_log_probs(enc, enc_lengths), enc_lengths,
                                                            cands, model.ctc.blank).float().cpu()  # (B, K)
        return scores

    def _closed_transcripts(self, scores: torch.Tensor) -> list[str]:
        """The best candidate of each row of (N, K) :meth:`closed_scores`."""
        cands = self._candidates()
        return [self.detok(cands[k]) for k in scores.argmax(-1).tolist()]

    def _attention_search(self, model, enc, enc_lengths, method: str) -> list[list[int]]:
        dc = self.cfg.decode
        v = self.vocab
        stepper, state = model.start(enc, enc_lengths)
        max_len = (enc_lengths.float() * dc.max_len_ratio).long() + 5
        ctc = None
        if method == "joint":
            scorer = CTCPrefixScorer(model.ctc_log_probs(enc, enc_lengths), enc_lengths, blank=model.ctc.blank,
                                     eos=v.eos_id)
            ctc = (dc.ctc_weight, scorer, scorer.init_state())
        if dc.beam_size <= 1 and ctc is None and dc.lm is None:
            res = greedy_search(stepper, state, bos=v.bos_id, eos=v.eos_id, max_len=max_len, pad=v.pad_id)
            return [res.tokens[j, : int(res.lengths[j])].tolist() for j in range(enc.size(0))]
        scorers = []
        lm = self._lm_stepper()
        if lm is not None:
            scorers.append((dc.lm_weight, lm, lm.init_state(enc.size(0))))
        res = beam_search(stepper, state, beam=max(dc.beam_size, 1), bos=v.bos_id, eos=v.eos_id, max_len=max_len,
                          length_penalty=dc.length_penalty, ctc=ctc, scorers=scorers)
        return [sent[0].tokens for sent in res]

    # ------------------------------------------------------------------ evaluation
    def _dev(self, path: str, key: str) -> tuple[list[Utterance], list[dict]]:
        if self._dev_cache is not None and self._dev_cache[0] == path:
            return self._dev_cache[1], self._dev_cache[2]
        utts = self._manifest(path, key)
        items = self._items(utts, 1.0, Path(path).stem, None, path)
        self._dev_cache = (path, utts, items)
        return utts, items

    @torch.no_grad()
    def dev_loss(self, model, items: list[dict]) -> float:
        """Token-mean training loss on ``items`` (eval mode: no dropout, no SpecAugment)."""
        device = next(model.parameters()).device
        total, n = 0.0, 0
        for idx in self._batch_indices(items):
            out = model(move_to(self.collate([items[i] for i in idx]), device))
            total += float(out["loss"]) * out["n"]
            n += out["n"]
        return total / max(n, 1)

    def _greedy_method(self) -> str:
        return "ctc_greedy" if self.cfg.model.ctc_weight > 0 else "attention"

    def evaluate(self, model, split: str | None = None, out_prefix: Path | None = None) -> dict:
        dc = self.cfg.decode
        path = split or self.cfg.data.dev
        utts, items = self._dev(path, "data.dev" if split is None else "split")
        if not utts:
            raise DataError("no utterances to evaluate", path)
        if out_prefix is not None:
            method = dc.method
        else:
            method = dc.eval_method or self._greedy_method()
        t0 = time.perf_counter()
        scores = None
        if method == "ctc_closed":
            scores = self.closed_scores(model, items)  # (N, K)
            hyps = self._closed_transcripts(scores)
        else:
            hyps = self.decode(model, items, method)
        seconds = time.perf_counter() - t0
        refs = [self._norm(u.text) for u in utts]
        w = wer(refs, hyps, worst=10)
        c = cer(refs, hyps, worst=0)
        audio = sum(u.duration for u in utts)
        exact = sum(" ".join(h.split()) == r for h, r in zip(hyps, refs))
        metrics = {"wer": w["score"], "cer": c["score"], "sentence_accuracy": exact / max(len(refs), 1),
                   "loss": self.dev_loss(model, items), "method": method,
                   "beam": dc.beam_size if method not in _NO_SEARCH else 1,
                   "utterances": len(utts), "ref_words": w["ref_words"], "errors": w["errors"],
                   "decode_seconds": seconds, "audio_seconds": audio, "rtf": seconds / max(audio, 1e-9),
                   "threads": torch.get_num_threads()}
        if method not in _NO_SEARCH and dc.lm:
            metrics.update(lm=dc.lm, lm_weight=dc.lm_weight, word_bonus=dc.word_bonus)
        if method == "joint":
            metrics["ctc_weight"] = dc.ctc_weight
        if method == "ctc_closed":
            metrics.update(candidates=dc.candidates, n_candidates=len(self._candidates()))
        if out_prefix is not None:
            out_prefix = Path(out_prefix)
            out_prefix.parent.mkdir(parents=True, exist_ok=True)
            # one line per utterance in manifest order (seqkit score wer --ref .ref --hyp .hyp)
            Path(f"{out_prefix}.hyp").write_text("".join(h + "\n" for h in hyps), encoding="utf-8")
            Path(f"{out_prefix}.ref").write_text("".join(r + "\n" for r in refs), encoding="utf-8")
            Path(f"{out_prefix}.ids").write_text("".join(u.id + "\n" for u in utts), encoding="utf-8")
            Path(f"{out_prefix}.worst.txt").write_text(self._worst_report(w, utts), encoding="utf-8")
            if scores is not None:
                write_candidate_scores(f"{out_prefix}.scores.tsv", [u.id for u in utts],
                                       [self.detok(c) for c in self._candidates()], scores)
        return metrics

    @staticmethod
    def _worst_report(w: dict, utts: list[Utterance]) -> str:
        lines = [f"WER {100 * w['score']:.2f}% ({w['errors']} errors / {w['ref_words']} words); "
                 f"the {len(w['worst'])} utterances with the most errors:\n"]
        for entry in w["worst"]:
            u = utts[entry["index"]]
            lines.append(f"{u.id} ({u.speaker}): {entry['errors']} errors\n{entry['alignment']}\n")
        return "\n".join(lines)

    def predict(self, model, lines: list[str]) -> list[str]:
        """One transcript per ``path`` or ``path start end`` line; an empty line gives an
        empty line."""
        items, where = self.input_items(lines)
        out = [""] * len(lines)
        for n, text in zip(where, self.decode(model, items, self.cfg.decode.method)):
            out[n] = text
        return out
