"""Connectionist temporal classification (CTC): output head, loss with length checks, greedy decoding.

CTC is Graves, Fernandez, Gomez & Schmidhuber (2006), "Connectionist Temporal
Classification: Labelling Unsegmented Sequence Data with Recurrent Neural Networks" (ICML).
A network emits, at each of ``T`` frames, a distribution over ``V`` symbols: the labels plus
a *blank*.  An alignment ``pi`` (one symbol per frame) collapses to a label sequence by
merging adjacent repeats and then removing blanks (``B(a a - a b -) = a a b``), and::

    p(y | x) = sum_{pi : B(pi) = y} prod_t p_t(pi_t | x)

An alignment of a target ``y`` of length ``L`` needs at least ``L + r`` frames, ``r`` being
the number of adjacent repeats in ``y`` (``y_i == y_{i-1}``), because a blank must separate
two copies of the same label.  A shorter input makes ``p(y | x) = 0`` (infinite loss); the
checks here reject such targets with a message naming the utterance instead of training on
a silent zero (``zero_infinity``) or an ``inf``.

Shapes (batch first, as everywhere in seqkit):

* ``log_probs``: ``(B, T, V)`` float, ``log_softmax`` over ``V`` (blank included).
* ``lengths``: ``(B,)`` long, ``1 <= lengths <= T``, the number of real frames.
* ``targets``: ``(B, S)`` long, right padded (values beyond ``target_lengths`` are ignored),
  or 1-D ``(sum(target_lengths),)`` concatenated targets, as for
  :func:`torch.nn.functional.ctc_loss`.
* ``target_lengths``: ``(B,)`` long, ``>= 0``.

Prefix beam search, with language-model shallow fusion, is in
:mod:`seqkit.search.ctc_decoder`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqkit.data.batching import lengths_to_mask, pad_sequences
from seqkit.nn.dense import Linear
from seqkit.nn.dropout import Dropout

__all__ = [
    "CTCHead",
    "check_ctc_lengths",
    "ctc_candidate_log_likelihoods",
    "ctc_greedy_decode",
    "ctc_loss",
    "ctc_min_input_lengths",
]

_REDUCTIONS = ("none", "sum", "mean")


def _padded_targets(targets: Tensor, target_lengths: Tensor) -> Tensor:
    """Targets as a right-padded ``(B, S)`` tensor (1-D concatenated targets are split)."""
    target_lengths = torch.as_tensor(target_lengths).to("cpu", torch.long)
    targets = torch.as_tensor(targets)
    if targets.dim() == 2:
        if targets.size(0) != target_lengths.numel():
            raise ValueError(
                f"targets has {targets.size(0)} rows but target_lengths has "
                f"{target_lengths.numel()} entries"
            )
        if target_lengths.numel() and int(target_lengths.max()) > targets.size(1):
            raise ValueError(
                f"a target length ({int(target_lengths.max())}) exceeds the padded target "
                f"width S = {targets.size(1)}"
            )
        return targets.to("cpu", torch.long)
    if targets.dim() != 1:
        raise ValueError(f"targets must be (B, S) or 1-D concatenated, got {tuple(targets.shape)}")
    total = int(target_lengths.sum())
    if total != targets.numel():
        raise ValueError(
            f"1-D targets hold {targets.numel()} labels but target_lengths sum to {total}"
        )
    s = int(target_lengths.max()) if target_lengths.numel() else 0
    out = torch.zeros(target_lengths.numel(), s, dtype=torch.long)
    for i, piece in enumerate(torch.split(targets.to("cpu", torch.long), target_lengths.tolist())):
        out[i, : piece.numel()] = piece
    return out


def ctc_min_input_lengths(targets: Tensor, target_lengths: Tensor) -> Tensor:
    """Fewest input frames that can align to each target: ``L + #adjacent repeats``.

    Args:
        targets: ``(B, S)`` right padded or 1-D concatenated, long.
        target_lengths: ``(B,)`` long.

    Returns:
        ``(B,)`` long on the CPU: ``target_lengths[b] + #{i in 1..L_b-1 : y_i == y_{i-1}}``
        (a blank frame must separate two copies of the same label; Graves et al. 2006).
    """
    padded = _padded_targets(targets, target_lengths)  # (B, S)
    lengths = torch.as_tensor(target_lengths).to("cpu", torch.long)
    if padded.size(1) < 2:
        return lengths.clone()
    mask = lengths_to_mask(lengths, padded.size(1))  # (B, S)
    repeat = (padded[:, 1:] == padded[:, :-1]) & mask[:, 1:]  # (B, S - 1)
    return lengths + repeat.sum(dim=1)


def check_ctc_lengths(
    input_lengths: Tensor,
    targets: Tensor,
    target_lengths: Tensor,
    blank: int | None = None,
    vocab_size: int | None = None,
) -> None:
    """Raise :class:`ValueError` for targets no CTC alignment of the input can produce.

    A target of length ``L`` with ``r`` adjacent repeats needs ``L + r`` frames
    (:func:`ctc_min_input_lengths`).  The message names every offending utterance (0-based
    index in the batch) with its input length, target length and repeat count.  With
    ``blank`` given, targets that contain the blank id are rejected too, and with
    ``vocab_size`` given, label ids outside ``[0, vocab_size)``.

    Shapes: ``input_lengths`` ``(B,)``, ``targets`` ``(B, S)`` or 1-D concatenated,
    ``target_lengths`` ``(B,)``.
    """
    input_lengths = torch.as_tensor(input_lengths).to("cpu", torch.long).reshape(-1)
    target_lengths = torch.as_tensor(target_lengths).to("cpu", torch.long).reshape(-1)
    if input_lengths.numel() != target_lengths.numel():
        raise ValueError(
            f"input_lengths has {input_lengths.numel()} entries but target_lengths has "
            f"{target_lengths.numel()}"
        )
    if bool((target_lengths < 0).any()):
        bad = torch.nonzero(target_lengths < 0).flatten().tolist()
        raise ValueError(f"negative target length for utterance(s) {bad}")
    padded = _padded_targets(targets, target_lengths)  # (B, S)
    needed = ctc_min_input_lengths(padded, target_lengths)  # (B,)
    mask = lengths_to_mask(target_lengths, padded.size(1))  # (B, S)
    problems = []
    for b in torch.nonzero(needed > input_lengths).flatten().tolist():
        length, t_len = int(target_lengths[b]), int(input_lengths[b])
        repeats = int(needed[b]) - length
        problems.append(
            f"utterance {b}: input length {t_len} < {int(needed[b])} frames needed "
            f"(target length {length} + {repeats} adjacent repeat(s))"
        )
    if blank is not None:
        has_blank = ((padded == blank) & mask).any(dim=1)  # (B,)
        for b in torch.nonzero(has_blank).flatten().tolist():
            problems.append(f"utterance {b}: target contains the blank id {blank}")
    if vocab_size is not None:
        outside = (((padded < 0) | (padded >= vocab_size)) & mask).any(dim=1)  # (B,)
        for b in torch.nonzero(outside).flatten().tolist():
            problems.append(f"utterance {b}: target has a label id outside [0, {vocab_size})")
    if problems:
        raise ValueError("impossible CTC targets:\n  " + "\n  ".join(problems))


def ctc_loss(
    log_probs: Tensor,
    lengths: Tensor,
    targets: Tensor,
    target_lengths: Tensor,
    blank: int = 0,
    reduction: str = "mean",
    check: bool = True,
) -> Tensor:
    """CTC negative log-likelihood (Graves et al. 2006) of batch-first log-probabilities.

    A batch-first front end to :func:`torch.nn.functional.ctc_loss` (which wants
    ``(T, B, V)``), with ``zero_infinity=True`` and, when ``check``, a prior
    :func:`check_ctc_lengths` that raises on impossible targets instead of letting them
    contribute a silent zero.

    Args:
        log_probs: ``(B, T, V)`` log-softmax outputs; frames at ``t >= lengths[b]`` are
            ignored.
        lengths: ``(B,)`` long, real frames per utterance.
        targets: ``(B, S)`` right padded or 1-D concatenated, long, without blanks.
        target_lengths: ``(B,)`` long.
        blank: the blank id.
        reduction: ``"none"`` -> ``(B,)`` per-utterance ``-log p(y | x)``; ``"sum"``;
            ``"mean"`` -> torch's mean: each loss divided by its target length (clamped to
            >= 1), then averaged over the batch.
        check: run :func:`check_ctc_lengths` first (a host sync; switch off in a tight
            loop once the data are known to be valid).

    Returns:
        A scalar, or ``(B,)`` for ``reduction="none"``.
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if log_probs.dim() != 3:
        raise ValueError(f"log_probs must be (B, T, V), got {tuple(log_probs.shape)}")
    b, t, v = log_probs.shape
    lengths = torch.as_tensor(lengths)
    if lengths.shape != (b,):
        raise ValueError(f"lengths must be ({b},), got {tuple(lengths.shape)}")
    if check:
        lens_cpu = lengths.to("cpu", torch.long)
        if bool((lens_cpu < 1).any()) or bool((lens_cpu > t).any()):
            raise ValueError(f"lengths must lie in [1, T={t}], got {lens_cpu.tolist()}")
        check_ctc_lengths(lens_cpu, targets, target_lengths, blank=blank, vocab_size=v)
    targets = torch.as_tensor(targets).to(log_probs.device, torch.long)
    target_lengths = torch.as_tensor(target_lengths).to(log_probs.device, torch.long)
    if targets.dim() == 2:  # padding values may be anything (e.g. -100): make them valid ids
        pad = ~lengths_to_mask(target_lengths, targets.size(1))  # (B, S)
        targets = targets.masked_fill(pad, blank)
    return F.ctc_loss(
        log_probs.transpose(0, 1),  # (B, T, V) -> (T, B, V)
        targets,
        lengths.to(log_probs.device, torch.long),
        target_lengths,
        blank=blank,
        reduction=reduction,
        zero_infinity=True,
    )


