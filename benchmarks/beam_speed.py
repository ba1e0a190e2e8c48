"""Batched beam search vs a per-sentence beam loop: sentences per second.

Both run :func:`seqkit.search.beam.beam_search` (the per-sentence loop is
:func:`~seqkit.search.beam.beam_search_per_sentence`: the same algorithm with B = 1 per
call) on an :class:`seqkit.nn.decoder.AttentionalDecoder` with random weights over a random
encoder memory of varied lengths; the script checks that both return the same hypotheses
and prints the two throughputs and their ratio.  ``--toy`` (or a checkout without
``seqkit.nn.decoder``) uses a small GRU + dot-attention decoder defined here instead.

With the AttentionalDecoder's random weights no best hypothesis ended with EOS in our runs
(the script prints how many did), so every sentence ran to its ``max_len`` (its source length
+ 5): the same, fixed work in both modes, sentences leaving the batched search as they
reach their own limit.  Times are medians of
``--repeats`` runs after a warm-up on 4 sentences.

Usage (2 CPU threads by default)::

    python benchmarks/beam_speed.py                      # batch 64, beam 5
    python benchmarks/beam_speed.py --batch 16 --beam 10 --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time

import _bench_common  # noqa: F401  (puts this checkout first on sys.path)
import torch
from torch import Tensor, nn

from seqkit.search.beam import beam_search, beam_search_per_sentence
from seqkit.search.state import State


class ToyAttnDecoder(nn.Module):
    """GRU decoder with masked dot-product attention (Luong et al. 2015, "dot" score)."""

    def __init__(self, vocab: int, emb: int, hidden: int, memory: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab, emb)
        self.cell = nn.GRUCell(emb + hidden, hidden)
        self.query = nn.Linear(hidden, memory, bias=False)
        self.combine = nn.Linear(hidden + memory, hidden, bias=False)
        self.out_proj = nn.Linear(hidden, vocab)

    def init_state(self, memory: Tensor, memory_mask: Tensor) -> State:
        b = memory.size(0)
        h = memory.new_zeros(b, self.cell.hidden_size)
        return {"memory": memory, "mask": memory_mask, "h": h, "feed": h}

    def step(self, tokens: Tensor, state: State) -> tuple[Tensor, State]:
        x = torch.cat([self.embedding(tokens), state["feed"]], dim=1)
        h = self.cell(x, state["h"])  # (N, H)
        e = torch.einsum("nd,nsd->ns", self.query(h), state["memory"])  # (N, S)
        a = e.masked_fill(~state["mask"], float("-inf")).softmax(-1)
        ctx = torch.einsum("ns,nsd->nd", a, state["memory"])  # (N, Dm)
        feed = torch.tanh(self.combine(torch.cat([ctx, h], dim=1)))
        return self.out_proj(feed).log_softmax(-1), dict(state, h=h, feed=feed)


def build_decoder(args) -> tuple[nn.Module, str]:
    if not args.toy:
        try:
            from seqkit.nn.decoder import AttentionalDecoder
        except ImportError:
            pass
        else:
            dec = AttentionalDecoder(
                args.vocab, args.emb, args.hidden, args.memory, attention=args.attention
            )
            return dec, f"seqkit.nn.decoder.AttentionalDecoder (lstm, {args.attention} attention)"
    return ToyAttnDecoder(args.vocab, args.emb, args.hidden, args.memory), "toy GRU + dot attention"


def timed(fn, repeats: int, sync) -> tuple[list[float], object]:
    times, out = [], None
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        out = fn()
        sync()
        times.append(time.perf_counter() - t0)
    return times, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--vocab", type=int, default=1000)
    p.add_argument("--emb", type=int, default=128)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--memory", type=int, default=256)
    p.add_argument("--attention", default="additive")
    p.add_argument("--src-len", type=int, nargs=2, default=(10, 40), metavar=("MIN", "MAX"))
    p.add_argument("--extra-len", type=int, default=5, help="max_len = source length + this")
    p.add_argument("--length-penalty", type=float, default=0.6)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--toy", action="store_true", help="use the toy decoder defined here")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    dec, name = build_decoder(args)
    dec = dec.to(device).eval()
    bos, eos = 1, 2
    b = args.batch
    lengths = torch.randint(args.src_len[0], args.src_len[1] + 1, (b,))
    memory = torch.randn(b, int(lengths.max()), args.memory, device=device)
    mask = (torch.arange(memory.size(1)) < lengths.unsqueeze(1)).to(device)
    max_len = lengths + args.extra_len
    kw = dict(beam=args.beam, bos=bos, eos=eos, max_len=max_len, length_penalty=args.length_penalty)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    with torch.no_grad():
        state = dec.init_state(memory, mask)
        few = {k: v[:4] for k, v in state.items()}
        beam_search(dec, few, **dict(kw, max_len=max_len[:4]))  # warm-up
        beam_search_per_sentence(dec, few, **dict(kw, max_len=max_len[:4]))
        t_batched, out_b = timed(lambda: beam_search(dec, state, **kw), args.repeats, sync)
        t_single, out_s = timed(
            lambda: beam_search_per_sentence(dec, state, **kw), args.repeats, sync
        )

    same = all(
        [h.tokens for h in x] == [h.tokens for h in y] for x, y in zip(out_b, out_s, strict=True)
    )
    finished = sum(h[0].finished for h in out_b)
    steps = [h[0].length for h in out_b]
    sps_b = b / statistics.median(t_batched)
    sps_s = b / statistics.median(t_single)
    print(f"decoder: {name}; V={args.vocab} E={args.emb} H={args.hidden} Dm={args.memory}")
    print(
        f"batch {b}, beam {args.beam}, source length {args.src_len[0]}-{args.src_len[1]}, "
        f"max_len = source + {args.extra_len}, length_penalty {args.length_penalty}, "
        f"device {args.device}, threads {torch.get_num_threads()}, repeats {args.repeats}"
    )
    print(
        f"best hypotheses: {finished}/{b} finished, mean {sum(steps) / b:.1f} steps; "
        f"batched == per-sentence hypotheses: {same}"
    )
    print(f"batched beam search:  {sps_b:8.1f} sentences/s  (runs: {fmt(t_batched)} s)")
    print(f"per-sentence loop:    {sps_s:8.1f} sentences/s  (runs: {fmt(t_single)} s)")
    print(f"speed-up: {sps_b / sps_s:.2f}x")


def fmt(times: list[float]) -> str:
    return ", ".join(f"{t:.3f}" for t in times)


if __name__ == "__main__":
    main()
