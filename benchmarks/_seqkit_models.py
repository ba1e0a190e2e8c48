"""Shared set-up for the seqkit-model benchmarks (machine_limit, cost_growth, bf16).

Loads the recipe-size models from their trained checkpoints (the vocabularies, CMVN statistics
and SentencePiece model live in the checkpoint): translation ``exp/mt_de_en/best.pt`` (the
Multi30k recipe, De -> En) and ASR ``exp/an4_pB/best.pt`` (the AN4 recipe: 3-layer BiLSTM on
4-stacked frames, CTC weight 0.3, location-aware speller), and counts the useful matrix-product
FLOPs of a training step over real (unpadded) positions.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from _bench_common import cpu_name

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MT_CKPT = "exp/mt_de_en/best.pt"
ASR_CKPT = "exp/an4_pB/best.pt"


def machine_line(threads: int) -> str:
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    return (f"{cpu_name()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, "
            f"{threads} intra-op thread(s); load average (1/5/15 min) {load}")


def load(kind: str, ckpt: str | None = None, overrides: list[str] | None = None):
    """(task, model) for ``kind`` in {"mt", "asr"} from the checkpoint's saved config."""
    from seqkit.config import load_config
    from seqkit.tasks.base import load_for_inference

    ckpt = ckpt or (MT_CKPT if kind == "mt" else ASR_CKPT)
    over = list(overrides or [])
    if kind == "asr":
        over.append("data.allow_outside_paths=true")
    threads = torch.get_num_threads()
    cfg = load_config(ROOT / Path(ckpt).parent / "config.yaml", over)
    os.chdir(ROOT)
    task, model = load_for_inference(cfg, ROOT / ckpt)
    torch.set_num_threads(threads)
    return task, model


def train_batches(task, max_tokens: int, n: int, seed: int = 0):
    """``n`` real training batches (collated) from the recipe's length-bucketed sampler."""
    from seqkit.data.batching import BucketBatchSampler

    items, lengths, collate = task.training_data()
    sampler = BucketBatchSampler(lengths, max_tokens=max_tokens, shuffle=True, seed=seed)
    batches = sampler.batches(0)[:n]
    return [collate([items[i] for i in b]) for b in batches]


# ---------------------------------------------------------------- FLOP counting
def _lstm(d_in: int, h: int) -> int:
    """Forward matmul FLOPs of one LSTM direction at one position: 2 * 4H * (D + H)."""
    return 2 * 4 * h * (d_in + h)


def _decoder_flops(dec, tgt_lens: torch.Tensor, mem_lens: torch.Tensor) -> dict[str, float]:
    """Forward FLOPs of :class:`AttentionalDecoder` over real target steps / (step, key) pairs."""
    from seqkit.nn.attention import AdditiveAttention, LocationAwareAttention

    nt = float(tgt_lens.sum())
    nm = float(mem_lens.sum())
    pairs = float((tgt_lens.double() * mem_lens.double()).sum())
    h, dm, v = dec.hidden_size, dec.memory_size, dec.vocab_size
    att = dec.attention
    a = att.query_proj.out_features
    out = {}
    lstm = 0
    for cell in dec.cells:
        lstm += _lstm(cell.input_size, cell.hidden_size)
    out["decoder LSTM"] = lstm * nt
    attn = 2 * dm * a * nm  # key projection, once per memory position
    attn += 2 * h * a * nt  # query projection per step
    attn += pairs * (2 * a + 2 * dm)  # v . tanh(.) score + context sum, per (step, key) pair
    if isinstance(att, LocationAwareAttention):
        k, c = att.conv.kernel_size[0], att.conv.out_channels
        attn += pairs * (2 * k * c + 2 * c * a)  # location conv + its projection
    elif not isinstance(att, AdditiveAttention):
        raise NotImplementedError(type(att))
    out["attention"] = attn
    out["combine W_c"] = 2 * (dm + h) * h * nt
    out["output projection"] = 2 * h * v * nt
    if dec.bridge is not None:
        out["bridge"] = 2 * dec.bridge.in_features * dec.bridge.out_features * len(tgt_lens)
    return out


def mt_flops(model, batch: dict) -> dict[str, float]:
    """Forward matmul FLOPs of :class:`Seq2Seq` on ``batch``, real positions only."""
    src_lens = batch["src_lengths"]
    tgt_lens = (batch["tgt_out"] != model.pad_id).sum(1)
    rnn = model.encoder.rnn
    enc, d = 0, rnn.input_size
    for _ in range(rnn.num_layers):
        enc += 2 * _lstm(d, rnn.hidden_size)
        d = 2 * rnn.hidden_size
    out = {"encoder BiLSTM": enc * float(src_lens.sum())}
    out.update(_decoder_flops(model.decoder, tgt_lens, src_lens))
    return out


def asr_flops(model, batch: dict) -> dict[str, float]:
    """Forward matmul FLOPs of :class:`ASRModel` (blstm or pyramidal) on ``batch``."""
    from seqkit.nn.frontend import stacked_lengths

    lens = batch["feat_lengths"]
    k = model.stack if model.front == "stack" else 1
    if model.front == "conv":
        raise NotImplementedError("conv front end")
    lens = stacked_lengths(lens, k)
    out = {}
    if model.encoder_kind == "blstm":
        rnn = model.encoder.rnn
        enc, d = 0, rnn.input_size
        for _ in range(rnn.num_layers):
            enc += 2 * _lstm(d, rnn.hidden_size)
            d = 2 * rnn.hidden_size
        out["encoder BiLSTM"] = enc * float(lens.sum())
    else:
        out.update(pyramid_flops(model, lens))
        lens = model.encoded_lengths(batch["feat_lengths"])
    if model.ctc is not None:
        out["CTC projection"] = 2 * model.ctc.proj.in_features * model.ctc.proj.out_features * float(lens.sum())
    if model.decoder is not None:
        tgt_lens = (batch["tgt_out"] != model.pad_id).sum(1)
        for key, val in _decoder_flops(model.decoder, tgt_lens, lens).items():
            out[key] = val
    return out


def pyramid_flops(model, lens: torch.Tensor) -> dict[str, float]:
    """Encoder FLOPs of a pyramidal ASR encoder: the bottom BiLSTM at ``lens`` positions, pyramid
    layer j at ceil(lens / 2^j) positions (input: two concatenated 2H frames), then ``top``."""
    lstms = [m for m in model.encoder.modules() if isinstance(m, torch.nn.LSTM)]
    flops, cur = 0.0, lens.clone()
    for i, rnn in enumerate(lstms):
        if i > 0:
            cur = (cur + 1) // 2
        flops += _stack_flops(rnn) * float(cur.sum())
    if model.top is not None:
        flops += _stack_flops(model.top.rnn) * float(cur.sum())
    return {"encoder pyramidal BiLSTM": flops}


def _stack_flops(rnn) -> float:
    enc, d = 0, rnn.input_size
    for _ in range(rnn.num_layers):
        enc += 2 * _lstm(d, rnn.hidden_size)
        d = 2 * rnn.hidden_size
    return enc