def ctc_candidate_log_likelihoods(
    log_probs: Tensor, lengths: Tensor, candidates: list[list[int]], blank: int = 0
) -> Tensor:
    """Exact ``log p(y_k | x_b)`` of every utterance under every candidate of a closed list.

    Decoding over a closed vocabulary (isolated words, commands): the argmax over ``k`` is the
    exact maximum-likelihood choice, which prefix beam search with a lexicon only approximates,
    and scores of several models can be summed (a product-of-experts ensemble).  One
    :func:`torch.nn.functional.ctc_loss` call over all ``B * K`` pairs; a candidate the input is
    too short for gets ``-inf``.

    Args:
        log_probs: ``(B, T, V)`` log-softmax outputs.
        lengths: ``(B,)`` long, real frames per utterance.
        candidates: ``K`` label sequences (no blanks; may be empty).
        blank: the blank id.

    Returns:
        ``(B, K)`` float log-likelihoods.
    """
    b, t, v = log_probs.shape
    k = len(candidates)
    if k == 0:
        raise ValueError("no candidates")
    dev = log_probs.device
    cand, cand_lengths = pad_sequences(candidates, pad_value=blank)  # (K, S), (K,)
    lp = log_probs.float().transpose(0, 1)  # (B, T, V) -> (T, B, V)
    lp = lp.unsqueeze(2).expand(t, b, k, v).reshape(t, b * k, v)  # (T, B * K, V), b-major
    nll = F.ctc_loss(
        lp,
        cand.repeat(b, 1).to(dev),  # (B * K, S)
        torch.as_tensor(lengths).to(dev, torch.long).repeat_interleave(k),
        cand_lengths.repeat(b).to(dev),
        blank=blank,
        reduction="none",
        zero_infinity=False,
    )  # (B * K,)
    return -nll.view(b, k)  # (B, K)


