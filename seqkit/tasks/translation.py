"""Machine translation with an attentional RNN encoder-decoder (``task: translation``).

Data: line-aligned raw text files ``{prefix}.{lang}``: ``data.train`` / ``data.dev`` are
prefixes and ``data.src_lang`` / ``data.tgt_lang`` the suffixes (JoeyNMT's layout; what
``data_prep/multi30k.py`` writes).  Text is split into SentencePiece pieces (``data.tokenizer:
sentencepiece``; one model over both sides with ``data.joint_vocab``, else one per side, trained
on the training text only and stored in every checkpoint) or on whitespace (``word``, with a
vocabulary cut at ``min_freq`` / ``max_vocab``: a setting with real OOVs, where copying helps).
Training pairs with a side longer than ``data.max_len`` tokens are skipped and counted; pairs
with an empty side are skipped and counted by the reader.

Model: :class:`seqkit.models.seq2seq.Seq2Seq`.  Search options live in the ``decode:`` section
(:class:`TranslationDecodeConfig`): dev evaluations during training decode with
``eval_beam_size`` (1 = greedy, fast); ``seqkit evaluate`` and ``seqkit predict`` with
``beam_size`` and the GNMT length penalty ``length_penalty``.  Metrics: BLEU and chrF from
sacrebleu on detokenised output (with their signatures), and the teacher-forced dev
perplexity.  ``seqkit evaluate`` writes ``dev.hyp`` (detokenised), ``dev.ref`` and
``dev_metrics.json``.
"""

from __future__ import annotations

import math
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from ..data import BOS, EOS, PAD, UNK, Vocab, pad_sequences
from ..data.readers import read_parallel
from ..data.tokenizers import SentencePieceTokenizer, WordTokenizer, tokenizer_from_dict
from ..errors import ConfigError, DataError, Skips
from ..metrics import bleu, chrf
from ..models.seq2seq import Seq2Seq
from ..nn.copy import collate_copy_batch, extended_to_tokens
from ..search import beam_search, greedy_search
from ..train.trainer import move_to
from .base import Task


@dataclass
class TranslationDataConfig:
    train: str = "data/multi30k/train"  # prefix: files train.{src_lang}, train.{tgt_lang}
    dev: str = "data/multi30k/val"
    src_lang: str = "de"
    tgt_lang: str = "en"
    tokenizer: Literal["sentencepiece", "word"] = "sentencepiece"
    joint_vocab: bool = True  # one tokenizer + vocabulary for both sides
    sp_vocab_size: int = 8000  # per model (joint: for both sides together)
    sp_model_type: Literal["unigram", "bpe"] = "unigram"
    min_freq: int = 1  # word tokenizer: rarer training words are <unk>
    max_vocab: int | None = None  # word tokenizer: keep the most frequent words only
    split_punct: bool = False  # word tokenizer: split punctuation off words (sacreBLEU 13a style)
    max_len: int = 100  # training pairs with a longer side (in tokens) are skipped, counted


@dataclass
class TranslationModelConfig:
    emb_dim: int = 256
    enc_hidden: int = 256  # per direction
    dec_hidden: int = 256
    enc_layers: int = 1
    dec_layers: int = 1
    cell: Literal["lstm", "gru"] = "lstm"
    attention: Literal["additive", "dot", "general", "location"] = "additive"
    dropout: float = 0.3
    label_smoothing: float = 0.1
    tie_embeddings: bool = True  # decoder input/output embeddings (needs dec_hidden == emb_dim)
    share_embeddings: bool = False  # encoder and decoder embeddings (needs joint_vocab)
    copy: Literal["none", "pointer_generator", "copynet"] = "none"  # needs joint_vocab
    coverage: bool = False  # pointer_generator only
    coverage_weight: float = 1.0


@dataclass
class TranslationDecodeConfig:
    beam_size: int = 5  # seqkit evaluate / predict
    eval_beam_size: int = 1  # dev evaluations during training (1: greedy)
    length_penalty: float = 1.0  # GNMT alpha
    max_len_ratio: float = 1.5  # at most ratio * source tokens + max_len_extra output tokens
    max_len_extra: int = 10
    batch_size: int = 64  # sentences decoded at once
    nbest: int = 1  # seqkit predict: > 1 prints the n best per input as Moses n-best lines
    cuda_graph: bool = True  # on a GPU, beam steps replayed as one CUDA graph (models without copy)


