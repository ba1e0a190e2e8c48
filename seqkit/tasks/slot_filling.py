"""Slot filling + intent detection (ATIS/SNIPS layout: ``*.seq.in``, ``*.seq.out``, ``*.label``).

Config ``data.train`` / ``data.dev`` are path prefixes: ``data/atis/train`` reads
``data/atis/train.seq.in``, ``.seq.out`` and ``.label``.  Slot tags and intents that
occur in dev/test but never in training cannot be predicted: they are counted (and
reported as ``unseen_tags`` / ``unseen_intents``) and score as errors, never a crash.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from ..data import PAD, UNK, Vocab, pad_sequences, read_tagging
from ..errors import ConfigError, DataError, Skips
from ..metrics import accuracy, slot_f1
from ..models.tagger import IGNORE, JointTagger
from ..nn.crf import bio_transition_constraints
from .base import Task


@dataclass
class SlotDataConfig:
    train: str = "data/atis/train"  # path prefix of {prefix}.seq.in/.seq.out/.label
    dev: str = "data/atis/dev"
    lowercase: bool = True
    min_freq: int = 1  # rarer training words map to <unk>
    max_word_chars: int = 20  # characters per word seen by the char CNN


@dataclass
class SlotModelConfig:
    emb_dim: int = 100
    hidden_size: int = 200
    num_layers: int = 1
    cell: Literal["lstm", "gru", "rnn"] = "lstm"
    dropout: float = 0.3
    word_dropout: float = 0.05  # train-time chance to replace a word by <unk>
    char_dim: int = 32
    char_filters: int = 64  # 0 disables character features
    crf: bool = True
    pooling: Literal["attention", "mean", "max"] = "attention"
    slot_attention: Literal["none", "additive", "general", "dot"] = "none"  # Liu & Lane 2016
    intent_weight: float = 1.0


class SlotFillingTask(Task):
    name = "slot_filling"
    DataConfig = SlotDataConfig
    ModelConfig = SlotModelConfig

    def __init__(self, cfg):
        super().__init__(cfg)
        self.words: Vocab | None = None
        self.chars: Vocab | None = None
        self.tags: Vocab | None = None
        self.intents: Vocab | None = None

    # ------------------------------------------------------------------ data
    def _read(self, prefix: str, key: str, skips: Skips | None = None):
        paths = [self.check_file(key, f"{prefix}{ext}") for ext in (".seq.in", ".seq.out", ".label")]
        examples = read_tagging(*paths, skips=skips)
        if self.cfg.data.lowercase:
            for ex in examples:
                ex.tokens = [t.lower() for t in ex.tokens]
        return examples

    def build_state(self) -> None:
        skips = Skips()
        train = self._read(self.cfg.data.train, "data.train", skips)
        if not train:
            raise ConfigError(f"{self.cfg.source}: key 'data.train': no examples in {self.cfg.data.train}.seq.in"
                              + (f" ({skips.summary()})" if len(skips) else ""))
        if len(skips):
            print(f"{self.cfg.data.train}: {skips.summary()}", file=sys.stderr)
        self.words = Vocab.build((ex.tokens for ex in train), min_freq=self.cfg.data.min_freq, specials=(PAD, UNK))
        self.chars = Vocab.build((ch for ex in train for ch in ex.tokens), specials=(PAD, UNK))
        self.tags = Vocab.build((ex.tags for ex in train), specials=(PAD,))
        self.intents = Vocab.build(([ex.intent] for ex in train), specials=())

    def state_dict(self) -> dict:
        return {k: getattr(self, k).to_dict() for k in ("words", "chars", "tags", "intents")}

    def load_state_dict(self, state: dict) -> None:
        for k in ("words", "chars", "tags", "intents"):
            setattr(self, k, Vocab.from_dict(state[k]))

    def _encode(self, tokens: list[str], tags: list[str] | None = None, intent: str | None = None) -> dict:
        n = self.cfg.data.max_word_chars
        item = {
            "tokens": self.words.encode(tokens),
            "chars": [self.chars.encode(list(t[:n])) for t in tokens],
            "tags": [self.tags.index(t) if t in self.tags else IGNORE for t in tags] if tags else None,
            "intent": self.intents.index(intent) if intent in self.intents else IGNORE,
        }
        return item

    def collate(self, items: list[dict]) -> dict:
        tokens, lengths = pad_sequences([it["tokens"] for it in items], self.words.pad_id)
        width = max(len(w) for it in items for w in it["chars"])
        chars = torch.full((len(items), tokens.size(1), width), self.chars.pad_id, dtype=torch.long)
        for i, it in enumerate(items):
            for j, w in enumerate(it["chars"]):
                chars[i, j, : len(w)] = torch.tensor(w, dtype=torch.long)
        batch = {"tokens": tokens, "lengths": lengths, "chars": chars,
                 "intents": torch.tensor([it["intent"] for it in items], dtype=torch.long)}
        if items[0]["tags"] is not None:
            batch["tags"], _ = pad_sequences([it["tags"] for it in items], IGNORE)
        return batch

    def training_data(self):
        train = self._read(self.cfg.data.train, "data.train", Skips())
        items = [self._encode(ex.tokens, ex.tags, ex.intent) for ex in train]
        return items, [len(it["tokens"]) for it in items], self.collate

    # ------------------------------------------------------------------ model
    def build_model(self) -> JointTagger:
        m = self.cfg.model
        constraints = bio_transition_constraints([self.tags.token(i) for i in range(len(self.tags))])
        return JointTagger(
            vocab_size=len(self.words),
            num_tags=len(self.tags),
            num_intents=len(self.intents),
            emb_dim=m.emb_dim,
            hidden_size=m.hidden_size,
            num_layers=m.num_layers,
            cell=m.cell,
            dropout=m.dropout,
            word_dropout=m.word_dropout,
            num_chars=len(self.chars) if m.char_filters > 0 else 0,
            char_dim=m.char_dim,
            char_filters=m.char_filters,
            crf=m.crf,
            crf_constraints=constraints,
            pooling=m.pooling,
            slot_attention=m.slot_attention,
            intent_weight=m.intent_weight,
            pad_id=self.words.pad_id,
            unk_id=self.words.unk_id,
            char_pad_id=self.chars.pad_id,
        )

    # ------------------------------------------------------------------ inference
    def _run(self, model: JointTagger, token_lists: list[list[str]]) -> tuple[list[list[str]], list[str]]:
        """Predicted (tags, intent) for each token list, batched by length."""
        device = next(model.parameters()).device
        order = sorted(range(len(token_lists)), key=lambda i: len(token_lists[i]))
        tags: list[list[str]] = [[] for _ in token_lists]
        intents: list[str] = [""] * len(token_lists)
        cap = self.cfg.train.max_tokens
        start = 0
        while start < len(order):
            end = start + 1
            while end < len(order) and len(token_lists[order[end]]) * (end - start + 1) <= cap:
                end += 1
            idx = order[start:end]
            batch = self.collate([self._encode(token_lists[i]) for i in idx])
            batch = {k: v.to(device) for k, v in batch.items()}
            paths, intent_ids, _ = model.predict(batch)
            for i, path, it in zip(idx, paths, intent_ids.tolist()):
                tags[i] = [self.tags.token(t) for t in path]
                intents[i] = self.intents.token(it)
            start = end
        return tags, intents

    def evaluate(self, model, split: str | None = None, out_prefix: Path | None = None) -> dict:
        prefix = split or self.cfg.data.dev
        skips = Skips()
        examples = self._read(prefix, "data.dev" if split is None else "split", skips)
        if not examples:
            raise DataError("no examples to evaluate" + (f" ({skips.summary()})" if len(skips) else ""),
                            f"{prefix}.seq.in")
        hyp_tags, hyp_intents = self._run(model, [ex.tokens for ex in examples])
        ref_tags = [ex.tags for ex in examples]
        ref_intents = [ex.intent for ex in examples]
        f1 = slot_f1(ref_tags, hyp_tags)
        acc = accuracy(ref_intents, hyp_intents)
        frame = sum(rt == ht and ri == hi for rt, ht, ri, hi in zip(ref_tags, hyp_tags, ref_intents, hyp_intents))
        metrics = {
            "slot_f1": f1["score"],
            "slot_precision": f1["precision"],
            "slot_recall": f1["recall"],
            "intent_acc": acc["score"],
            "frame_acc": frame / len(examples),
            "sentences": len(examples),
            "unseen_tags": sum(t not in self.tags for ex in examples for t in ex.tags),
            "unseen_intents": sum(ex.intent not in self.intents for ex in examples),
            "skipped": len(skips),
        }
        if out_prefix is not None:
            out_prefix = Path(out_prefix)
            out_prefix.parent.mkdir(parents=True, exist_ok=True)
            Path(f"{out_prefix}.hyp.seq.out").write_text("".join(" ".join(t) + "\n" for t in hyp_tags), encoding="utf-8")
            Path(f"{out_prefix}.hyp.label").write_text("".join(i + "\n" for i in hyp_intents), encoding="utf-8")
        if len(skips):
            print(f"{prefix}: {skips.summary()}", file=sys.stderr)
        return metrics

    def predict(self, model, lines: list[str]) -> list[str]:
        """``intent<TAB>tag tag ...`` per line; an empty input line gives an empty output line."""
        toks = [line.split() for line in lines]
        if self.cfg.data.lowercase:
            toks = [[t.lower() for t in ts] for ts in toks]
        nonempty = [i for i, ts in enumerate(toks) if ts]
        tags, intents = self._run(model, [toks[i] for i in nonempty])
        out = [""] * len(lines)
        for i, t, it in zip(nonempty, tags, intents):
            out[i] = f"{it}\t{' '.join(t)}"
        if len(nonempty) < len(lines):
            print(f"predict: {len(lines) - len(nonempty)} empty input lines (empty output lines)", file=sys.stderr)
        return out