def ctc_greedy_decode(
    log_probs: Tensor, lengths: Tensor | None = None, blank: int = 0
) -> list[list[int]]:
    """Best-path CTC decoding: argmax per frame, merge repeats, drop blanks (Graves et al. 2006).

    Args:
        log_probs: ``(B, T, V)`` scores (log-probabilities or logits: only the argmax is used).
        lengths: ``(B,)`` long real frames; ``None`` means every frame is real.
        blank: the blank id.

    Returns:
        ``B`` lists of label ids.  Frames ``t >= lengths[b]`` are ignored.
    """
    if log_probs.dim() != 3:
        raise ValueError(f"log_probs must be (B, T, V), got {tuple(log_probs.shape)}")
    b, t, _ = log_probs.shape
    best = log_probs.argmax(dim=-1).cpu()  # (B, T)
    if lengths is None:
        mask = torch.ones(b, t, dtype=torch.bool)
    else:
        mask = lengths_to_mask(torch.as_tensor(lengths).to("cpu", torch.long), t)  # (B, T)
    prev = torch.cat([best.new_full((b, 1), -1), best[:, :-1]], dim=1)  # (B, T)
    keep = (best != prev) & (best != blank) & mask  # (B, T)
    return [best[i][keep[i]].tolist() for i in range(b)]