class TranslationTask(Task):
    name = "translation"
    DataConfig = TranslationDataConfig
    ModelConfig = TranslationModelConfig
    DecodeConfig = TranslationDecodeConfig

    def __init__(self, cfg):
        super().__init__(cfg)
        self.src_tok = self.tgt_tok = None
        self.src_vocab: Vocab | None = None
        self.tgt_vocab: Vocab | None = None
        self._dev_cache: tuple | None = None
        m, d = cfg.model, cfg.data
        if (m.copy != "none" or m.share_embeddings) and not d.joint_vocab:
            key = "model.copy" if m.copy != "none" else "model.share_embeddings"
            raise ConfigError(f"{cfg.source}: key '{key}' needs data.joint_vocab: true")
        if cfg.decode.nbest > max(cfg.decode.beam_size, 1):
            raise ConfigError(f"{cfg.source}: key 'decode.nbest' ({cfg.decode.nbest}) exceeds decode.beam_size "
                              f"({cfg.decode.beam_size})")
        if m.tie_embeddings and m.dec_hidden != m.emb_dim:
            raise ConfigError(
                f"{cfg.source}: key 'model.tie_embeddings' needs model.dec_hidden == model.emb_dim "
                f"({m.dec_hidden} != {m.emb_dim})"
            )

    # ------------------------------------------------------------------ data
    def _paths(self, prefix: str, key: str) -> tuple[Path, Path]:
        d = self.cfg.data
        return (self.check_file(key, f"{prefix}.{d.src_lang}"), self.check_file(key, f"{prefix}.{d.tgt_lang}"))

    def _read(self, prefix: str, key: str, skips: Skips) -> list[tuple[str, str, int]]:
        return read_parallel(*self._paths(prefix, key), skips=skips)

    def build_state(self) -> None:
        d = self.cfg.data
        skips = Skips()
        pairs = self._read(d.train, "data.train", skips)
        if not pairs:
            raise ConfigError(f"{self.cfg.source}: key 'data.train': no sentence pairs in {d.train}.*")
        src_texts = [s for s, _, _ in pairs]
        tgt_texts = [t for _, t, _ in pairs]
        out = Path(self.cfg.train.output_dir)
        if d.tokenizer == "sentencepiece":
            def train_sp(texts, name):
                return SentencePieceTokenizer.train(
                    texts=texts, model_prefix=out / name, vocab_size=d.sp_vocab_size,
                    model_type=d.sp_model_type, seed=self.cfg.train.seed,
                )
            if d.joint_vocab:
                self.src_tok = self.tgt_tok = train_sp(src_texts + tgt_texts, "spm")
            else:
                self.src_tok = train_sp(src_texts, f"spm.{d.src_lang}")
                self.tgt_tok = train_sp(tgt_texts, f"spm.{d.tgt_lang}")
        else:
            self.src_tok = self.tgt_tok = WordTokenizer(split_punct=d.split_punct)
        specials = (PAD, UNK, BOS, EOS)
        src_seqs = [self.src_tok.encode(s) for s in src_texts]
        tgt_seqs = [self.tgt_tok.encode(t) for t in tgt_texts]
        if d.joint_vocab:
            self.src_vocab = self.tgt_vocab = Vocab.build(src_seqs + tgt_seqs, d.min_freq, d.max_vocab, specials)
        else:
            self.src_vocab = Vocab.build(src_seqs, d.min_freq, d.max_vocab, specials)
            self.tgt_vocab = Vocab.build(tgt_seqs, d.min_freq, d.max_vocab, specials)
        print(f"translation: {len(pairs)} training pairs, vocabulary {len(self.src_vocab)} "
              f"({d.src_lang}) / {len(self.tgt_vocab)} ({d.tgt_lang}) {d.tokenizer} tokens"
              + (f"; {skips.summary()}" if len(skips) else ""), file=sys.stderr)

    def state_dict(self) -> dict:
        joint = self.src_tok is self.tgt_tok
        return {
            "src_tokenizer": self.src_tok.to_dict(),
            "tgt_tokenizer": None if joint else self.tgt_tok.to_dict(),
            "src_vocab": self.src_vocab.to_dict(),
            "tgt_vocab": None if self.src_vocab is self.tgt_vocab else self.tgt_vocab.to_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.src_tok = tokenizer_from_dict(state["src_tokenizer"])
        self.tgt_tok = self.src_tok if state["tgt_tokenizer"] is None else tokenizer_from_dict(state["tgt_tokenizer"])
        self.src_vocab = Vocab.from_dict(state["src_vocab"])
        self.tgt_vocab = self.src_vocab if state["tgt_vocab"] is None else Vocab.from_dict(state["tgt_vocab"])

    def encode(self, src: str, tgt: str | None = None) -> dict:
        item = {"src": self.src_tok.encode(src) or [UNK]}
        if tgt is not None:
            item["tgt"] = self.tgt_tok.encode(tgt)
        return item

    def collate(self, items: list[dict]) -> dict:
        has_tgt = "tgt" in items[0]
        if self.cfg.model.copy != "none":
            cb = collate_copy_batch([it["src"] for it in items], self.tgt_vocab,
                                    [it["tgt"] for it in items] if has_tgt else None)
            batch = {"src": cb.src_ids, "src_ext": cb.src_ext_ids, "src_lengths": cb.src_lengths,
                     "n_oov": cb.n_oov, "oovs": cb.oovs}
            if has_tgt:
                batch.update(tgt_in=cb.tgt_in, tgt_out=cb.tgt_out)
            return batch
        pad = self.src_vocab.pad_id
        src, lengths = pad_sequences([self.src_vocab.encode(it["src"]) for it in items], pad)
        batch = {"src": src, "src_lengths": lengths}
        if has_tgt:
            v = self.tgt_vocab
            tgt = [v.encode(it["tgt"]) for it in items]
            batch["tgt_in"], _ = pad_sequences([[v.bos_id, *t] for t in tgt], pad)
            batch["tgt_out"], _ = pad_sequences([[*t, v.eos_id] for t in tgt], pad)
        return batch

    def training_data(self):
        d = self.cfg.data
        skips = Skips()
        items, lengths = [], []
        src_path, _ = self._paths(d.train, "data.train")
        for s, t, line in self._read(d.train, "data.train", skips):
            it = self.encode(s, t)
            n = max(len(it["src"]), len(it["tgt"]) + 1)  # target + EOS
            if n > d.max_len:
                skips.add(src_path, line, f"longer than data.max_len={d.max_len} tokens")
                continue
            items.append(it)
            lengths.append(n)
        if not items:
            raise ConfigError(f"{self.cfg.source}: key 'data.train': every training pair of {d.train}.* was "
                              f"skipped ({skips.summary()})")
        if len(skips):
            print(f"{d.train}: {skips.summary()}", file=sys.stderr)
        return items, lengths, self.collate

    # ------------------------------------------------------------------ model
    def build_model(self) -> Seq2Seq:
        m = self.cfg.model
        return Seq2Seq(
            len(self.src_vocab), len(self.tgt_vocab), m.emb_dim, m.enc_hidden, m.dec_hidden,
            m.enc_layers, m.dec_layers, m.cell, m.attention, m.dropout, m.label_smoothing,
            m.tie_embeddings, m.share_embeddings, m.copy, m.coverage, m.coverage_weight,
            pad_id=self.src_vocab.pad_id, unk_id=self.tgt_vocab.unk_id,
        )

    # ------------------------------------------------------------------ inference
    def _batches(self, items: list[dict]):
        """Index lists of up to ``decode.batch_size`` items, by source length."""
        order = sorted(range(len(items)), key=lambda i: len(items[i]["src"]))
        bs = self.cfg.decode.batch_size
        return (order[start : start + bs] for start in range(0, len(order), bs))

    def _detok(self, ids: list[int], oovs: list[str] | None) -> str:
        if oovs is not None:
            toks = extended_to_tokens(ids, self.tgt_vocab, oovs)
        else:
            toks = self.tgt_vocab.decode(ids)
        return self.tgt_tok.decode(toks)

    def translate(self, model, items: list[dict], beam: int, nbest: int = 1,
                  return_attention: bool = False) -> list[list[dict]]:
        """Per item, ``nbest`` dicts ``{"text", "tokens", "score"}`` best first (with
        ``return_attention``: also ``"attention"``, a (len(tokens) + 1, S) tensor, for 1-best)."""
        results: list[list[dict]] = [[] for _ in items]
        with torch.inference_mode(False), torch.no_grad():  # normal tensors: beam search can
            self._translate(model, items, beam, nbest, return_attention, results)  # skip copies
        return results

    def _translate(self, model, items, beam, nbest, return_attention, results) -> None:
        dc = self.cfg.decode
        device = next(model.parameters()).device
        v = self.tgt_vocab
        for idx in self._batches(items):
            raw = self.collate([{"src": items[i]["src"]} for i in idx])
            batch = move_to(raw, device)
            oovs = raw.get("oovs")
            max_len = (raw["src_lengths"].float() * dc.max_len_ratio).long() + dc.max_len_extra
            stepper, state = model.start(batch)
            if beam <= 1:
                res = greedy_search(stepper, state, bos=v.bos_id, eos=v.eos_id, max_len=max_len.to(device),
                                    pad=v.pad_id)
                hyps = [[(res.tokens[j, : int(res.lengths[j])].tolist(), float(res.scores[j]))]
                        for j in range(len(idx))]
            else:
                out = beam_search(stepper, state, beam=beam, bos=v.bos_id, eos=v.eos_id,
                                  max_len=max_len.to(device), length_penalty=dc.length_penalty, nbest=nbest,
                                  cuda_graph=dc.cuda_graph and self.cfg.model.copy == "none")
                hyps = [[(h.tokens, h.score) for h in sent] for sent in out]
            for j, i in enumerate(idx):
                for toks, score in hyps[j]:
                    results[i].append({"text": self._detok(toks, None if oovs is None else oovs[j]),
                                       "tokens": toks, "score": score})
            if return_attention:
                self._attach_attention(model, batch, idx, results)

    def _attach_attention(self, model, batch: dict, idx: list[int], results: list[list[dict]]) -> None:
        """Teacher-force each 1-best output to get its attention matrix (target x source)."""
        v = self.tgt_vocab
        outs = [results[i][0]["tokens"] for i in idx]
        tgt_in, _ = pad_sequences([[v.bos_id, *t] for t in outs], v.pad_id)
        tgt_out, _ = pad_sequences([[*t, v.eos_id] for t in outs], v.pad_id)
        device = batch["src"].device
        weights = model({**batch, "tgt_in": tgt_in.to(device), "tgt_out": tgt_out.to(device)})["weights"]
        for j, i in enumerate(idx):
            n, s = len(outs[j]) + 1, int(batch["src_lengths"][j])
            results[i][0]["attention"] = weights[j, :n, :s].float().cpu()

    def _dev(self, prefix: str, key: str):
        if self._dev_cache is not None and self._dev_cache[0] == prefix:
            return self._dev_cache[1:]
        skips = Skips()
        rows = self._read(prefix, key, skips)
        items = [self.encode(s, t) for s, t, _ in rows]
        self._dev_cache = (prefix, rows, items, skips)
        return rows, items, skips

    @torch.no_grad()
    def dev_loss(self, model, items: list[dict]) -> tuple[float, int]:
        """Summed teacher-forced target NLL (no label smoothing) and the number of tokens."""
        device = next(model.parameters()).device
        total, n = 0.0, 0
        smoothing, model.label_smoothing = model.label_smoothing, 0.0
        try:
            for idx in self._batches(items):
                out = model(move_to(self.collate([items[i] for i in idx]), device))
                total += float(out["loss"]) * out["n"]
                n += out["n"]
        finally:
            model.label_smoothing = smoothing
        return total, n

    def evaluate(self, model, split: str | None = None, out_prefix: Path | None = None) -> dict:
        prefix = split or self.cfg.data.dev
        rows, items, skips = self._dev(prefix, "data.dev" if split is None else "split")
        if not rows:
            raise DataError("no sentence pairs to evaluate" + (f" ({skips.summary()})" if len(skips) else ""),
                            f"{prefix}.{self.cfg.data.src_lang}")
        beam = self.cfg.decode.beam_size if out_prefix is not None else self.cfg.decode.eval_beam_size
        t0 = time.perf_counter()
        best = [r[0] for r in self.translate(model, items, beam)]
        seconds = time.perf_counter() - t0
        hyps = [b["text"] for b in best]
        refs = [t for _, t, _ in rows]
        b = bleu(hyps, [refs])
        c = chrf(hyps, [refs])
        nll, n = self.dev_loss(model, items)
        metrics = {"bleu": b["score"], "chrf": c["score"], "ppl": math.exp(nll / max(n, 1)),
                   "beam": beam, "sentences": len(rows), "skipped": len(skips),
                   "decode_seconds": seconds, "sentences_per_second": len(rows) / max(seconds, 1e-9),
                   "threads": torch.get_num_threads(),
                   "bleu_signature": b["signature"], "chrf_signature": c["signature"],
                   **self._unknown_words(best, items)}
        if out_prefix is not None:
            out_prefix = Path(out_prefix)
            out_prefix.parent.mkdir(parents=True, exist_ok=True)
            Path(f"{out_prefix}.hyp").write_text("".join(h + "\n" for h in hyps), encoding="utf-8")
            Path(f"{out_prefix}.ref").write_text("".join(r + "\n" for r in refs), encoding="utf-8")
        if len(skips):
            print(f"{prefix}: {skips.summary()}", file=sys.stderr)
        return metrics

    def _unknown_words(self, best: list[dict], items: list[dict]) -> dict:
        """How the output deals with words outside the target vocabulary; ``items`` are the
        encoded dev pairs (``"src"`` and ``"tgt"`` tokens).

        ``unk_rate``: the share of output tokens that are ``<unk>``; ``ref_oov_tokens``: the
        reference tokens outside the vocabulary, ``ref_oov_recall`` the share of those that
        the output contains (clipped counts per sentence); ``ref_oov_in_src`` the ones among
        them that also occur in the source sentence (what copying can reach), and
        ``ref_oov_in_src_recall`` the share of those in the output."""
        v = self.tgt_vocab
        n_out = sum(len(b["tokens"]) for b in best)
        n_unk = sum(t == v.unk_id for b in best for t in b["tokens"])
        n = Counter()
        for b, it in zip(best, items):
            oov = Counter(t for t in it["tgt"] if t not in v)
            hyp = Counter(self.tgt_tok.encode(b["text"]))
            copyable = oov & Counter(it["src"])
            n.update(oov=sum(oov.values()), hit=sum((oov & hyp).values()),
                     src=sum(copyable.values()), src_hit=sum((copyable & hyp).values()))
        return {"unk_rate": n_unk / max(n_out, 1),
                "ref_oov_tokens": n["oov"], "ref_oov_recall": n["hit"] / n["oov"] if n["oov"] else None,
                "ref_oov_in_src": n["src"], "ref_oov_in_src_recall": n["src_hit"] / n["src"] if n["src"] else None}

    def predict(self, model, lines: list[str]) -> list[str]:
        """One detokenised translation per input line (beam ``decode.beam_size``); an empty
        line gives an empty line.  With ``decode.nbest`` > 1 each input gives ``nbest`` lines
        ``i ||| translation ||| score`` (Moses n-best format, ``i`` the 0-based input line, best
        first, the length-normalised beam score)."""
        dc = self.cfg.decode
        nonempty = [i for i, line in enumerate(lines) if line.strip()]
        out = [""] * len(lines)
        res = self.translate(model, [self.encode(lines[i].strip()) for i in nonempty], dc.beam_size, nbest=dc.nbest)
        for i, r in zip(nonempty, res):
            out[i] = r[0]["text"] if dc.nbest <= 1 else "\n".join(f"{i} ||| {h['text']} ||| {h['score']:.4f}" for h in r)
        if len(nonempty) < len(lines):
            print(f"predict: {len(lines) - len(nonempty)} empty input lines (empty output lines)", file=sys.stderr)
        return out
