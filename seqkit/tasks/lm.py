"""Word-level language modelling on a running text (PTB / WikiText layout).

Data: plain UTF-8 text, whitespace-tokenised, one sentence (PTB) or paragraph (WikiText)
per line.  Every line -- blank lines included -- contributes its tokens followed by
``<eos>`` (the convention of Mikolov's PTB set-up, pytorch/examples and AWD-LSTM, which
gives the published token counts, e.g. 929,589 PTB training tokens).  The vocabulary is
built from the training text (``<unk>`` and ``<eos>`` first); at evaluation and prediction
a word outside it is scored as ``<unk>`` and counted (``oov`` in the metrics).

Training: the stream is cut into ``data.batch_size`` contiguous columns and read in order
by truncated-BPTT windows of ``data.bptt`` tokens (optionally of random length as in
AWD-LSTM, ``data.variable_bptt``), the hidden state carried (detached) from one window to
the next and reset at the start of each epoch.  :class:`BPTTWindows` is the batch sampler
the trainer uses instead of its shuffled length buckets.

Evaluation: perplexity of the whole stream, stateful (:meth:`LanguageModelTask.score`);
every token but the first is a target exactly once.  With ``data.cache_size > 0`` the final
evaluation (``seqkit evaluate``, and the one after ``seqkit train``) also reports the
perplexity with the continuous cache of Grave, Joulin & Usunier 2017 (``ppl_cache``).
"""

from __future__ import annotations

import math
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F

from ..data import UNK, Vocab
from ..errors import ConfigError, DataError
from ..models.language_model import StatefulLM
from ..nn.lm import RNNLM, ContinuousCache
from ..textio import read_lines
from .base import Task

EOS = "<eos>"  # the end-of-line token of the PTB / WikiText LM convention


@dataclass
class LMDataConfig:
    train: str = "data/ptb/train.txt"
    dev: str = "data/ptb/valid.txt"
    lowercase: bool = False  # PTB is lowercased already; WikiText keeps case
    min_freq: int = 1  # rarer training words map to <unk>
    max_vocab: int | None = None  # most frequent words kept (specials excluded)
    batch_size: int = 20  # parallel columns of the training stream
    bptt: int = 35  # truncated-BPTT window (mean window length with variable_bptt)
    variable_bptt: bool = False  # AWD-LSTM: N(bptt, 5) (95 %) or N(bptt / 2, 5) (5 %)
    eval_batch_size: int = 10  # parallel columns at evaluation
    eval_bptt: int = 140  # window at evaluation (only memory/speed; the state is carried)
    cache_size: int = 0  # continuous cache window (0: off); Grave et al. 2017
    cache_theta: float = 0.6  # inverse temperature of the cache pointer
    cache_lambda: float = 0.1  # interpolation weight of the cache
    predict_topk: int = 5  # next-word guesses shown by `seqkit predict`


@dataclass
class LMModelConfig:
    emb_dim: int = 400
    hidden_size: int = 1150
    num_layers: int = 3
    cell: Literal["lstm", "gru"] = "lstm"
    tie_weights: bool = True
    dropout_input: float = 0.4  # AWD-LSTM dropouti
    dropout_hidden: float = 0.25  # dropouth
    dropout_output: float = 0.4  # dropout
    dropout_embedding: float = 0.1  # dropoute
    dropout_weight: float = 0.5  # wdrop
    ar_alpha: float = 0.0  # activation regularisation (AWD-LSTM: 2)
    tar_beta: float = 0.0  # temporal activation regularisation (AWD-LSTM: 1)


def read_lm_lines(path: str | Path, lowercase: bool = False) -> list[list[str]]:
    """Token lists per line (``<eos>`` not added); a blank line gives ``[]``."""
    lines = read_lines(path)
    out = []
    for lineno, line in enumerate(lines, 1):
        toks = line.split()
        if EOS in toks:
            raise DataError(f"the text contains the reserved token {EOS!r}", path, lineno)
        out.append([t.lower() for t in toks] if lowercase else toks)
    return out


