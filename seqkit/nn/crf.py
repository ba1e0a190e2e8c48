"""Linear-chain conditional random field (CRF) for sequence tagging.

A linear-chain CRF (Lafferty, McCallum & Pereira, 2001, "Conditional Random Fields:
Probabilistic Models for Segmenting and Labeling Sequence Data", ICML) placed on top of
per-position tag scores ("emissions") from a neural encoder, as in Huang, Xu & Yu (2015),
"Bidirectional LSTM-CRF Models for Sequence Tagging" (arXiv:1508.01991) and Lample et al.
(2016), "Neural Architectures for Named Entity Recognition" (NAACL).

The score of a tag path ``y_0 .. y_{L-1}`` for a sequence of length ``L`` is::

    start[y_0] + sum_t emissions[t, y_t] + sum_{t>=1} transitions[y_{t-1}, y_t] + end[y_{L-1}]

and ``p(y | x) = exp(score(y)) / Z`` with ``log Z`` computed by the forward algorithm.

Shapes (batch first throughout):

* ``emissions``: ``(B, T, K)`` float
* ``tags``: ``(B, T)`` long (values at padded positions are ignored and may be anything,
  e.g. ``-100``)
* ``mask``: ``(B, T)`` bool, True at real positions.  Every sequence has length >= 1 and its
  real positions are a prefix (``mask[:, 0]`` is all True).  ``mask=None`` means no padding.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["CRF", "bio_transition_constraints"]

#: Score given to disallowed transitions / start / end tags in the likelihood and in
#: :meth:`CRF.marginals`.  It *replaces* the learned score (so training cannot undo it) and
#: is finite so that gradients stay well defined.  Decoding uses ``-inf`` instead, so a
#: disallowed transition is never produced.
CONSTRAINT_PENALTY = -1e4

_REDUCTIONS = ("none", "sum", "mean", "token_mean")


class CRF(nn.Module):
    """Linear-chain CRF over ``num_tags`` tags.

    Args:
        num_tags: number of tags ``K``.
        allowed: optional ``(K, K)`` bool mask, ``allowed[i, j]`` True iff the transition
            from tag ``i`` to tag ``j`` is permitted.
        start_allowed: optional ``(K,)`` bool mask of tags that may start a sequence.
        end_allowed: optional ``(K,)`` bool mask of tags that may end a sequence.

    Parameters: ``transitions`` ``(K, K)`` indexed ``[from, to]``, ``start_transitions``
    ``(K,)`` and ``end_transitions`` ``(K,)``.

    Hard constraints: disallowed scores are replaced by ``-1e4`` in :meth:`forward`,
    :meth:`log_partition`, :meth:`score` and :meth:`marginals` (so such paths have
    essentially zero probability and a gold path that violates them costs ~1e4 nats), and by
    ``-inf`` in :meth:`decode` / :meth:`nbest`, which therefore never return a disallowed
    path (when at least one allowed path exists).

    Shapes: ``emissions`` ``(B, T, K)`` float, ``tags`` ``(B, T)`` long, ``mask`` ``(B, T)``
    bool (True at real positions; every sequence has length >= 1 and its real positions
    are a prefix).
    """

    def __init__(
        self,
        num_tags: int,
        allowed: Tensor | None = None,
        start_allowed: Tensor | None = None,
        end_allowed: Tensor | None = None,
    ) -> None:
        super().__init__()
        if num_tags < 1:
            raise ValueError(f"num_tags must be >= 1, got {num_tags}")
        self.num_tags = num_tags
        k = num_tags
        self.transitions = nn.Parameter(torch.empty(k, k))
        self.start_transitions = nn.Parameter(torch.empty(k))
        self.end_transitions = nn.Parameter(torch.empty(k))
        self.reset_parameters()

        def as_mask(x: Tensor | None, shape: tuple[int, ...], name: str) -> Tensor:
            if x is None:
                return torch.ones(shape, dtype=torch.bool)
            x = torch.as_tensor(x).detach().to("cpu", torch.bool)
            if tuple(x.shape) != shape:
                raise ValueError(f"{name} must have shape {shape}, got {tuple(x.shape)}")
            return x.clone()

        self.register_buffer("allowed", as_mask(allowed, (k, k), "allowed"))
        self.register_buffer("start_allowed", as_mask(start_allowed, (k,), "start_allowed"))
        self.register_buffer("end_allowed", as_mask(end_allowed, (k,), "end_allowed"))

    def reset_parameters(self) -> None:
        nn.init.uniform_(self.transitions, -0.1, 0.1)
        nn.init.uniform_(self.start_transitions, -0.1, 0.1)
        nn.init.uniform_(self.end_transitions, -0.1, 0.1)

    def extra_repr(self) -> str:
        constrained = not (
            bool(self.allowed.all())
            and bool(self.start_allowed.all())
            and bool(self.end_allowed.all())
        )
        return f"num_tags={self.num_tags}, constrained={constrained}"

    # ------------------------------------------------------------------ helpers

    def _potentials(self, dtype: torch.dtype, hard: bool) -> tuple[Tensor, Tensor, Tensor]:
        """(transitions, start, end) in ``dtype`` with constraints applied."""
        fill = float("-inf") if hard else CONSTRAINT_PENALTY
        trans = self.transitions.to(dtype).masked_fill(~self.allowed, fill)
        start = self.start_transitions.to(dtype).masked_fill(~self.start_allowed, fill)
        end = self.end_transitions.to(dtype).masked_fill(~self.end_allowed, fill)
        return trans, start, end

    def _check(self, emissions: Tensor, mask: Tensor | None, tags: Tensor | None = None) -> Tensor:
        if emissions.dim() != 3 or emissions.size(2) != self.num_tags:
            raise ValueError(
                f"emissions must have shape (B, T, {self.num_tags}), got {tuple(emissions.shape)}"
            )
        if not emissions.is_floating_point():
            raise ValueError(f"emissions must be floating point, got {emissions.dtype}")
        b, t, _ = emissions.shape
        if t < 1:
            raise ValueError("emissions must have at least one time step")
        if tags is not None and tuple(tags.shape) != (b, t):
            raise ValueError(f"tags must have shape {(b, t)}, got {tuple(tags.shape)}")
        if mask is None:
            return torch.ones(b, t, dtype=torch.bool, device=emissions.device)
        if tuple(mask.shape) != (b, t):
            raise ValueError(f"mask must have shape {(b, t)}, got {tuple(mask.shape)}")
        mask = mask.to(torch.bool)
        if b > 0 and not bool(mask[:, 0].all()):
            raise ValueError("every sequence must have length >= 1 (mask[:, 0] must be True)")
        return mask

    def _forward_alphas(
        self, emissions: Tensor, mask: Tensor, trans: Tensor, start: Tensor
    ) -> list[Tensor]:
        """Forward variables: list of ``T`` tensors ``(B, K)``; frozen after each length."""
        alpha = start + emissions[:, 0]
        alphas = [alpha]
        for t in range(1, emissions.size(1)):
            nxt = torch.logsumexp(alpha.unsqueeze(2) + trans, dim=1) + emissions[:, t]
            alpha = torch.where(mask[:, t].unsqueeze(1), nxt, alpha)
            alphas.append(alpha)
        return alphas

    # ------------------------------------------------------------------ likelihood

    def forward(
        self, emissions: Tensor, tags: Tensor, mask: Tensor | None = None, reduction: str = "sum"
    ) -> Tensor:
        """Negative log-likelihood ``log Z - score(tags)``.

        ``reduction``: ``"none"`` -> ``(B,)``; ``"sum"``; ``"mean"`` (over sequences);
        ``"token_mean"`` (sum divided by the number of real tokens).
        """
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        mask = self._check(emissions, mask, tags)
        nll = self.log_partition(emissions, mask) - self.score(emissions, tags, mask)
        if reduction == "none":
            return nll
        if reduction == "sum":
            return nll.sum()
        if reduction == "mean":
            return nll.mean()
        return nll.sum() / mask.sum().clamp(min=1).to(nll.dtype)

    def log_partition(self, emissions: Tensor, mask: Tensor | None = None) -> Tensor:
        """``(B,)`` log partition function ``log Z`` by the forward algorithm."""
        mask = self._check(emissions, mask)
        trans, start, end = self._potentials(emissions.dtype, hard=False)
        alpha = self._forward_alphas(emissions, mask, trans, start)[-1]
        return torch.logsumexp(alpha + end, dim=1)

    def score(self, emissions: Tensor, tags: Tensor, mask: Tensor | None = None) -> Tensor:
        """``(B,)`` unnormalised score of the tag path ``tags`` (padded positions ignored)."""
        mask = self._check(emissions, mask, tags)
        trans, start, end = self._potentials(emissions.dtype, hard=False)
        tags = tags.long().masked_fill(~mask, 0)
        b = emissions.size(0)
        if b > 0 and (bool((tags < 0).any()) or bool((tags >= self.num_tags).any())):
            raise ValueError(f"tags at real positions must be in [0, {self.num_tags})")
        maskf = mask.to(emissions.dtype)
        emit = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # (B, T)
        total = start[tags[:, 0]] + (emit * maskf).sum(1)
        if tags.size(1) > 1:
            pair = trans[tags[:, :-1], tags[:, 1:]]  # (B, T-1)
            total = total + (pair * maskf[:, 1:]).sum(1)
        last = mask.long().sum(1) - 1
        last_tags = tags.gather(1, last.unsqueeze(1)).squeeze(1)
        return total + end[last_tags]

    def marginals(self, emissions: Tensor, mask: Tensor | None = None) -> Tensor:
        """``(B, T, K)`` posterior tag marginals ``p(y_t = k | x)`` by forward-backward.

        Rows at real positions sum to 1; padded positions are zero.
        """
        mask = self._check(emissions, mask)
        trans, start, end = self._potentials(emissions.dtype, hard=False)
        alphas = torch.stack(self._forward_alphas(emissions, mask, trans, start), dim=1)
        log_z = torch.logsumexp(alphas[:, -1] + end, dim=1)
        steps = emissions.size(1)
        beta = end.expand(emissions.size(0), -1)
        betas = [beta]
        for t in range(steps - 2, -1, -1):
            nxt = torch.logsumexp(trans + (emissions[:, t + 1] + beta).unsqueeze(1), dim=2)
            # position t is the last real one (or padding) when t + 1 is padded
            beta = torch.where(mask[:, t + 1].unsqueeze(1), nxt, end.expand_as(nxt))
            betas.append(beta)
        betas = torch.stack(betas[::-1], dim=1)
        post = torch.exp(alphas + betas - log_z[:, None, None])
        return post * mask.unsqueeze(2).to(post.dtype)

    # ------------------------------------------------------------------ decoding

    @torch.no_grad()
    def decode(self, emissions: Tensor, mask: Tensor | None = None) -> list[list[int]]:
        """Viterbi best path per sequence (a list of ``length_b`` tag ids each)."""
        mask = self._check(emissions, mask)
        trans, start, end = self._potentials(emissions.dtype, hard=True)
        b, steps, _ = emissions.shape
        delta = start + emissions[:, 0]
        history = []
        for t in range(1, steps):
            cand = delta.unsqueeze(2) + trans  # (B, K_from, K_to)
            best, idx = cand.max(dim=1)
            nxt = best + emissions[:, t]
            delta = torch.where(mask[:, t].unsqueeze(1), nxt, delta)
            history.append(idx)
        last_tag = (delta + end).argmax(dim=1).tolist()
        lengths = mask.long().sum(1).tolist()
        hist = torch.stack(history, dim=1).tolist() if history else []  # (B, T-1, K)
        paths = []
        for i in range(b):
            tag = last_tag[i]
            path = [tag]
            for t in range(lengths[i] - 1, 0, -1):
                tag = hist[i][t - 1][tag]
                path.append(tag)
            paths.append(path[::-1])
        return paths

    @torch.no_grad()
    def nbest(
        self, emissions: Tensor, mask: Tensor | None, n: int
    ) -> list[list[tuple[list[int], float]]]:
        """Exact ``n``-best Viterbi: per sequence up to ``n`` ``(path, score)`` pairs.

        Pairs are in descending score order; scores are the unnormalised path scores
        (as :meth:`score`).  Fewer than ``n`` pairs are returned when fewer allowed paths
        exist.  The lattice keeps the top ``n`` partial paths per tag per step.
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        mask = self._check(emissions, mask)
        trans, start, end = self._potentials(emissions.dtype, hard=True)
        b, steps, k = emissions.shape
        neg_inf = float("-inf")
        # scores[b, tag, r]: r-th best partial path ending in `tag`
        scores = emissions.new_full((b, k, n), neg_inf)
        scores[:, :, 0] = start + emissions[:, 0]
        back_tag, back_rank = [], []
        for t in range(1, steps):
            cand = scores.unsqueeze(2) + trans[None, :, :, None]  # (B, K_from, K_to, n)
            cand = cand.permute(0, 2, 1, 3).reshape(b, k, k * n)  # (B, K_to, K_from * n)
            best, idx = cand.topk(n, dim=2)  # (B, K_to, n)
            nxt = best + emissions[:, t].unsqueeze(2)
            scores = torch.where(mask[:, t].view(b, 1, 1), nxt, scores)
            back_tag.append(idx // n)
            back_rank.append(idx % n)
        final = (scores + end[None, :, None]).reshape(b, k * n)
        top, top_idx = final.topk(n, dim=1)
        top, top_idx = top.tolist(), top_idx.tolist()
        lengths = mask.long().sum(1).tolist()
        bt = torch.stack(back_tag, dim=1).tolist() if back_tag else []  # (B, T-1, K, n)
        br = torch.stack(back_rank, dim=1).tolist() if back_rank else []
        results: list[list[tuple[list[int], float]]] = []
        for i in range(b):
            out = []
            for s, flat in zip(top[i], top_idx[i], strict=True):
                if s == neg_inf or s != s:  # no (further) allowed path
                    break
                tag, rank = divmod(flat, n)
                path = [tag]
                for t in range(lengths[i] - 1, 0, -1):
                    tag, rank = bt[i][t - 1][tag][rank], br[i][t - 1][tag][rank]
                    path.append(tag)
                out.append((path[::-1], float(s)))
            results.append(out)
        return results


def bio_transition_constraints(labels: Sequence[str]) -> tuple[Tensor, Tensor, Tensor]:
    """Hard constraints ``(allowed (K, K), start_allowed (K,), end_allowed (K,))`` for BIO.

    ``I-x`` may only follow ``B-x`` or ``I-x`` and may not start a sequence.  ``O`` and
    ``B-x`` may follow anything and start a sequence; every B/I/O tag may end one.  Tags
    that are not ``B-``/``I-``/``O`` (e.g. ``'<pad>'``, ``'<unk>'``) are disallowed
    everywhere (they never start, follow or precede anything), so decoding never emits them.
    """
    k = len(labels)
    kinds: list[tuple[str, str] | None] = []
    for lab in labels:
        if lab == "O":
            kinds.append(("O", ""))
        elif lab.startswith("B-") and len(lab) > 2:
            kinds.append(("B", lab[2:]))
        elif lab.startswith("I-") and len(lab) > 2:
            kinds.append(("I", lab[2:]))
        else:
            kinds.append(None)
    allowed = torch.zeros(k, k, dtype=torch.bool)
    start = torch.zeros(k, dtype=torch.bool)
    end = torch.zeros(k, dtype=torch.bool)
    for j, kj in enumerate(kinds):
        if kj is None:
            continue
        end[j] = True
        start[j] = kj[0] != "I"
        for i, ki in enumerate(kinds):
            if ki is None:
                continue
            if kj[0] == "I":
                allowed[i, j] = ki[0] in ("B", "I") and ki[1] == kj[1]
            else:
                allowed[i, j] = True
    return allowed, start, end
