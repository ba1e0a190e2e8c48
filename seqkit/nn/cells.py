"""Recurrent cells with one common step signature, for masked time loops.

Every cell here is a :class:`RecurrentCell`: it splits one time step into a part that does
not depend on the recurrent state (:meth:`~RecurrentCell.project_input`, applied to a whole
``(B, T, D)`` sequence at once, one matrix product instead of T) and the recurrent part
(:meth:`~RecurrentCell.step`).  The state is always a tuple of ``(B, S_k)`` tensors, batch
first, so :func:`seqkit.nn.rnn.masked_scan` and :class:`seqkit.nn.rnn.CellRNN` can run any
cell over a padded batch, and a decoder can keep the state in a
:mod:`seqkit.search.state` dict.

Cells:

* :class:`ElmanCell` -- Elman 1990, "Finding Structure in Time" (Cognitive Science 14):
  ``h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``; ``torch.nn.RNNCell`` layout.
* :class:`LSTMCell` -- Hochreiter & Schmidhuber 1997, "Long Short-Term Memory" (Neural
  Computation 9), with the forget gate of Gers, Schmidhuber & Cummins 2000; the weight
  layout (gates ``i, f, g, o``) of ``torch.nn.LSTMCell``, so weights copy across.
* :class:`GRUCell` -- Cho et al. 2014, "Learning Phrase Representations using RNN
  Encoder-Decoder for Statistical Machine Translation" (EMNLP); ``torch.nn.GRUCell`` layout
  (gates ``r, z, n``).
* :class:`PeepholeLSTMCell` -- Gers & Schmidhuber 2000, "Recurrent Nets that Time and
  Count" (IJCNN): the gates also see the cell state through diagonal peephole weights.
* :class:`TorchLSTMCell`, :class:`TorchGRUCell` -- ``torch.nn.LSTMCell`` / ``GRUCell`` whose
  products go through :func:`seqkit.nn.dense.linear` (oneDNN on the CPU); the decoders use them.
* :class:`LayerNormLSTMCell` -- Ba, Kiros & Hinton 2016, "Layer Normalization"
  (arXiv:1607.06450): layer normalisation of the input and recurrent terms and of the cell
  state, as in the paper's layer-normalised LSTM.
* :class:`JordanRNNCell` -- Jordan 1986, "Serial Order: A Parallel Distributed Processing
  Approach" (ICS Report 8604): the previous *output* ``y_{t-1}`` (not the hidden layer) is
  fed back, as in the Jordan RNNs of Mesnil et al. 2013 for spoken language understanding.
* :class:`IRNNCell` -- Le, Jaitly & Hinton 2015, "A Simple Way to Initialize Recurrent
  Networks of Rectified Linear Units" (arXiv:1504.00941): a ReLU Elman cell whose recurrent
  matrix starts as the identity and biases as zero.

The plain cells (Elman, LSTM, GRU) exist so that the generic loop can be checked against
``torch.nn.RNN/LSTM/GRU`` with copied weights; for speed use those built-ins (see
:class:`seqkit.nn.rnn.RNNEncoder`).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from seqkit.nn.activation import tanh
from seqkit.nn.dense import addmm_t, linear, onednn_applies

__all__ = [
    "CELLS",
    "ElmanCell",
    "GRUCell",
    "IRNNCell",
    "JordanRNNCell",
    "LSTMCell",
    "LayerNormLSTMCell",
    "PeepholeLSTMCell",
    "TorchGRUCell",
    "TorchLSTMCell",
    "RecurrentCell",
    "irnn_init_",
]

CellState = tuple[Tensor, ...]


class RecurrentCell(nn.Module):
    """Base class: one time step of a recurrent network, with a batch-first tuple state.

    Subclasses set ``input_size`` (D), ``hidden_size`` (H), ``output_size`` (O, what one step
    emits) and ``state_sizes`` (the width of each state tensor) and implement
    :meth:`project_input` and :meth:`step`.

    Shapes:
        project_input: ``(..., D) -> (..., G)``, the state-independent part of a step (the
        input projection), applied to whole sequences at once.
        step: ``xp (B, G)``, state ``tuple of (B, S_k)`` -> ``(out (B, O), new state)``.
        forward: ``x (B, D)``, optional state -> ``(out (B, O), new state)``; a zero state
        when ``state`` is None.
    """

    input_size: int
    hidden_size: int
    output_size: int
    state_sizes: tuple[int, ...]

    def init_state(self, batch: int, like: Tensor) -> CellState:
        """Zero state, a tuple of ``(batch, S_k)`` tensors with ``like``'s dtype/device."""
        return tuple(like.new_zeros(batch, s) for s in self.state_sizes)

    def project_input(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def step(self, xp: Tensor, state: CellState) -> tuple[Tensor, CellState]:
        raise NotImplementedError

    def forward(self, x: Tensor, state: CellState | None = None) -> tuple[Tensor, CellState]:
        if state is None:
            state = self.init_state(x.size(0), x)
        return self.step(self.project_input(x), state)


def _uniform_(params, hidden_size: int) -> None:
    # torch.nn.RNN/LSTM/GRU default: U(-1/sqrt(H), 1/sqrt(H)) for every weight and bias.
    bound = 1.0 / math.sqrt(hidden_size)
    for p in params:
        nn.init.uniform_(p, -bound, bound)


def _lstm_pointwise(gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """LSTM update from pre-activations ``gates (B, 4H)`` (blocks i, f, g, o) and ``c (B, H)``."""
    i, f, g, o = gates.chunk(4, dim=1)  # each (B, H)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * tanh(g)
    return torch.sigmoid(o) * tanh(c), c


def _gru_pointwise(xp: Tensor, hh: Tensor, h: Tensor) -> Tensor:
    """GRU update from ``xp = W_ih x + b_ih`` and ``hh = W_hh h + b_hh`` (B, 3H; blocks r, z, n)."""
    x_r, x_z, x_n = xp.chunk(3, dim=1)
    h_r, h_z, h_n = hh.chunk(3, dim=1)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = tanh(x_n + r * h_n)
    return n + z * (h - n)  # == (1 - z) * n + z * h


class ElmanCell(RecurrentCell):
    """Elman (simple) RNN cell, ``torch.nn.RNNCell`` parameter layout (Elman 1990).

    ``h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``, ``act`` tanh or ReLU; emits ``h_t``.

    Args:
        input_size: D.  hidden_size: H.  nonlinearity: ``"tanh"`` or ``"relu"``.

    Parameters: ``weight_ih (H, D)``, ``weight_hh (H, H)``, ``bias_ih (H,)``, ``bias_hh (H,)``.
    State: ``(h,)`` with h ``(B, H)``; output ``(B, H)``.
    """

    def __init__(
        self, input_size: int, hidden_size: int, nonlinearity: Literal["tanh", "relu"] = "tanh"
    ):
        super().__init__()
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, hidden_size
        self.state_sizes = (hidden_size,)
        self.nonlinearity = nonlinearity
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _uniform_(self.parameters(), self.hidden_size)

    def project_input(self, x: Tensor) -> Tensor:
        return linear(x, self.weight_ih, self.bias_ih + self.bias_hh)  # (..., H)

    def step(self, xp: Tensor, state: CellState) -> tuple[Tensor, CellState]:
        (h,) = state
        pre = addmm_t(xp, h, self.weight_hh)  # (B, H)
        h = torch.tanh(pre) if self.nonlinearity == "tanh" else torch.relu(pre)
        return h, (h,)


class IRNNCell(ElmanCell):
    """ReLU RNN with identity-initialised recurrence (IRNN; Le, Jaitly & Hinton 2015).

    The :class:`ElmanCell` equations with ``act = ReLU``; at initialisation ``W_hh =
    recurrent_scale * I``, both biases zero and ``W_ih ~ N(0, input_std^2)`` (the paper uses
    ``I`` and draws the input weights from ``N(0, 0.001)``; a scale below 1 is its
    suggestion for long-range tasks).  The same parameters in a
    ``torch.nn.RNN(nonlinearity="relu")`` give the same function, which is how
    :class:`seqkit.nn.rnn.RNNEncoder` runs ``cell="irnn"`` fast.

    Shapes: as :class:`ElmanCell`.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        recurrent_scale: float = 1.0,
        input_std: float = 0.001,
    ):
        self.recurrent_scale, self.input_std = recurrent_scale, input_std
        super().__init__(input_size, hidden_size, nonlinearity="relu")

    def reset_parameters(self) -> None:
        irnn_init_(
            self.weight_ih,
            self.weight_hh,
            self.bias_ih,
            self.bias_hh,
            self.recurrent_scale,
            self.input_std,
        )


@torch.no_grad()
def irnn_init_(
    weight_ih: Tensor,
    weight_hh: Tensor,
    bias_ih: Tensor | None,
    bias_hh: Tensor | None,
    recurrent_scale: float = 1.0,
    input_std: float = 0.001,
) -> None:
    """In-place IRNN initialisation (Le et al. 2015): ``W_hh = scale * I``, biases 0,
    ``W_ih ~ N(0, input_std^2)``."""
    nn.init.normal_(weight_ih, 0.0, input_std)
    weight_hh.copy_(recurrent_scale * torch.eye(weight_hh.size(0), dtype=weight_hh.dtype))
    for b in (bias_ih, bias_hh):
        if b is not None:
            b.zero_()


class LSTMCell(RecurrentCell):
    """LSTM cell with a forget gate, ``torch.nn.LSTMCell`` layout (Hochreiter & Schmidhuber
    1997; Gers, Schmidhuber & Cummins 2000, "Learning to Forget").

    ``[i, f, g, o] = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh``;
    ``c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)``; ``h_t = sigmoid(o) * tanh(c_t)``.

    Args:
        input_size: D.  hidden_size: H.

    Parameters: ``weight_ih (4H, D)``, ``weight_hh (4H, H)``, ``bias_ih (4H,)``,
    ``bias_hh (4H,)``, gate blocks in the order i, f, g, o.
    State: ``(h, c)``, each ``(B, H)``; output ``h_t`` ``(B, H)``.
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, hidden_size
        self.state_sizes = (hidden_size, hidden_size)
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(4 * hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(4 * hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _uniform_(self.parameters(), self.hidden_size)

    def project_input(self, x: Tensor) -> Tensor:
        return linear(x, self.weight_ih, self.bias_ih + self.bias_hh)  # (..., 4H)

    def step(self, xp: Tensor, state: CellState) -> tuple[Tensor, CellState]:
        h, c = state
        h, c = _lstm_pointwise(addmm_t(xp, h, self.weight_hh), c)  # gates (B, 4H)
        return h, (h, c)


class PeepholeLSTMCell(LSTMCell):
    """LSTM with peephole connections (Gers & Schmidhuber 2000, "Recurrent Nets that Time
    and Count"; the form of Graves 2013, "Generating Sequences With Recurrent Neural
    Networks", eq. 7-11)::

        i_t = sigmoid(W_xi x_t + W_hi h_{t-1} + p_i * c_{t-1} + b_i)
        f_t = sigmoid(W_xf x_t + W_hf h_{t-1} + p_f * c_{t-1} + b_f)
        c_t = f_t * c_{t-1} + i_t * tanh(W_xg x_t + W_hg h_{t-1} + b_g)
        o_t = sigmoid(W_xo x_t + W_ho h_{t-1} + p_o * c_t + b_o)
        h_t = o_t * tanh(c_t)

    The peepholes are diagonal: ``peephole (3, H)`` holds ``p_i, p_f, p_o``; note the output
    gate looks at the *new* cell state ``c_t``.  All other parameters are those of
    :class:`LSTMCell` (so with ``peephole`` zero it is exactly an LSTM).

    Shapes: as :class:`LSTMCell`.
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__(input_size, hidden_size)
        self.peephole = nn.Parameter(torch.empty(3, hidden_size))
        _uniform_([self.peephole], hidden_size)

    def step(self, xp: Tensor, state: CellState) -> tuple[Tensor, CellState]:
        h, c = state
        gates = addmm_t(xp, h, self.weight_hh)  # (B, 4H)
        i, f, g, o = gates.chunk(4, dim=1)  # each (B, H)
        p_i, p_f, p_o = self.peephole  # each (H,)
        c = torch.sigmoid(f + p_f * c) * c + torch.sigmoid(i + p_i * c) * torch.tanh(g)
        h = torch.sigmoid(o + p_o * c) * torch.tanh(c)
        return h, (h, c)


class LayerNormLSTMCell(RecurrentCell):
    """Layer-normalised LSTM (Ba, Kiros & Hinton 2016, "Layer Normalization")::

        [i, f, g, o] = LN(W_hh h_{t-1}; a_hh, b_hh) + LN(W_ih x_t; a_ih, b_ih) + b
        c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)
        h_t = sigmoid(o) * tanh(LN(c_t; a_c, b_c))

    Each LN normalises over its whole vector (all 4H gate pre-activations together, as in
    the paper, or the H cell units), with learned gain and bias initialised to 1 and 0.

    Args:
        input_size: D.  hidden_size: H.  eps: LN epsilon.

    Parameters: ``weight_ih (4H, D)``, ``weight_hh (4H, H)`` (no biases), ``bias (4H,)``,
    ``ln_ih``/``ln_hh`` (``LayerNorm(4H)``), ``ln_c`` (``LayerNorm(H)``).
    State: ``(h, c)``, each ``(B, H)``; output ``h_t`` ``(B, H)``.
    """

    def __init__(self, input_size: int, hidden_size: int, eps: float = 1e-5):
        super().__init__()
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, hidden_size
        self.state_sizes = (hidden_size, hidden_size)
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias = nn.Parameter(torch.empty(4 * hidden_size))
        self.ln_ih = nn.LayerNorm(4 * hidden_size, eps=eps)
        self.ln_hh = nn.LayerNorm(4 * hidden_size, eps=eps)
        self.ln_c = nn.LayerNorm(hidden_size, eps=eps)
        _uniform_([self.weight_ih, self.weight_hh, self.bias], hidden_size)

    def project_input(self, x: Tensor) -> Tensor:
        return self.ln_ih(linear(x, self.weight_ih)) + self.bias  # (..., 4H)

    def step(self, xp: Tensor, state: CellState) -> tuple[Tensor, CellState]:
        h, c = state
        gates = xp + self.ln_hh(linear(h, self.weight_hh))  # (B, 4H)
        i, f, g, o = gates.chunk(4, dim=1)  # each (B, H)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(self.ln_c(c))
        return h, (h, c)


class GRUCell(RecurrentCell):
    """Gated recurrent unit, ``torch.nn.GRUCell`` layout (Cho et al. 2014)::

        r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
        z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
        h_t = (1 - z) * n + z * h_{t-1}

    Args:
        input_size: D.  hidden_size: H.

    Parameters: ``weight_ih (3H, D)``, ``weight_hh (3H, H)``, ``bias_ih (3H,)``,
    ``bias_hh (3H,)``, gate blocks r, z, n.  State ``(h,)``; output ``h_t`` ``(B, H)``.
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, hidden_size
        self.state_sizes = (hidden_size,)
        self.weight_ih = nn.Parameter(torch.empty(3 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(3 * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(3 * hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(3 * hidden_size))
        _uniform_(self.parameters(), hidden_size)

    def project_input(self, x: Tensor) -> Tensor:
        return linear(x, self.weight_ih, self.bias_ih)  # (..., 3H)

    def step(self, xp: Tensor, state: CellState) -> tuple[Tensor, CellState]:
        (h,) = state
        h = _gru_pointwise(xp, linear(h, self.weight_hh, self.bias_hh), h)  # hh (B, 3H)
        return h, (h,)


_OUTPUT_ACTIVATIONS = {
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "softmax": lambda y: torch.softmax(y, dim=-1),
    "identity": lambda y: y,
}


class JordanRNNCell(RecurrentCell):
    """Jordan network: the previous *output* is fed back (Jordan 1986, "Serial Order: A
    Parallel Distributed Processing Approach"; the Jordan-RNN of Mesnil, He, Deng & Bengio
    2013, "Investigation of Recurrent-Neural-Network Architectures and Learning Methods for
    Spoken Language Understanding")::

        h_t = tanh(W_ih x_t + W_yh y_{t-1} + b)
        y_t = out_act(W_out h_t + b_out)              (y_0 = 0)

    Unlike Elman's network the hidden layer has no recurrent connection of its own; the only
    memory is the output layer ``y``.  (Jordan's original state units also decay with a
    self-connection; that term is left out, as in the SLU Jordan-RNN.)

    Args:
        input_size: D.  hidden_size: H, the hidden layer.
        output_size: O, the fed-back output layer (default H).
        output_activation: ``"tanh"`` (default; keeps the feedback bounded), ``"sigmoid"``,
            ``"softmax"`` (a label distribution, as in the SLU tagger) or ``"identity"``.

    Parameters: ``weight_ih (H, D)``, ``weight_yh (H, O)``, ``bias (H,)``,
    ``weight_out (O, H)``, ``bias_out (O,)``.
    State: ``(y,)`` with y ``(B, O)``; output ``y_t`` ``(B, O)``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int | None = None,
        output_activation: Literal["tanh", "sigmoid", "softmax", "identity"] = "tanh",
    ):
        super().__init__()
        if output_activation not in _OUTPUT_ACTIVATIONS:
            raise ValueError(
                f"output_activation must be one of {sorted(_OUTPUT_ACTIVATIONS)}, "
                f"got {output_activation!r}"
            )
        out = hidden_size if output_size is None else output_size
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, out
        self.state_sizes = (out,)
        self.output_activation = output_activation
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size))
        self.weight_yh = nn.Parameter(torch.empty(hidden_size, out))
        self.bias = nn.Parameter(torch.empty(hidden_size))
        self.weight_out = nn.Parameter(torch.empty(out, hidden_size))
        self.bias_out = nn.Parameter(torch.empty(out))
        _uniform_(self.parameters(), hidden_size)

    def project_input(self, x: Tensor) -> Tensor:
        return linear(x, self.weight_ih, self.bias)  # (..., H)

    def step(self, xp: Tensor, state: CellState) -> tuple[Tensor, CellState]:
        (y,) = state
        h = torch.tanh(addmm_t(xp, y, self.weight_yh))  # (B, H)
        y = _OUTPUT_ACTIVATIONS[self.output_activation](linear(h, self.weight_out, self.bias_out))
        return y, (y,)  # (B, O)


#: Cell classes by the name :class:`seqkit.nn.rnn.CellRNN` / ``RNNEncoder`` accept.
CELLS: dict[str, type[RecurrentCell]] = {
    "elman": ElmanCell,
    "lstm": LSTMCell,
    "gru": GRUCell,
    "peephole_lstm": PeepholeLSTMCell,
    "layernorm_lstm": LayerNormLSTMCell,
    "jordan": JordanRNNCell,
    "irnn": IRNNCell,
}


class TorchLSTMCell(nn.LSTMCell):
    """``torch.nn.LSTMCell`` (same parameters and ``state_dict``) with its two products through
    :func:`seqkit.nn.dense.linear` (oneDNN on float32 CPU tensors); torch's own kernel elsewhere.

    Shapes: ``x (B, D)``, state ``(h (B, H), c (B, H))`` or None -> ``(h_t, c_t)``.
    """

    def forward(self, x: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        if not onednn_applies(x, self.weight_ih) or x.dim() != 2:
            return super().forward(x, hx)
        if hx is None:
            zeros = x.new_zeros(x.size(0), self.hidden_size)
            hx = (zeros, zeros)
        h, c = hx
        gates = linear(x, self.weight_ih, self.bias_ih) + linear(
            h, self.weight_hh, self.bias_hh
        )  # (B, 4H)
        return _lstm_pointwise(gates, c)


class TorchGRUCell(nn.GRUCell):
    """``torch.nn.GRUCell`` (same parameters and ``state_dict``) with its two products through
    :func:`seqkit.nn.dense.linear`; torch's own kernel elsewhere.

    Shapes: ``x (B, D)``, ``h (B, H)`` or None -> ``h_t (B, H)``.
    """

    def forward(self, x: Tensor, hx: Tensor | None = None) -> Tensor:
        if not onednn_applies(x, self.weight_ih) or x.dim() != 2:
            return super().forward(x, hx)
        if hx is None:
            hx = x.new_zeros(x.size(0), self.hidden_size)
        gi = linear(x, self.weight_ih, self.bias_ih)  # (B, 3H)
        return _gru_pointwise(gi, linear(hx, self.weight_hh, self.bias_hh), hx)
