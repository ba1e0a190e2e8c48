"""Masked recurrent encoders over padded batches.

* :class:`RNNEncoder` -- deep (bi)directional RNN over ``(x, lengths)``.  The plain cells
  (``"lstm"``, ``"gru"``, ``"rnn"``, ``"irnn"``) run on ``torch.nn.LSTM/GRU/RNN``, the fused
  fast path; the custom cells (``"peephole_lstm"``, ``"layernorm_lstm"``, ``"jordan"``) on
  :class:`CellRNN`.
* :class:`CellRNN` -- any :class:`seqkit.nn.cells.RecurrentCell` stacked and
  bidirectional, with dropout between layers.
* :func:`masked_scan` -- one cell over a padded batch, forward or backward in time.
* :func:`reverse_padded` -- reverse each sequence within its own length.

Masking guarantee (every path): outputs at real positions equal those of the sequence run
alone, outputs at padded positions are exactly zero, and the final state of each direction
is its state after the sequence's last real step (frame ``len - 1`` forward, frame 0
backward), as ``torch.nn.LSTM`` returns it for a packed batch.

References: Elman 1990, "Finding Structure in Time"; Hochreiter & Schmidhuber 1997,
"Long Short-Term Memory"; Cho et al. 2014, "Learning Phrase Representations using RNN
Encoder-Decoder for Statistical Machine Translation" (GRU); Schuster & Paliwal 1997,
"Bidirectional Recurrent Neural Networks"; Le, Jaitly & Hinton 2015 (IRNN).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqkit.data.batching import lengths_to_mask
from seqkit.nn.cells import CELLS, RecurrentCell, irnn_init_
from seqkit.nn.dropout import Dropout, dropout

__all__ = ["CellRNN", "RNNEncoder", "masked_scan", "reverse_padded"]

CellState = tuple[Tensor, ...]
# A torch.nn-style state: one (layers * dirs, B, S) tensor, or a tuple of them (LSTM: (h, c)).
RNNState = Tensor | tuple[Tensor, ...]


def _check_lengths(lengths: Tensor, total: int) -> tuple[int, int]:
    lo, hi = int(lengths.min()), int(lengths.max())
    if lo < 1 or hi > total:
        raise ValueError(f"lengths must lie in [1, T={total}], got min {lo} and max {hi}")
    return lo, hi


def _reverse_index(lengths: Tensor, total: int) -> Tensor:
    """(B, T) long: ``len - 1 - t`` for ``t < len``, ``t`` otherwise (an involution)."""
    steps = torch.arange(total, device=lengths.device)  # (T,)
    n = lengths.unsqueeze(1)  # (B, 1)
    return torch.where(steps < n, n - 1 - steps, steps)


class _TimePermutation(torch.autograd.Function):
    """``x.gather(1, index)`` for a permutation ``index`` of the time axis that is its own
    inverse; the backward is then the same gather (no zero-fill + scatter-add)."""

    @staticmethod
    def forward(ctx, x: Tensor, index: Tensor) -> Tensor:
        ctx.save_for_backward(index)
        return x.gather(1, index.view(*index.shape, *[1] * (x.dim() - 2)).expand_as(x))

    @staticmethod
    def backward(ctx, grad: Tensor):
        (index,) = ctx.saved_tensors
        return _TimePermutation.apply(grad, index), None


def reverse_padded(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse every sequence within its own length; padded positions stay where they are.

    Shapes: x ``(B, T, *F)``, lengths ``(B,)`` with ``1 <= lengths <= T``; returns
    ``(B, T, *F)`` with ``out[b, t] = x[b, len_b - 1 - t]`` for ``t < len_b`` and
    ``out[b, t] = x[b, t]`` otherwise.  Applying it twice gives ``x`` back.
    """
    _check_lengths(lengths, x.size(1))
    return _TimePermutation.apply(x, _reverse_index(lengths.to(x.device), x.size(1)))


