"""Word-level recurrent language model trained with truncated BPTT on a continuous stream.

:class:`StatefulLM` wraps :class:`seqkit.nn.lm.RNNLM` (AWD-LSTM style: embedding,
locked and weight dropout, tied softmax; Merity, Keskar & Socher 2018, "Regularizing and
Optimizing LSTM Language Models") for the trainer's model contract
(``model(batch) -> {"loss", "n"}``).  The corpus is cut into B parallel columns and fed
window after window (Zaremba, Sutskever & Vinyals 2014, "Recurrent Neural Network
Regularization"), so the final hidden state of one window is the initial state of the next
one, cut from the graph (truncated BPTT).  That carried state lives in persistent buffers,
so it travels inside checkpoints and a run resumed mid-epoch continues from exactly the
same state.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqkit.nn.lm import RNNLM

__all__ = ["StatefulLM"]


class StatefulLM(nn.Module):
    """RNNLM + the hidden state carried across training windows + the training loss.

    Args:
        lm: the language model.
        ar_alpha / tar_beta: activation regularisation (``alpha * mean(dropped_out^2)``)
            and temporal activation regularisation (``beta * mean((h_t - h_{t-1})^2)``)
            of Merity, McCann & Socher 2017 ("Revisiting Activation Regularization for
            Language RNNs"), on the last layer's outputs before output dropout (AWD-LSTM
            takes AR on the dropped outputs); 0 disables them.

    Batch (training): ``{"input": (B, T) long, "target": (B, T) long, "reset": bool}``;
    ``reset`` zeroes the carried state first (the first window of an epoch).  Returns
    ``{"loss": mean cross-entropy (+ AR/TAR), "n": B * T, "nll": mean cross-entropy}``.
    """

    def __init__(self, lm: RNNLM, ar_alpha: float = 0.0, tar_beta: float = 0.0):
        super().__init__()
        self.lm = lm
        self.ar_alpha = ar_alpha
        self.tar_beta = tar_beta
        self._carry_keys = list(lm.init_state(1))
        for key in self._carry_keys:
            self.register_buffer(f"carry_{key}", torch.zeros(0))  # (B, H_l) once used

    # -- the carried state -------------------------------------------------------------
    def carried_state(self, batch_size: int) -> dict[str, Tensor] | None:
        """The state carried from the previous window, or None when there is none yet."""
        first = getattr(self, f"carry_{self._carry_keys[0]}")
        if first.dim() != 2 or first.size(0) != batch_size:
            return None
        return {k: getattr(self, f"carry_{k}") for k in self._carry_keys}

    def set_carried_state(self, state: dict[str, Tensor] | None) -> None:
        """Store ``state`` (detached), or clear the carried state when None."""
        for key in self._carry_keys:
            value = torch.zeros(0) if state is None else state[key].detach().clone()
            setattr(self, f"carry_{key}", value.to(self.lm.decoder.bias.device))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # the carried state's shape depends on the batch size: take whatever was saved
        for key in self._carry_keys:
            name = f"{prefix}carry_{key}"
            if name in state_dict:
                setattr(self, f"carry_{key}", torch.empty_like(state_dict[name]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # -- training ------------------------------------------------------------------------
    def forward(self, batch: dict) -> dict:
        tokens, targets = batch["input"], batch["target"]  # (B, T) each
        state = None if bool(batch.get("reset", False)) else self.carried_state(tokens.size(0))
        logits, new_state, hiddens = self.lm(tokens, state)  # (B, T, V), ..., (B, T, H)
        self.set_carried_state(new_state)
        nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
        loss = nll
        if self.training and self.ar_alpha:
            loss = loss + self.ar_alpha * hiddens.pow(2).mean()
        if self.training and self.tar_beta and hiddens.size(1) > 1:
            loss = loss + self.tar_beta * (hiddens[:, 1:] - hiddens[:, :-1]).pow(2).mean()
        return {"loss": loss, "n": targets.numel(), "nll": nll.detach()}
