"""Single-sentence text classification (sentiment, topic, intent...) from TSV files.

Config ``data.train`` / ``data.dev`` are tab-separated files with a header naming the text
and label columns (``sentence`` / ``label`` by default: the GLUE SST-2 layout and what
``data_prep/sst2.py`` writes).  Text is split into words (``data.tokenizer: word``, a
vocabulary of training words seen at least ``data.min_freq`` times) or into SentencePiece
pieces (``data.tokenizer: sentencepiece``, a model trained on the unique training texts
only, stored inside every checkpoint).  Rows with an empty text or label are skipped and
counted; labels that occur in dev but never in training are counted (``unseen_labels``) and
score as errors.

The model is :class:`~seqkit.models.classifier.RNNClassifier` (``model.arch: rnn``, BiLSTM +
attention/max/mean pooling) or :class:`~seqkit.models.classifier.CNNClassifier`
(``model.arch: cnn``, Kim 2014).  Metrics: accuracy, per-class precision/recall/F1, macro
F1 and the mean negative log-likelihood of the gold labels (``nll``).  ``seqkit predict``
prints ``label<TAB>probability`` per input line.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from ..data import PAD, UNK, Vocab, pad_sequences, read_tsv_classification
from ..data.tokenizers import SentencePieceTokenizer, WordTokenizer, tokenizer_from_dict
from ..errors import ConfigError, DataError, Skips
from ..metrics import accuracy
from ..models.classifier import IGNORE, CNNClassifier, RNNClassifier
from .base import Task


@dataclass
class ClassificationDataConfig:
    train: str = "data/sst2/train.tsv"
    dev: str = "data/sst2/dev.tsv"
    text_column: str | int = "sentence"  # a header name, or a 0-based column index
    label_column: str | int = "label"
    header: bool = True
    lowercase: bool = False
    tokenizer: Literal["word", "sentencepiece"] = "word"
    min_freq: int = 1  # word tokenizer: rarer training words map to <unk>
    sp_vocab_size: int = 8000  # sentencepiece: pieces (trained on the unique training texts)
    sp_model_type: Literal["unigram", "bpe"] = "unigram"
    max_len: int | None = None  # keep at most this many tokens of a text (None: all)
    max_word_chars: int = 20  # characters per token seen by the char CNN (model.char_filters)


@dataclass
class ClassificationModelConfig:
    arch: Literal["rnn", "cnn"] = "rnn"
    emb_dim: int = 300
    emb_init_std: float | None = None  # word vectors start as N(0, std^2); None: torch's N(0, 1)
    dropout: float = 0.5  # rnn: between layers, pooled vector, MLP; cnn: before the output layer
    word_dropout: float = 0.0  # train-time chance to replace a token by <unk>
    embed_dropout: float = 0.0  # train-time chance to drop a word type (all its occurrences)
    input_dropout: float = 0.0  # elementwise dropout on the word vectors
    label_smoothing: float = 0.0
    adversarial_eps: float = 0.0  # > 0: adversarial training on the token vectors (Miyato et al. 2017)
    adversarial_weight: float = 1.0  # weight of the adversarial loss
    char_dim: int = 32
    char_filters: int = 0  # > 0: add character-CNN features to every token vector
    # rnn
    cell: Literal["lstm", "gru", "rnn"] = "lstm"
    hidden_size: int = 300  # per direction
    num_layers: int = 1
    pooling: Literal["attention", "max", "mean"] = "attention"
    mlp_hidden: int = 0  # hidden tanh layer before the output layer; 0: linear output
    # cnn (Kim 2014)
    widths: list[int] = field(default_factory=lambda: [3, 4, 5])
    num_filters: int = 100


class TextClassificationTask(Task):
    name = "text_classification"
    DataConfig = ClassificationDataConfig
    ModelConfig = ClassificationModelConfig

    def __init__(self, cfg):
        super().__init__(cfg)
        self.tokenizer: WordTokenizer | SentencePieceTokenizer | None = None
        self.vocab: Vocab | None = None
        self.labels: Vocab | None = None
        self.chars: Vocab | None = None
        self._dev_cache: tuple[str, list, list[dict], Skips] | None = None

    # ------------------------------------------------------------------ data
    def _read(self, path: str, key: str, skips: Skips | None = None) -> list[tuple[str, str, int]]:
        d = self.cfg.data
        p = self.check_file(key, path)
        return read_tsv_classification(p, d.text_column, d.label_column, d.header, skips=skips)

    def tokenize(self, text: str) -> list[str]:
        if self.cfg.data.lowercase:
            text = text.lower()
        toks = self.tokenizer.encode(text)
        n = self.cfg.data.max_len
        return toks[:n] if n else toks

    def build_state(self) -> None:
        d = self.cfg.data
        skips = Skips()
        train = self._read(d.train, "data.train", skips)
        if len(skips):
            print(f"{d.train}: {skips.summary()}", file=sys.stderr)
        if not train:
            raise ConfigError(f"{self.cfg.source}: key 'data.train': no examples in {d.train}")
        if d.tokenizer == "sentencepiece":
            texts = sorted({t.lower() if d.lowercase else t for t, _, _ in train})
            prefix = Path(self.cfg.train.output_dir) / "spm"
            self.tokenizer = SentencePieceTokenizer.train(
                texts=texts,
                model_prefix=prefix,
                vocab_size=d.sp_vocab_size,
                model_type=d.sp_model_type,
                seed=self.cfg.train.seed,
            )
        else:
            self.tokenizer = WordTokenizer()
        self.vocab = Vocab.build(
            (self.tokenize(t) for t, _, _ in train), min_freq=d.min_freq, specials=(PAD, UNK)
        )
        self.labels = Vocab.build(([lab] for _, lab, _ in train), specials=())
        self.chars = Vocab.build((list(tok) for tok in self.vocab.tokens[2:]), specials=(PAD, UNK))
        print(
            f"text_classification: {len(self.vocab)} {d.tokenizer} tokens, labels "
            f"{self.labels.tokens}",
            file=sys.stderr,
        )

    def state_dict(self) -> dict:
        return {
            "tokenizer": self.tokenizer.to_dict(),
            "vocab": self.vocab.to_dict(),
            "labels": self.labels.to_dict(),
            "chars": self.chars.to_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.tokenizer = tokenizer_from_dict(state["tokenizer"])
        self.vocab = Vocab.from_dict(state["vocab"])
        self.labels = Vocab.from_dict(state["labels"])
        self.chars = Vocab.from_dict(state["chars"])

    def encode(self, text: str, label: str | None = None) -> dict:
        toks = self.tokenize(text) or [UNK]  # never empty
        lab = self.labels.index(label) if label is not None and label in self.labels else IGNORE
        item = {"tokens": self.vocab.encode(toks), "label": lab}
        if self.cfg.model.char_filters > 0:
            n = self.cfg.data.max_word_chars
            item["chars"] = [self.chars.encode(list(t[:n])) for t in toks]
        return item

    def collate(self, items: list[dict]) -> dict:
        tokens, lengths = pad_sequences([it["tokens"] for it in items], self.vocab.pad_id)
        labels = torch.tensor([it["label"] for it in items], dtype=torch.long)
        batch = {"tokens": tokens, "lengths": lengths, "labels": labels}
        if "chars" in items[0]:
            width = max(len(w) for it in items for w in it["chars"])
            chars = torch.full((len(items), tokens.size(1), width), self.chars.pad_id)
            for i, it in enumerate(items):
                for j, w in enumerate(it["chars"]):
                    chars[i, j, : len(w)] = torch.tensor(w, dtype=torch.long)
            batch["chars"] = chars
        return batch

    def training_data(self):
        train = self._read(self.cfg.data.train, "data.train", Skips())
        items = [self.encode(text, lab) for text, lab, _ in train]
        return items, [len(it["tokens"]) for it in items], self.collate

    # ------------------------------------------------------------------ model
    def build_model(self) -> RNNClassifier | CNNClassifier:
        m = self.cfg.model
        common = dict(
            vocab_size=len(self.vocab),
            num_classes=len(self.labels),
            emb_dim=m.emb_dim,
            emb_init_std=m.emb_init_std,
            dropout=m.dropout,
            word_dropout=m.word_dropout,
            embed_dropout=m.embed_dropout,
            input_dropout=m.input_dropout,
            label_smoothing=m.label_smoothing,
            adversarial_eps=m.adversarial_eps,
            adversarial_weight=m.adversarial_weight,
            pad_id=self.vocab.pad_id,
            unk_id=self.vocab.unk_id,
            num_chars=len(self.chars) if m.char_filters > 0 else 0,
            char_dim=m.char_dim,
            char_filters=m.char_filters,
            char_pad_id=self.chars.pad_id,
        )
        if m.arch == "cnn":
            return CNNClassifier(widths=m.widths, num_filters=m.num_filters, **common)
        return RNNClassifier(
            hidden_size=m.hidden_size,
            num_layers=m.num_layers,
            cell=m.cell,
            pooling=m.pooling,
            mlp_hidden=m.mlp_hidden,
            **common,
        )

    # ------------------------------------------------------------------ inference
    def run(self, model, items: list[dict]) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        """Class probabilities (N, C) and attention weights (a (len,) tensor or None) per item."""
        device = next(model.parameters()).device
        order = sorted(range(len(items)), key=lambda i: len(items[i]["tokens"]))
        probs = torch.zeros(len(items), len(self.labels))
        attn: list[torch.Tensor | None] = [None] * len(items)
        cap = self.cfg.train.max_tokens
        start = 0
        while start < len(order):
            end = start + 1
            while end < len(order) and len(items[order[end]]["tokens"]) * (end - start + 1) <= cap:
                end += 1
            idx = order[start:end]
            batch = self.collate([items[i] for i in idx])
            batch = {k: v.to(device) for k, v in batch.items()}
            p, a = model.predict(batch)
            probs[idx] = p.cpu()
            if a is not None:
                for j, i in enumerate(idx):
                    attn[i] = a[j, : len(items[i]["tokens"])].float().cpu()
            start = end
        return probs, attn

    def _dev(self, path: str, key: str) -> tuple[list, list[dict], Skips]:
        if self._dev_cache is not None and self._dev_cache[0] == path:
            _, rows, items, skips = self._dev_cache
            return rows, items, skips
        skips = Skips()
        rows = self._read(path, key, skips)
        items = [self.encode(text, lab) for text, lab, _ in rows]
        self._dev_cache = (path, rows, items, skips)
        return rows, items, skips

    def evaluate(self, model, split: str | None = None, out_prefix: Path | None = None) -> dict:
        path = split or self.cfg.data.dev
        rows, items, skips = self._dev(path, "data.dev" if split is None else "split")
        if not rows:
            raise DataError("no examples to evaluate" + (f" ({skips.summary()})" if len(skips) else ""), path)
        probs, _ = self.run(model, items)
        pred_ids = probs.argmax(-1).tolist()
        hyps = [self.labels.token(i) for i in pred_ids]
        refs = [lab for _, lab, _ in rows]
        metrics: dict = {"accuracy": accuracy(refs, hyps)["score"]}
        f1s = []
        for lab in self.labels.tokens:
            tp = sum(r == lab and h == lab for r, h in zip(refs, hyps))
            n_hyp, n_ref = hyps.count(lab), refs.count(lab)
            prec = tp / n_hyp if n_hyp else 0.0
            rec = tp / n_ref if n_ref else 0.0
            f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
            metrics.update({f"precision_{lab}": prec, f"recall_{lab}": rec, f"f1_{lab}": f1})
            f1s.append(f1)
        metrics["macro_f1"] = sum(f1s) / len(f1s)
        known = [(i, it["label"]) for i, it in enumerate(items) if it["label"] != IGNORE]
        nll = -sum(math.log(max(float(probs[i, y]), 1e-12)) for i, y in known)
        metrics["nll"] = nll / len(known) if known else float("nan")
        metrics["sentences"] = len(rows)
        metrics["unseen_labels"] = len(rows) - len(known)
        metrics["skipped"] = len(skips)
        if out_prefix is not None:
            out_prefix = Path(out_prefix)
            out_prefix.parent.mkdir(parents=True, exist_ok=True)
            Path(f"{out_prefix}.hyp.label").write_text(
                "".join(h + "\n" for h in hyps), encoding="utf-8"
            )
            Path(f"{out_prefix}.ref.label").write_text(
                "".join(r + "\n" for r in refs), encoding="utf-8"
            )
            Path(f"{out_prefix}.hyp.prob").write_text(
                "".join(f"{float(probs[i, pred_ids[i]]):.4f}\n" for i in range(len(rows))),
                encoding="utf-8",
            )
        if len(skips):
            print(f"{path}: {skips.summary()}", file=sys.stderr)
        return metrics

    def explain(self, model, texts: list[str]) -> list[dict]:
        """Per text: ``tokens`` (as the model saw them), ``label``, ``prob`` and ``attention``
        (a list of floats, one per token, or None for models without attention pooling)."""
        items = [self.encode(t) for t in texts]
        probs, attn = self.run(model, items)
        out = []
        for i, text in enumerate(texts):
            k = int(probs[i].argmax())
            toks = self.tokenize(text) or [UNK]
            out.append(
                {
                    "tokens": toks,
                    "label": self.labels.token(k),
                    "prob": float(probs[i, k]),
                    "attention": None if attn[i] is None else attn[i].tolist(),
                }
            )
        return out

    def predict(self, model, lines: list[str]) -> list[str]:
        """``label<TAB>probability`` per line; an empty input line gives an empty output line."""
        nonempty = [i for i, line in enumerate(lines) if line.strip()]
        out = [""] * len(lines)
        for i, res in zip(nonempty, self.explain(model, [lines[i] for i in nonempty])):
            out[i] = f"{res['label']}\t{res['prob']:.4f}"
        if len(nonempty) < len(lines):
            print(
                f"predict: {len(lines) - len(nonempty)} empty input lines (empty output lines)",
                file=sys.stderr,
            )
        return out
