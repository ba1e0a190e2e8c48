"""The decoder-state contract shared by decoders, copy models, scorers and search.

Every incremental decoder in seqkit (attentional decoder, pointer-generator, CopyNet,
RNN LM, CTC prefix scorer) exposes::

    step(tokens: Tensor, state: State) -> tuple[Tensor, State]

* ``tokens``: ``(N,)`` long, the previous output token of each hypothesis (BOS first).
* ``state``: a ``dict[str, Tensor]`` in which **every tensor has the hypothesis axis N as
  dim 0** (encoder memory and masks included), so search can replicate it for a beam with
  :func:`expand_state` and reorder it after pruning with :func:`select_state`, without
  knowing what it holds.
* returns ``log_probs`` ``(N, V)`` (normalised over the decoder's output space; for copy
  models V is the extended vocabulary) and the new state.

A model builds its initial state from the encoder output with its own ``init_state(...)``.
"""

from __future__ import annotations

from torch import Tensor

State = dict[str, Tensor]

__all__ = ["State", "expand_state", "select_state"]


def expand_state(state: State, beam: int) -> State:
    """Repeat each entry ``beam`` times along dim 0: (B, ...) -> (B * beam, ...).

    Rows ``b * beam .. b * beam + beam - 1`` are copies of row ``b``.
    """
    return {k: v.repeat_interleave(beam, dim=0) for k, v in state.items()}


def select_state(state: State, index: Tensor) -> State:
    """Gather rows ``index`` (``(M,)`` long) of every entry: (N, ...) -> (M, ...)."""
    return {k: v.index_select(0, index) for k, v in state.items()}