def stream_ids(lines: list[list[str]], vocab: Vocab) -> tuple[torch.Tensor, int]:
    """(ids (N,) of the tokens with one ``<eos>`` per line, number of out-of-vocabulary tokens)."""
    ids: list[int] = []
    oov = 0
    unk = vocab.unk_id
    eos = vocab.index(EOS)
    for toks in lines:
        for t in toks:
            i = vocab.index(t)
            oov += i == unk and t != UNK
            ids.append(i)
        ids.append(eos)
    return torch.tensor(ids, dtype=torch.long), oov


def batchify(ids: torch.Tensor, columns: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Inputs and targets (columns, L) of a stream: column j holds positions j*L .. j*L+L-1.

    ``inputs = ids[:-1]`` and ``targets = ids[1:]``; ``L = (N - 1) // columns``.  Returns
    ``(inputs, targets, dropped)`` with ``dropped`` the ``(N - 1) % columns`` trailing
    pairs that do not fill a row (the evaluation scores them separately).
    """
    n = ids.numel() - 1
    length = n // columns
    if length < 1:
        raise ValueError(f"a stream of {ids.numel()} tokens is too short for {columns} columns")
    x = ids[: columns * length].view(columns, length)
    y = ids[1 : columns * length + 1].view(columns, length)
    return x, y, n - columns * length


class BPTTWindows:
    """Batch sampler of truncated-BPTT windows, in order (the trainer's ``batch_sampler``).

    Each "batch" is one window ``(start, length)`` over the (B, L) training columns; the
    windows of an epoch tile positions 0 .. L-1 in order.  With ``variable`` the lengths
    are drawn as in AWD-LSTM (``bptt`` with probability 0.95, else ``bptt / 2``, then
    ``max(5, int(N(that, 5)))``) from a generator seeded by ``(seed, epoch)``, so an epoch's
    windows are the same after a resume.  Implements the sampler protocol the trainer uses
    (``set_epoch``, ``set_start``, ``len``, iteration).
    """

    def __init__(self, length: int, bptt: int, variable: bool = False, seed: int = 0):
        if bptt < 1:
            raise ValueError(f"bptt must be >= 1, got {bptt}")
        self.length, self.bptt, self.variable, self.seed = length, bptt, variable, seed
        self.start = 0
        self.set_epoch(0)

    def windows(self, epoch: int) -> list[tuple[int, int]]:
        rng = random.Random(self.seed * 1_000_003 + epoch)
        out, pos = [], 0
        while pos < self.length:
            size = self.bptt
            if self.variable:
                base = self.bptt if rng.random() < 0.95 else self.bptt / 2
                size = max(5, int(rng.gauss(base, 5)))
            size = min(size, self.length - pos)
            out.append((pos, size))
            pos += size
        return out

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self._windows = self.windows(self.epoch)
        self.start = 0

    def set_start(self, start: int) -> None:
        self.start = int(start)

    def __len__(self) -> int:
        return len(self._windows)

    def __iter__(self):
        for w in self._windows[self.start :]:
            yield [w]


class _Columns:
    """Map-style dataset over the (B, L) columns: ``ds[(start, length)]`` is one window."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, n_windows: int):
        self.x, self.y, self.n_windows = x, y, n_windows

    def __len__(self) -> int:  # windows in the first epoch (for logs)
        return self.n_windows

    def __getitem__(self, window: tuple[int, int]) -> dict:
        s, n = window
        return {"input": self.x[:, s : s + n], "target": self.y[:, s : s + n], "reset": s == 0}


def _collate_one(items: list[dict]) -> dict:
    (item,) = items
    return item


class LanguageModelTask(Task):
    name = "language_model"
    DataConfig = LMDataConfig
    ModelConfig = LMModelConfig

    def __init__(self, cfg):
        super().__init__(cfg)
        self.vocab: Vocab | None = None
        self._sampler: BPTTWindows | None = None
        d = cfg.data
        for key in ("batch_size", "bptt", "eval_batch_size", "eval_bptt", "predict_topk"):
            if getattr(d, key) < 1:
                raise ConfigError(f"{cfg.source}: key 'data.{key}' must be >= 1")
        if d.cache_size < 0 or not 0.0 <= d.cache_lambda <= 1.0:
            raise ConfigError(
                f"{cfg.source}: keys 'data.cache_size' >= 0 and "
                "'data.cache_lambda' in [0, 1] required"
            )

    # ------------------------------------------------------------------ data
    def _lines(self, path: str | Path, key: str) -> list[list[str]]:
        return read_lm_lines(self.check_file(key, path), self.cfg.data.lowercase)

    def build_state(self) -> None:
        d = self.cfg.data
        lines = self._lines(d.train, "data.train")
        vocab = Vocab.build(lines, min_freq=d.min_freq, max_size=d.max_vocab, specials=(UNK, EOS))
        self.vocab = vocab
        tokens = sum(len(t) for t in lines) + len(lines)
        print(
            f"{d.train}: {len(lines)} lines, {tokens} tokens with <eos>, vocabulary {len(vocab)}",
            file=sys.stderr,
        )

    def state_dict(self) -> dict:
        return {"vocab": self.vocab.to_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.vocab = Vocab.from_dict(state["vocab"])

    def training_data(self):
        d = self.cfg.data
        ids, oov = stream_ids(self._lines(d.train, "data.train"), self.vocab)
        if oov:
            print(
                f"{d.train}: {oov} training tokens outside the vocabulary -> {UNK}", file=sys.stderr
            )
        x, y, dropped = batchify(ids, d.batch_size)
        self._sampler = BPTTWindows(x.size(1), d.bptt, d.variable_bptt, self.cfg.train.seed)
        print(
            f"{d.train}: {ids.numel()} tokens -> {d.batch_size} columns of {x.size(1)} "
            f"(last {dropped} dropped), {len(self._sampler)} windows per epoch",
            file=sys.stderr,
        )
        return _Columns(x, y, len(self._sampler)), [], _collate_one

    def train_batch_sampler(self) -> BPTTWindows:
        if self._sampler is None:
            self.training_data()
        return self._sampler

    # ------------------------------------------------------------------ model
    def build_model(self) -> StatefulLM:
        m = self.cfg.model
        lm = RNNLM(
            len(self.vocab),
            m.emb_dim,
            m.hidden_size,
            m.num_layers,
            dropout_input=m.dropout_input,
            dropout_hidden=m.dropout_hidden,
            dropout_output=m.dropout_output,
            dropout_embedding=m.dropout_embedding,
            dropout_weight=m.dropout_weight,
            tie_weights=m.tie_weights,
            cell=m.cell,
        )
        return StatefulLM(lm, ar_alpha=m.ar_alpha, tar_beta=m.tar_beta)

    # ------------------------------------------------------------------ evaluation
    def _run_stream(
        self,
        model: StatefulLM,
        ids: torch.Tensor,
        cache: ContinuousCache | None,
    ) -> tuple[float, float | None, int]:
        """(sum of -log p, same with the cache or None, targets) over a whole stream."""
        d = self.cfg.data
        lm = model.lm if isinstance(model, StatefulLM) else model
        device = lm.decoder.bias.device
        columns = max(1, min(d.eval_batch_size, ids.numel() - 1))
        x, y, rest = batchify(ids, columns)
        x, y = x.to(device), y.to(device)
        total, total_cache = 0.0, 0.0
        state = None
        for s in range(0, x.size(1), d.eval_bptt):
            xs, ys = x[:, s : s + d.eval_bptt], y[:, s : s + d.eval_bptt]  # (B, T)
            logits, state, hiddens = lm(xs, state)
            lp = F.log_softmax(logits.float(), dim=-1)  # (B, T, V)
            total -= lp.gather(-1, ys.unsqueeze(-1)).sum().item()
            if cache is not None:
                mixed = cache(lp, hiddens.float(), ys)  # (B, T, V)
                total_cache -= mixed.gather(-1, ys.unsqueeze(-1)).sum().item()
        if rest:  # the trailing pairs continue the last column
            n_full = columns * x.size(1)
            xs = ids[n_full : n_full + rest].to(device).unsqueeze(0)  # (1, rest)
            ys = ids[n_full + 1 : n_full + rest + 1].to(device)  # (rest,)
            last = {k: v[-1:] for k, v in state.items()}
            logits, _, hiddens = lm(xs, last)
            lp = F.log_softmax(logits[0].float(), dim=-1)  # (rest, V)
            total -= lp.gather(-1, ys.unsqueeze(-1)).sum().item()
            if cache is not None:
                from ..nn.lm import cache_pointer_log_probs

                history = cache._history[-1] if cache._history else None
                mixed = cache_pointer_log_probs(
                    lp,
                    hiddens[0].float(),
                    ys,
                    cache.cache_size,
                    cache.theta,
                    cache.lambda_,
                    history=history,
                )
                total_cache -= mixed.gather(-1, ys.unsqueeze(-1)).sum().item()
        return total, (total_cache if cache is not None else None), ids.numel() - 1

    def score(self, model, path: str | Path, key: str = "split", cache: bool = False) -> dict:
        """Perplexity of the text in ``path`` (and with the continuous cache when ``cache``)."""
        ids, oov = stream_ids(self._lines(path, key), self.vocab)
        if ids.numel() < 2:
            raise DataError("need at least one token to score", path)
        d = self.cfg.data
        cc = ContinuousCache(d.cache_size, d.cache_theta, d.cache_lambda) if cache else None
        was_training = model.training
        model.eval()
        with torch.no_grad():
            nll, nll_cache, n = self._run_stream(model, ids, cc)
        model.train(was_training)
        metrics = {"ppl": math.exp(nll / n), "loss": nll / n, "tokens": n, "oov": oov}
        if nll_cache is not None:
            metrics.update(
                ppl_cache=math.exp(nll_cache / n),
                loss_cache=nll_cache / n,
                cache_size=d.cache_size,
                cache_theta=d.cache_theta,
                cache_lambda=d.cache_lambda,
            )
        return metrics

    def evaluate(self, model, split: str | None = None, out_prefix: Path | None = None) -> dict:
        """Perplexity on ``split`` (default the dev text).

        The continuous cache (``data.cache_size > 0``) is added only on final evaluations
        (``out_prefix`` given: ``seqkit evaluate`` and the one after training), not at every
        dev evaluation during training.
        """
        path, key = (self.cfg.data.dev, "data.dev") if split is None else (split, "split")
        metrics = self.score(
            model, path, key, cache=out_prefix is not None and self.cfg.data.cache_size > 0
        )
        if metrics["oov"]:
            print(
                f"{path}: {metrics['oov']} tokens outside the vocabulary scored as {UNK}",
                file=sys.stderr,
            )
        return metrics

    # ------------------------------------------------------------------ prediction
    def predict(self, model, lines: list[str]) -> list[str]:
        """Per line: ``ppl<TAB>sentence as scored<TAB>top next words``.

        Each line is scored as a sentence on its own: from the state after ``<eos>`` (the
        sentence-start context in this corpus convention), every word and the final ``<eos>``
        are predicted; ``ppl`` is over those ``n + 1`` tokens.  Out-of-vocabulary words are
        shown as ``word(<unk>)`` and scored as ``<unk>``.  The third field lists the
        ``data.predict_topk`` most likely words to follow the line, with probabilities.
        """
        lm = model.lm if isinstance(model, StatefulLM) else model
        device = lm.decoder.bias.device
        eos = self.vocab.index(EOS)
        out = []
        n_oov = 0
        for line in lines:
            toks = line.split()
            if self.cfg.data.lowercase:
                toks = [t.lower() for t in toks]
            ids = [self.vocab.index(t) for t in toks]
            shown = [
                t if (i != self.vocab.unk_id or t == UNK) else f"{t}({UNK})"
                for t, i in zip(toks, ids)
            ]
            n_oov += sum(s.endswith(f"({UNK})") for s in shown)
            seq = torch.tensor([eos] + ids + [eos], device=device).unsqueeze(0)  # (1, n + 2)
            logits, _, _ = lm(seq[:, :-1])
            lp = F.log_softmax(logits[0].float(), dim=-1)  # (n + 1, V)
            nll = -lp.gather(-1, seq[0, 1:].unsqueeze(-1)).sum().item()
            ppl = math.exp(nll / (len(ids) + 1))
            # next words after the line's last word (the position that predicts <eos>)
            top = lp[-1].exp().topk(min(self.cfg.data.predict_topk, lp.size(-1)))
            guesses = " ".join(
                f"{self.vocab.token(i)}:{p:.3f}"
                for p, i in zip(top.values.tolist(), top.indices.tolist())
            )
            out.append(f"{ppl:.2f}\t{' '.join(shown)}\t{guesses}")
        if n_oov:
            print(f"predict: {n_oov} words outside the vocabulary scored as {UNK}", file=sys.stderr)
        return out