def masked_scan(
    cell: RecurrentCell,
    x: Tensor,
    lengths: Tensor,
    state: CellState | None = None,
    reverse: bool = False,
) -> tuple[Tensor, CellState]:
    """Run ``cell`` over a padded batch, forward or backward in time.

    The state of sequence ``b`` is only updated at its real steps ``t < len_b``: forward,
    it stops at ``len_b - 1``; backward (``reverse=True``), it stays at the initial state
    through the padding and starts at the sequence's own last real frame ``len_b - 1``,
    ending after frame 0.  So each sequence is processed exactly as if it were alone.

    Args:
        cell: a :class:`~seqkit.nn.cells.RecurrentCell`.
        x: ``(B, T, D)``.  lengths: ``(B,)`` long, ``1 <= lengths <= T``.
        state: initial state, a tuple of ``(B, S_k)``; zeros when None.
        reverse: run from the end of each sequence to its start.

    Returns:
        outputs ``(B, T, O)`` (the cell output at each real step, in the original time
        order, exactly zero at padded positions) and the final state (tuple of ``(B, S_k)``).
    """
    batch, total = x.shape[:2]
    lo, hi = _check_lengths(lengths, total)
    if state is None:
        state = cell.init_state(batch, x)
    real = lengths_to_mask(lengths.to(x.device), total).unsqueeze(-1)  # (B, T, 1)
    x = x[:, :hi].masked_fill(~real[:, :hi], 0.0)  # padding may hold anything, even NaN
    xp = cell.project_input(x)  # (B, hi, G): the state-free part, all steps at once
    outs: list[Tensor] = [None] * hi  # type: ignore[list-item]
    for t in range(hi - 1, -1, -1) if reverse else range(hi):
        out, new = cell.step(xp[:, t], state)
        if t < lo:  # every sequence is real here
            state = new
        else:
            m = real[:, t]  # (B, 1)
            state = tuple(torch.where(m, n, s) for n, s in zip(new, state))
            out = out.masked_fill(~m, 0.0)
        outs[t] = out
    y = torch.stack(outs, dim=1)  # (B, hi, O)
    return F.pad(y, (0, 0, 0, total - hi)), state  # (B, T, O)


def _split_state(state: RNNState | None, n_states: int, index: int) -> CellState | None:
    if state is None:
        return None
    parts = (state,) if isinstance(state, Tensor) else tuple(state)
    if len(parts) != n_states:
        raise ValueError(f"expected a state of {n_states} tensor(s), got {len(parts)}")
    return tuple(p[index] for p in parts)


class CellRNN(nn.Module):
    """Stacked, optionally bidirectional RNN over any :class:`~seqkit.nn.cells.RecurrentCell`.

    Layer ``l`` runs one cell forward (and, if bidirectional, a second one backward) over
    the padded batch with :func:`masked_scan`; the next layer reads their concatenated
    outputs, through ``dropout`` (not after the last layer, as in ``torch.nn.LSTM``).

    Args:
        cell: a name in :data:`seqkit.nn.cells.CELLS` (``"elman"``, ``"lstm"``, ``"gru"``,
            ``"peephole_lstm"``, ``"layernorm_lstm"``, ``"jordan"``, ``"irnn"``) or a
            ``RecurrentCell`` subclass, built as ``cell(input_size, hidden_size,
            **cell_kwargs)``.
        input_size: D.  hidden_size: H, per cell.
        num_layers: stacked layers.  bidirectional: two directions per layer.
        dropout: dropout probability on the inputs of layers 2..L.

    Shapes:
        x ``(B, T, D)``, lengths ``(B,)`` long, optional state in ``torch.nn`` layout (one
        ``(layers * dirs, B, S)`` tensor, or a tuple of them for multi-tensor states such
        as an LSTM's ``(h, c)``); index ``layer * dirs + direction``.
        returns outputs ``(B, T, O * dirs)`` (zero at padded positions) and the final
        state in the same layout.

    Parameters: ``cells[layer * dirs + direction]``.
    """

    def __init__(
        self,
        cell: str | type[RecurrentCell],
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        **cell_kwargs,
    ):
        super().__init__()
        if isinstance(cell, str):
            if cell not in CELLS:
                raise ValueError(f"cell must be one of {sorted(CELLS)}, got {cell!r}")
            cell = CELLS[cell]
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.num_layers, self.bidirectional = num_layers, bidirectional
        self.num_directions = 2 if bidirectional else 1
        self.input_size, self.hidden_size = input_size, hidden_size
        cells, size = [], input_size
        for _ in range(num_layers):
            layer = [cell(size, hidden_size, **cell_kwargs) for _ in range(self.num_directions)]
            cells += layer
            size = layer[0].output_size * self.num_directions
        self.cells = nn.ModuleList(cells)
        self.output_size = size
        self.n_states = len(self.cells[0].state_sizes)
        self.dropout = Dropout(dropout)

    def forward(
        self, x: Tensor, lengths: Tensor, state: RNNState | None = None
    ) -> tuple[Tensor, RNNState]:
        finals: list[CellState] = []
        y = x
        for layer in range(self.num_layers):
            if layer > 0:
                y = self.dropout(y)  # zeros at padded positions stay zero
            outs = []
            for d in range(self.num_directions):
                k = layer * self.num_directions + d
                out, final = masked_scan(
                    self.cells[k], y, lengths, _split_state(state, self.n_states, k), bool(d)
                )
                outs.append(out)
                finals.append(final)
            y = torch.cat(outs, dim=-1)  # (B, T, O * dirs)
        stacked = tuple(torch.stack([f[i] for f in finals]) for i in range(self.n_states))
        return y, (stacked[0] if self.n_states == 1 else stacked)


