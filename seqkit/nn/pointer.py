"""Pointer network: a decoder whose outputs are positions of its input.

Vinyals, Fortunato & Jaitly (2015), "Pointer Networks", NeurIPS.  An LSTM encoder reads the
input vectors ``P = (P_1 .. P_n)`` into states ``e_1 .. e_n``; an LSTM decoder with states
``d_i`` is fed, at step ``i``, the input vector at the position it pointed to at step
``i - 1`` (a learned start vector at step 0); its output distribution over input positions
is the softmax of additive attention energies (Bahdanau, Cho & Bengio 2015)::

    u^i_j = v^T tanh(W_1 e_j + W_2 d_i),   p(C_i = j | C_<i, P) = softmax_j(u^i_j)

restricted to the real (unpadded) positions ``j < n``.  The energies come from
:class:`seqkit.nn.attention.AdditiveAttention` (its ``energies``, which is ``-inf`` at
padding), so the module is a thin composition of an :class:`~seqkit.nn.rnn.RNNEncoder`,
an ``LSTMCell`` and that attention.

Incremental decoding follows ``seqkit/search/state.py``: ``step(tokens, state)`` takes the
previously chosen positions (``tokens < 0`` means "start") and returns log-probabilities
over the input positions, so beam search works unchanged (the "vocabulary" is the
``S`` input positions).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqkit.data.batching import lengths_to_mask
from seqkit.nn.attention import AdditiveAttention
from seqkit.nn.cells import TorchLSTMCell
from seqkit.nn.rnn import RNNEncoder
from seqkit.search.state import State

__all__ = ["POINTER_START", "PointerNetwork"]

#: Token value that means "no position chosen yet" (the learned start vector is fed).
#: Any negative value is treated the same way, so target padding such as ``-100`` is safe.
POINTER_START = -1


class PointerNetwork(nn.Module):
    """Pointer network (Vinyals, Fortunato & Jaitly 2015, "Pointer Networks").

    Args:
        input_size: D, features per input element (e.g. 1 for scalars to sort, 2 for
            planar points).
        hidden_size: H, LSTM units per encoder direction.  The decoder LSTM has
            ``H * directions`` units and starts from the encoder's final (h, c) of the top
            layer (both directions concatenated, forward first), as in the paper.
        attn_size: A, size of the additive-attention hidden layer (default: decoder size).
        num_layers: encoder LSTM layers (the decoder is one ``LSTMCell``).
        bidirectional: bidirectional encoder (the paper's is unidirectional).
        mask_chosen: if True, positions already pointed to in this sequence get probability
            exactly 0 (for permutation outputs such as sorting, as in later pointer-network
            work, e.g. Bello et al. 2016).  Once every real position of a row has been
            chosen the restriction is lifted for that row (the distribution is again over
            all its real positions), so ``step`` never returns an all ``-inf`` row.
        dropout: between encoder layers.

    Shapes:
        inputs: (B, S, D) float; lengths: (B,) long, 1 <= lengths <= S.
        target_positions: (B, L) long, values in ``[0, lengths[b])`` at real steps; any
            negative value (e.g. -100) marks padding.
        forward returns log-probabilities (B, L, S), ``-inf`` at padded input positions
        (and at already-chosen positions with ``mask_chosen``).  Train with
        ``F.nll_loss(log_probs.transpose(1, 2), target_positions, ignore_index=-100)``.

    The output length is not predicted: for permutation tasks it is the input length; for
    tasks with variable output length append an "end" element to the input (a sentinel
    vector) and stop when it is pointed to, as Vinyals et al. do.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        attn_size: int | None = None,
        num_layers: int = 1,
        bidirectional: bool = False,
        mask_chosen: bool = False,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.encoder = RNNEncoder(
            input_size, hidden_size, num_layers, bidirectional, cell="lstm", dropout=dropout
        )
        dec = self.encoder.output_size
        self.directions = 2 if bidirectional else 1
        self.decoder = TorchLSTMCell(input_size, dec)
        self.attention = AdditiveAttention(dec, dec, attn_size or dec)
        self.start = nn.Parameter(torch.empty(input_size))
        nn.init.uniform_(self.start, -0.1, 0.1)
        self.mask_chosen = mask_chosen

    def init_state(self, inputs: Tensor, lengths: Tensor) -> State:
        """Encode ``inputs`` (B, S, D) with ``lengths`` (B,) into the decoding state.

        Every entry is batch-first: ``inputs`` (B, S, D), ``memory`` (B, S, Hd), ``mask``
        (B, S) bool, ``proj_keys`` (B, S, A), ``h`` / ``c`` (B, Hd) and, with
        ``mask_chosen``, ``chosen`` (B, S) bool.
        """
        memory, (h_n, c_n) = self.encoder(inputs, lengths)  # memory (B, S, Hd)
        k = self.directions
        # top layer, directions concatenated forward first: (k, B, H) -> (B, k * H)
        h = torch.cat(list(h_n[-k:]), dim=-1)
        c = torch.cat(list(c_n[-k:]), dim=-1)
        mask = lengths_to_mask(lengths.to(inputs.device), inputs.size(1))
        state = {
            "inputs": inputs,
            "memory": memory,
            "mask": mask,
            "proj_keys": self.attention.project_keys(memory),
            "h": h,
            "c": c,
        }
        if self.mask_chosen:
            state["chosen"] = torch.zeros_like(mask)
        return state

    def step(self, tokens: Tensor, state: State) -> tuple[Tensor, State]:
        """One decoder step (search contract of ``seqkit/search/state.py``).

        tokens: (N,) long, the position chosen at the previous step (negative: start).
        Returns log-probabilities (N, S) over input positions and the new state.
        """
        inputs, mask = state["inputs"], state["mask"]
        n = inputs.size(0)
        started = tokens >= 0  # (N,)
        pos = tokens.clamp(min=0)
        prev = inputs[torch.arange(n, device=inputs.device), pos]  # (N, D)
        x = torch.where(started.unsqueeze(1), prev, self.start.expand_as(prev))
        h, c = self.decoder(x, (state["h"], state["c"]))
        energies = self.attention.energies(
            h, state["memory"], mask, proj_keys=state["proj_keys"]
        )  # (N, S), -inf at padding
        new_state = dict(state, h=h, c=c)
        if self.mask_chosen:
            hit = F.one_hot(pos, inputs.size(1)).bool() & started.unsqueeze(1)  # (N, S)
            chosen = state["chosen"] | hit
            avail = mask & ~chosen
            avail = torch.where(avail.any(dim=1, keepdim=True), avail, mask)
            energies = energies.masked_fill(~avail, float("-inf"))
            new_state["chosen"] = chosen
        return torch.log_softmax(energies, dim=-1), new_state

    def forward(self, inputs: Tensor, lengths: Tensor, target_positions: Tensor) -> Tensor:
        """Teacher-forced log-probabilities (B, L, S) of the positions at each output step.

        Step ``i`` is fed the input at ``target_positions[:, i - 1]`` (the start vector at
        step 0), exactly as :meth:`step` is during decoding.
        """
        state = self.init_state(inputs, lengths)
        b, steps = target_positions.shape
        start = target_positions.new_full((b, 1), POINTER_START)
        tokens_in = torch.cat([start, target_positions[:, :-1]], dim=1)  # (B, L)
        out = []
        for i in range(steps):
            logp, state = self.step(tokens_in[:, i], state)
            out.append(logp)
        return torch.stack(out, dim=1)  # (B, L, S)

    @torch.no_grad()
    def greedy_decode(
        self, inputs: Tensor, lengths: Tensor, max_steps: int | None = None
    ) -> Tensor:
        """Greedy decoding: (B, max_steps) long positions (default ``max_steps = S``).

        No stopping criterion: for permutations take the first ``lengths[b]`` of row ``b``.
        """
        state = self.init_state(inputs, lengths)
        steps = inputs.size(1) if max_steps is None else max_steps
        tokens = torch.full(
            (inputs.size(0),), POINTER_START, dtype=torch.long, device=inputs.device
        )
        out = []
        for _ in range(steps):
            logp, state = self.step(tokens, state)
            tokens = logp.argmax(dim=-1)
            out.append(tokens)
        return torch.stack(out, dim=1)