class CTCHead(nn.Module):
    """Output layer of a CTC model: (dropout ->) linear projection -> log-softmax over V.

    Graves et al. 2006; the blank is one of the ``vocab_size`` outputs (id ``blank``).

    Args:
        input_size: ``H``, the encoder output size.
        vocab_size: ``V``, labels plus the blank.
        blank: the blank id (default 0).
        dropout: dropout on the encoder output before the projection.

    Shapes:
        ``forward(x (B, T, H), lengths (B,) | None) -> log_probs (B, T, V)``; with
        ``lengths``, rows at padded frames are set to 0 (they are ignored by
        :meth:`loss` and :meth:`greedy`, and the projection is per frame, so padding never
        reaches a real frame).
    """

    def __init__(self, input_size: int, vocab_size: int, blank: int = 0, dropout: float = 0.0):
        super().__init__()
        if vocab_size < 2:
            raise ValueError(f"vocab_size must be >= 2 (blank + a label), got {vocab_size}")
        if not 0 <= blank < vocab_size:
            raise ValueError(f"blank must be in [0, {vocab_size}), got {blank}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.input_size = input_size
        self.vocab_size = vocab_size
        self.blank = blank
        self.dropout = Dropout(dropout)
        self.proj = Linear(input_size, vocab_size)

    def extra_repr(self) -> str:
        return f"input_size={self.input_size}, vocab_size={self.vocab_size}, blank={self.blank}"

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """``x`` (B, T, H) -> log-probabilities (B, T, V) (zero rows at padded frames)."""
        log_probs = F.log_softmax(self.proj(self.dropout(x)), dim=-1)  # (B, T, V)
        if lengths is not None:
            mask = lengths_to_mask(torch.as_tensor(lengths).to(x.device), x.size(1))  # (B, T)
            log_probs = log_probs.masked_fill(~mask.unsqueeze(-1), 0.0)
        return log_probs

    def loss(
        self,
        log_probs: Tensor,
        lengths: Tensor,
        targets: Tensor,
        target_lengths: Tensor,
        reduction: str = "mean",
        check: bool = True,
    ) -> Tensor:
        """:func:`ctc_loss` with this head's blank (``zero_infinity=True``; see there)."""
        return ctc_loss(
            log_probs,
            lengths,
            targets,
            target_lengths,
            self.blank,
            reduction=reduction,
            check=check,
        )

    def greedy(self, log_probs: Tensor, lengths: Tensor | None = None) -> list[list[int]]:
        """:func:`ctc_greedy_decode` with this head's blank."""
        return ctc_greedy_decode(log_probs, lengths, self.blank)