_BUILTINS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN, "irnn": nn.RNN}
_CUSTOM = ("peephole_lstm", "layernorm_lstm", "jordan")
_WEIGHTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
# A gate pre-activation of +-1e4 rounds sigmoid to exactly 1 or 0 (float16/32/64), and its
# derivative to exactly 0.
_SATURATE = 1e4
_ALIGN = 16


class RNNEncoder(nn.Module):
    """Deep (bi)directional RNN over a padded batch.

    Args:
        input_size: D, features per input position.
        hidden_size: H, units per direction.
        num_layers: stacked layers, with ``dropout`` between them.
        bidirectional: concatenate forward and backward states (output 2H).
        cell: on ``torch.nn`` (fused, fast): ``"lstm"``, ``"gru"``, ``"rnn"`` (Elman, tanh),
            ``"irnn"`` (``nn.RNN`` with ReLU and the IRNN initialisation of Le et al. 2015,
            i.e. :class:`~seqkit.nn.cells.IRNNCell`'s function).  On :class:`CellRNN` (a
            Python time loop): ``"peephole_lstm"``, ``"layernorm_lstm"``, ``"jordan"``, or
            any ``RecurrentCell`` subclass.
        dropout: between layers.
        impl: how the ``torch.nn`` cells handle padding.  ``"packed"``:
            ``pack_padded_sequence`` (cuDNN handles it natively; on CPU torch runs packed
            batches outside its fused oneDNN kernel, at about half to two thirds of its
            speed, see ``benchmarks/README.md``).  ``"padded"``: no packing, the fused
            kernel on the padded batch.  LSTM and GRU: one fused call per layer (both
            directions) with an extra input feature that saturates the gates at padded
            steps, so the state is carried through the padding unchanged, and is exactly
            zero where the backward direction reaches a sequence's last real frame (see
            ``_forward_gated``).  Elman RNNs: one call per direction, the backward one on
            each sequence reversed within its length (:func:`reverse_padded`).  Final
            states are taken after each sequence's last real step.  When all lengths are
            equal the whole stack is one plain call.  ``"auto"`` (default): ``"packed"``
            on CUDA, ``"padded"`` elsewhere.  Both give the same outputs, states and
            gradients up to float rounding (checked in ``tests/test_rnn.py``).  On CUDA
            ``"padded"`` works, but cuDNN then copies the per-call weights into one buffer.
        cell_kwargs: extra arguments of the cell: for ``"irnn"`` ``recurrent_scale`` and
            ``input_std``; for custom cells, their constructor arguments.

    Shapes:
        x: (B, T, D) float; lengths: (B,) long, 1 <= lengths <= T.
        returns: outputs (B, T, H * directions), zero at padded positions, and the final
        states as ``torch.nn.LSTM`` returns them for a packed batch (for LSTM-like cells a
        tuple (h, c), each (layers * directions, B, H); otherwise one such tensor).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = True,
        cell: str | type[RecurrentCell] = "lstm",
        dropout: float = 0.0,
        *,
        impl: Literal["auto", "packed", "padded"] = "auto",
        cell_kwargs: dict | None = None,
    ):
        super().__init__()
        if impl not in ("auto", "packed", "padded"):
            raise ValueError(f"impl must be 'auto', 'packed' or 'padded', got {impl!r}")
        kwargs = dict(cell_kwargs or {})
        self.cell, self.impl = cell, impl
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.bidirectional = bidirectional
        self.dropout = dropout
        dirs = 2 if bidirectional else 1
        if isinstance(cell, str) and cell in _BUILTINS:
            irnn = {k: kwargs.pop(k) for k in ("recurrent_scale", "input_std") if k in kwargs}
            if kwargs or (irnn and cell != "irnn"):
                raise ValueError(f"cell {cell!r} takes no cell_kwargs {sorted({**kwargs, **irnn})}")
            self.rnn = _BUILTINS[cell](
                input_size,
                hidden_size,
                num_layers=num_layers,
                bidirectional=bidirectional,
                batch_first=True,
                dropout=dropout if num_layers > 1 else 0.0,
                **({"nonlinearity": "relu"} if cell == "irnn" else {}),
            )
            if cell == "irnn":
                for layer in range(num_layers):
                    for sfx in ("", "_reverse")[:dirs]:
                        irnn_init_(
                            *(getattr(self.rnn, f"{w}_l{layer}{sfx}") for w in _WEIGHTS), **irnn
                        )
            self.output_size = hidden_size * dirs
        elif isinstance(cell, type) or cell in _CUSTOM:
            self.rnn = CellRNN(
                cell, input_size, hidden_size, num_layers, bidirectional, dropout, **kwargs
            )
            self.output_size = self.rnn.output_size
        else:
            raise ValueError(
                f"cell must be one of {sorted(_BUILTINS) + list(_CUSTOM)} or a RecurrentCell "
                f"subclass, got {cell!r}"
            )

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, RNNState]:
        if isinstance(self.rnn, CellRNN):
            return self.rnn(x, lengths)
        impl = self.impl
        if impl == "auto":
            impl = "packed" if x.is_cuda else "padded"
        if impl == "padded":
            return self._forward_padded(x, lengths)
        total = x.size(1)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, state = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=total)  # (B, T, H*dirs)
        return out, state

    # -- the unpacked path ---------------------------------------------------------------

    def _forward_padded(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, RNNState]:
        total = x.size(1)
        lo, hi = _check_lengths(lengths, total)
        x = x[:, :hi]  # steps past the longest sequence are padding for everyone
        if lo == hi:  # no padding inside x: one fused call, exact
            out, state = self.rnn(x)
        elif self.cell in ("lstm", "gru"):
            out, state = self._forward_gated(x, lengths.to(x.device, torch.long))
        else:
            out, state = self._forward_reversed(x, lengths.to(x.device, torch.long))
        if hi < total:
            out = F.pad(out, (0, 0, 0, total - hi))  # (B, T, H * dirs)
        return out, state

    def _weights(self, layer: int, sfx: str) -> list[Tensor]:
        return [getattr(self.rnn, f"{w}_l{layer}{sfx}") for w in _WEIGHTS]

    def _last_step(self, out: Tensor, lengths: Tensor) -> Tensor:
        """``out[b, len_b - 1]``: (B, T, H) -> (B, H)."""
        idx = (lengths - 1).view(-1, 1, 1).expand(-1, 1, out.size(-1))
        return out.gather(1, idx).squeeze(1)

    def _forward_gated(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, RNNState]:
        """LSTM/GRU: one fused (bidirectional) call per layer, padding held by the gates.

        Each layer's input gets one extra feature, 1 at padded steps and 0 at real ones
        (plus zero features up to a multiple of 16 columns, which the kernel runs faster),
        whose input weight is a constant +-1e4 on the gates that hold the state: an LSTM's
        input gate -> sigmoid = 0 and forget gate -> 1, so ``c`` is carried unchanged (and
        stays exactly 0 from a zero state, with ``h = o * tanh(0) = 0``); a GRU's update
        gate -> 1, so ``h`` is carried (exactly 0 from a zero state).  The backward
        direction, which meets the padding first, therefore starts every sequence at its
        last real frame from an exactly zero state; the forward direction meets the
        padding only after the real steps, keeps an LSTM's ``c`` at its final value, and
        its final ``h`` is read at step ``len - 1``.  Saturated gates have zero derivative,
        so padded steps add nothing to any gradient.
        """
        batch, steps, _ = x.shape
        dirs = 2 if self.bidirectional else 1
        hidden = self.hidden_size
        lstm = self.cell == "lstm"
        pad = (torch.arange(steps, device=x.device) >= lengths.unsqueeze(1)).unsqueeze(-1)
        rows = 4 * hidden if lstm else 3 * hidden
        saturate = x.new_zeros(rows)  # input weight of the flag feature
        if lstm:  # gate blocks i, f, g, o
            saturate[:hidden] = -_SATURATE
            saturate[hidden : 2 * hidden] = _SATURATE
        else:  # gate blocks r, z, n
            saturate[hidden : 2 * hidden] = _SATURATE

        def with_flag(y: Tensor) -> tuple[Tensor, Tensor]:
            # the flag, then zero features up to a multiple of _ALIGN: on the 2-core CPU of
            # benchmarks/README.md a ragged width (D + 1) slowed the oneDNN kernel by a few
            # per cent, more than the extra columns cost
            extra = _ALIGN - y.size(-1) % _ALIGN
            block = y.new_zeros(batch, steps, extra)
            block[..., :1] = pad
            column = y.new_zeros(rows, extra)
            column[:, 0] = saturate
            return torch.cat([y, block], dim=-1), column

        y, column = with_flag(x)  # (B, T, D + extra)
        y[..., : x.size(-1)].masked_fill_(pad, 0.0)  # whatever the caller put in the padding
        zero = x.new_zeros(dirs, batch, hidden)
        hs: list[Tensor] = []
        cs: list[Tensor] = []
        for layer in range(self.num_layers):
            if layer > 0:
                if self.training and self.dropout > 0:
                    y = dropout(y, self.dropout, training=True)
                y, column = with_flag(y)  # (B, T, H * dirs + extra)
            ws = []
            for sfx in ("", "_reverse")[:dirs]:
                w_ih, *rest = self._weights(layer, sfx)
                ws += [torch.cat([w_ih, column], dim=1), *rest]
            args = (ws, True, 1, 0.0, self.training, self.bidirectional, True)
            if lstm:
                y, h, c = torch.lstm(y, (zero, zero), *args)  # y: (B, T, H * dirs)
                cs += list(c)
            else:
                y, h = torch.gru(y, zero, *args)
            hs.append(self._last_step(y[..., :hidden], lengths))  # forward: at len - 1
            if dirs == 2:
                hs.append(h[1])  # backward: after frame 0, exact
        out = y.masked_fill(pad, 0.0)
        h_n = torch.stack(hs)  # (layers * dirs, B, H)
        return out, ((h_n, torch.stack(cs)) if lstm else h_n)

    def _forward_reversed(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, RNNState]:
        """Elman RNNs (no gate can hold a state): one fused call per layer and direction,
        the backward one on each sequence reversed within its length (padding behind it)."""
        steps = x.size(1)
        real = lengths_to_mask(lengths, steps).unsqueeze(-1)  # (B, T, 1)
        rev = _reverse_index(lengths, steps) if self.bidirectional else None
        fn = torch.rnn_relu if self.cell == "irnn" else torch.rnn_tanh
        zero = x.new_zeros(1, x.size(0), self.hidden_size)
        y = x.masked_fill(~real, 0.0)  # padded steps read zeros, whatever the caller put there
        hs: list[Tensor] = []
        for layer in range(self.num_layers):
            if layer > 0 and self.training and self.dropout > 0:
                y = dropout(y, self.dropout, training=True)
            args = (True, 1, 0.0, self.training, False, True)
            out, _ = fn(y, zero, self._weights(layer, ""), *args)  # (B, T, H)
            outs = [out]
            hs.append(self._last_step(out, lengths))
            if rev is not None:
                out, _ = fn(
                    _TimePermutation.apply(y, rev), zero, self._weights(layer, "_reverse"), *args
                )
                hs.append(self._last_step(out, lengths))  # reversed time: frame 0 is at len - 1
                outs.append(_TimePermutation.apply(out, rev))  # back to the original time order
            # zeroing also keeps a ReLU recurrence that grows over the padding out of the next layer
            y = torch.cat(outs, dim=-1).masked_fill(~real, 0.0)  # (B, T, H * dirs)
        return y, torch.stack(hs)
