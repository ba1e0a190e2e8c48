"""Attention over a padded memory, with masking of padded keys and returned weights.

All modules share one interface (batch first; ``B`` batch, ``S`` keys, ``Dq`` query size,
``Dk`` key size, ``Dv`` value size)::

    project_keys(keys (B, S, Dk)) -> proj_keys            # precomputable per source
    energies(query (B, Dq), keys (B, S, Dk), mask (B, S) bool, *, proj_keys=None,
             prev_weights=None (B, S), coverage=None (B, S)) -> (B, S), -inf at padding
    forward(query, keys, mask, *, values=None (B, S, Dv), proj_keys=None,
            prev_weights=None, coverage=None) -> (context (B, Dv), weights (B, S))

``mask`` is True at real keys (real keys are a prefix; every row has at least one).  The
weights are a distribution over the real keys and are **exactly 0** at padded keys (their
energies are ``-inf`` before the softmax), so the context never reads padding and a
padded batch gives the same outputs as each sequence alone.  ``values`` default to the
keys.  ``proj_keys`` is :meth:`project_keys` of the keys; pass it to avoid recomputing the
key projection at every decoder step (it is computed from ``keys`` when omitted).

Each module has two class attributes a decoder reads:

* ``needs_prev_weights`` -- the energies depend on the previous step's weights
  (location-aware attention); the caller passes ``prev_weights``.
* ``supports_coverage`` -- the energies use a coverage vector ``c_j = sum_{t'<t} a_j^{t'}``
  (Tu et al. 2016, "Modeling Coverage for Neural Machine Translation", ACL; See, Liu &
  Manning 2017, "Get To The Point", ACL).  Passing ``coverage`` to a module without it is a
  ``ValueError``.

Modules:

* :class:`AdditiveAttention` -- Bahdanau, Cho & Bengio (2015), "Neural Machine Translation
  by Jointly Learning to Align and Translate", ICLR; optional coverage term.
* :class:`DotAttention`, :class:`GeneralAttention` -- Luong, Pham & Manning (2015),
  "Effective Approaches to Attention-based Neural Machine Translation", EMNLP (global).
* :class:`LocalPAttention` -- the same paper's local-p (predictive) attention.
* :class:`LocationAwareAttention` -- Chorowski, Bahdanau, Serdyuk, Cho & Bengio (2015),
  "Attention-Based Models for Speech Recognition", NeurIPS.

:func:`build_attention` builds one by name.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from seqkit.nn.activation import tanh
from seqkit.nn.dense import Linear

__all__ = [
    "AdditiveAttention",
    "DotAttention",
    "GeneralAttention",
    "LocalPAttention",
    "LocationAwareAttention",
    "build_attention",
    "masked_softmax",
]

_NEG_INF = float("-inf")


def masked_softmax(energies: Tensor, mask: Tensor) -> Tensor:
    """Softmax over the last axis of ``energies`` (B, S) restricted to ``mask`` (B, S) bool.

    Masked positions get weight exactly 0.  Every row needs at least one True position
    (an all-masked row would be NaN).  Returns (B, S).
    """
    return torch.softmax(energies.masked_fill(~mask, _NEG_INF), dim=-1)


class _Attention(nn.Module):
    """Shared plumbing: masking, softmax and the context read.  Subclasses define
    :meth:`energies` (and :meth:`project_keys` where they have a key projection)."""

    needs_prev_weights: bool = False
    supports_coverage: bool = False

    def project_keys(self, keys: Tensor) -> Tensor:
        """Key projection (B, S, Dk) -> (B, S, *); the identity for modules without one."""
        return keys

    def _check(self, prev_weights: Tensor | None, coverage: Tensor | None) -> None:
        if coverage is not None and not self.supports_coverage:
            raise ValueError(f"{type(self).__name__} was not built with coverage support")
        del prev_weights  # accepted (and ignored) by modules that do not use it

    def energies(
        self,
        query: Tensor,
        keys: Tensor,
        mask: Tensor,
        *,
        proj_keys: Tensor | None = None,
        prev_weights: Tensor | None = None,
        coverage: Tensor | None = None,
    ) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(
        self,
        query: Tensor,
        keys: Tensor,
        mask: Tensor,
        *,
        values: Tensor | None = None,
        proj_keys: Tensor | None = None,
        prev_weights: Tensor | None = None,
        coverage: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Attend: returns ``context`` (B, Dv) and ``weights`` (B, S) (0 at padded keys)."""
        e = self.energies(
            query, keys, mask, proj_keys=proj_keys, prev_weights=prev_weights, coverage=coverage
        )  # (B, S), -inf where masked
        weights = torch.softmax(e, dim=-1)  # (B, S)
        return _read(weights, keys if values is None else values), weights


def _read(weights: Tensor, values: Tensor) -> Tensor:
    """Context ``sum_j weights_j values_j``: (B, S) x (B, S, Dv) -> (B, Dv)."""
    return torch.bmm(weights.unsqueeze(1), values).squeeze(1)


class AdditiveAttention(_Attention):
    """Additive ("concat", MLP) attention of Bahdanau, Cho & Bengio (2015).

    ``e_j = v^T tanh(W q + U k_j [+ w_c c_j] + b)``, ``a = softmax(e)`` over real keys.

    With ``coverage=True`` the energies include the coverage term ``w_c c_j`` (a learned
    vector ``w_c`` (attn_size,) times the scalar coverage ``c_j``), as in See et al. (2017),
    eq. 11, and Tu et al. (2016); ``coverage=None`` in a call then means the zero coverage of
    the first step.

    Args:
        query_size: Dq.  key_size: Dk.  attn_size: A, the hidden size of the MLP.
        coverage: add the coverage term.

    Shapes: query (B, Dq); keys (B, S, Dk); mask (B, S) bool; ``project_keys`` returns
    ``U k`` (B, S, A); coverage (B, S).
    """

    def __init__(self, query_size: int, key_size: int, attn_size: int, coverage: bool = False):
        super().__init__()
        self.query_proj = Linear(query_size, attn_size, bias=True)  # W, b
        self.key_proj = Linear(key_size, attn_size, bias=False)  # U
        self.v = Linear(attn_size, 1, bias=False)
        self.supports_coverage = coverage
        self.coverage_proj = nn.Parameter(torch.empty(attn_size)) if coverage else None
        if coverage:
            nn.init.uniform_(self.coverage_proj, -0.1, 0.1)

    def project_keys(self, keys: Tensor) -> Tensor:
        return self.key_proj(keys)  # (B, S, A)

    def energies(
        self,
        query: Tensor,
        keys: Tensor,
        mask: Tensor,
        *,
        proj_keys: Tensor | None = None,
        prev_weights: Tensor | None = None,
        coverage: Tensor | None = None,
    ) -> Tensor:
        """Energies (B, S), ``-inf`` at padded keys."""
        self._check(prev_weights, coverage)
        pk = self.project_keys(keys) if proj_keys is None else proj_keys  # (B, S, A)
        hid = pk + self.query_proj(query).unsqueeze(1)  # (B, S, A)
        if coverage is not None:
            hid = hid + coverage.unsqueeze(-1) * self.coverage_proj  # (B, S, A)
        e = self.v(tanh(hid)).squeeze(-1)  # (B, S)
        return e.masked_fill(~mask, _NEG_INF)


class DotAttention(_Attention):
    """Dot-product attention (Luong, Pham & Manning 2015, global, "dot"): ``e_j = q . k_j``.

    No parameters; requires Dq == Dk.  Shapes: query (B, D); keys (B, S, D).
    """

    def energies(
        self,
        query: Tensor,
        keys: Tensor,
        mask: Tensor,
        *,
        proj_keys: Tensor | None = None,
        prev_weights: Tensor | None = None,
        coverage: Tensor | None = None,
    ) -> Tensor:
        """Energies (B, S), ``-inf`` at padded keys."""
        self._check(prev_weights, coverage)
        k = keys if proj_keys is None else proj_keys
        e = torch.bmm(k, query.unsqueeze(-1)).squeeze(-1)  # (B, S)
        return e.masked_fill(~mask, _NEG_INF)


class GeneralAttention(_Attention):
    """Bilinear attention (Luong, Pham & Manning 2015, global, "general"):
    ``e_j = q^T W_a k_j``.

    ``project_keys`` returns ``W_a k`` (B, S, Dq), so a step costs one batched dot product.
    Shapes: query (B, Dq); keys (B, S, Dk).
    """

    def __init__(self, query_size: int, key_size: int):
        super().__init__()
        self.key_proj = Linear(key_size, query_size, bias=False)  # W_a

    def project_keys(self, keys: Tensor) -> Tensor:
        return self.key_proj(keys)  # (B, S, Dq)

    def energies(
        self,
        query: Tensor,
        keys: Tensor,
        mask: Tensor,
        *,
        proj_keys: Tensor | None = None,
        prev_weights: Tensor | None = None,
        coverage: Tensor | None = None,
    ) -> Tensor:
        """Energies (B, S), ``-inf`` at padded keys."""
        self._check(prev_weights, coverage)
        pk = self.project_keys(keys) if proj_keys is None else proj_keys  # (B, S, Dq)
        e = torch.bmm(pk, query.unsqueeze(-1)).squeeze(-1)  # (B, S)
        return e.masked_fill(~mask, _NEG_INF)


class LocalPAttention(_Attention):
    """Local-p (predictive) attention of Luong, Pham & Manning (2015), Section 3.2.

    Per query, an aligned position ``p_t = S_b * sigmoid(v_p^T tanh(W_p h_t))`` is predicted,
    where ``S_b`` is the example's own number of real keys (so padding never moves it).
    Only keys ``j`` (0-based) with ``p_t - D <= j <= p_t + D`` and ``mask[j]`` are attended;
    an alignment score ``score(h_t, k_j)`` (``"general"``, ``"dot"`` or ``"concat"``, the
    latter being :class:`AdditiveAttention`'s MLP) is softmaxed over that window and then
    multiplied by a Gaussian centred at ``p_t`` with ``sigma = D / 2``::

        a_t(j) = softmax_window(score)_j * exp(-(j - p_t)^2 / (2 sigma^2))

    ``renormalize=True`` (default) divides these by their sum, so the weights are a
    distribution over the real keys like every other module here (the interface contract;
    the context is then a convex combination).  This equals
    ``softmax_window(score_j - (j - p_t)^2 / (2 sigma^2))``, which is what :meth:`energies`
    returns (``-inf`` outside the window and at padding).  ``renormalize=False`` gives the
    paper's unnormalised weights (sum <= 1) in :meth:`forward`.  Gradients reach ``W_p``,
    ``v_p`` through the Gaussian; the window edges are piecewise constant in ``p_t``.

    The window always holds a real key: ``D >= 1`` and ``0 < p_t < S_b``, so
    ``floor(p_t)`` is in it.

    Args:
        query_size: Dq.  key_size: Dk.  window: D (>= 1, int).
        score: alignment function.  attn_size: MLP size for ``"concat"`` (default Dq).
        renormalize: see above.

    Shapes: query (B, Dq); keys (B, S, Dk); mask (B, S) bool; :meth:`position` (B,).
    """

    def __init__(
        self,
        query_size: int,
        key_size: int,
        window: int = 10,
        score: Literal["general", "dot", "concat"] = "general",
        attn_size: int | None = None,
        renormalize: bool = True,
    ):
        super().__init__()
        if int(window) != window or window < 1:
            raise ValueError(f"window must be an integer >= 1, got {window!r}")
        self.window = int(window)
        self.sigma = self.window / 2.0
        self.renormalize = renormalize
        if score == "general":
            self.scorer: _Attention = GeneralAttention(query_size, key_size)
        elif score == "dot":
            if query_size != key_size:
                raise ValueError(
                    f"dot score needs query_size == key_size ({query_size} != {key_size})"
                )
            self.scorer = DotAttention()
        elif score == "concat":
            self.scorer = AdditiveAttention(query_size, key_size, attn_size or query_size)
        else:
            raise ValueError(f"score must be 'general', 'dot' or 'concat', got {score!r}")
        self.pos_proj = Linear(query_size, query_size, bias=False)  # W_p
        self.pos_v = Linear(query_size, 1, bias=False)  # v_p

    def project_keys(self, keys: Tensor) -> Tensor:
        return self.scorer.project_keys(keys)

    def position(self, query: Tensor, mask: Tensor) -> Tensor:
        """Aligned positions ``p_t`` (B,) in ``(0, S_b)``, ``S_b = mask.sum(1)``."""
        s_b = mask.sum(dim=1).to(query.dtype)  # (B,)
        return s_b * torch.sigmoid(self.pos_v(torch.tanh(self.pos_proj(query)))).squeeze(-1)

    def _parts(self, query, keys, mask, proj_keys):
        """Window-masked scores (B, S), Gaussian log-factor (B, S) and the window mask."""
        score = self.scorer.energies(query, keys, mask, proj_keys=proj_keys)  # (B, S)
        p = self.position(query, mask).unsqueeze(1)  # (B, 1)
        j = torch.arange(keys.size(1), device=keys.device, dtype=query.dtype).unsqueeze(0)
        inside = mask & ((j - p).abs() <= self.window)  # (B, S)
        log_gauss = -((j - p) ** 2) / (2.0 * self.sigma**2)  # (B, S)
        return score.masked_fill(~inside, _NEG_INF), log_gauss, inside

    def energies(
        self,
        query: Tensor,
        keys: Tensor,
        mask: Tensor,
        *,
        proj_keys: Tensor | None = None,
        prev_weights: Tensor | None = None,
        coverage: Tensor | None = None,
    ) -> Tensor:
        """``score_j - (j - p_t)^2 / (2 sigma^2)`` (B, S); ``-inf`` outside the window and
        at padded keys."""
        self._check(prev_weights, coverage)
        score, log_gauss, inside = self._parts(query, keys, mask, proj_keys)
        return (score + log_gauss).masked_fill(~inside, _NEG_INF)

    def forward(
        self,
        query: Tensor,
        keys: Tensor,
        mask: Tensor,
        *,
        values: Tensor | None = None,
        proj_keys: Tensor | None = None,
        prev_weights: Tensor | None = None,
        coverage: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Returns ``context`` (B, Dv) and ``weights`` (B, S), 0 outside the window and at
        padded keys."""
        if self.renormalize:
            return super().forward(
                query,
                keys,
                mask,
                values=values,
                proj_keys=proj_keys,
                prev_weights=prev_weights,
                coverage=coverage,
            )
        self._check(prev_weights, coverage)
        score, log_gauss, inside = self._parts(query, keys, mask, proj_keys)
        align = torch.softmax(score, dim=-1)  # (B, S), 0 outside the window
        weights = align * torch.exp(log_gauss.masked_fill(~inside, _NEG_INF))  # (B, S)
        return _read(weights, keys if values is None else values), weights


class LocationAwareAttention(_Attention):
    """Location-aware attention of Chorowski et al. (2015), eqs. 5, 8, 9.

    The previous weights ``a_{t-1}`` are convolved with ``conv_channels`` filters of width
    ``kernel_size`` (zero padding, "same" length): ``f = F * a_{t-1}`` (B, S, K), and

        ``e_j = w^T tanh(W q + V k_j + U f_j + b)``.

    ``prev_weights`` are zeroed at padded keys before the convolution, so a padded batch
    sees exactly what each sequence alone sees (zero padding in both cases).
    ``prev_weights=None`` means uniform weights ``1 / S_b`` over the real keys (the usual
    first-step choice, e.g. ESPnet's ``AttLoc``); the paper leaves ``a_0`` unspecified.

    Args:
        query_size: Dq.  key_size: Dk.  attn_size: A.
        conv_channels: K filters.  kernel_size: filter width (odd).

    Shapes: query (B, Dq); keys (B, S, Dk); mask (B, S) bool; prev_weights (B, S);
    ``project_keys`` returns ``V k`` (B, S, A).
    """

    needs_prev_weights = True

    def __init__(
        self,
        query_size: int,
        key_size: int,
        attn_size: int,
        conv_channels: int = 10,
        kernel_size: int = 31,
    ):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 1, got {kernel_size}")
        self.conv = nn.Conv1d(1, conv_channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.loc_proj = Linear(conv_channels, attn_size, bias=False)  # U
        self.query_proj = Linear(query_size, attn_size, bias=True)  # W, b
        self.key_proj = Linear(key_size, attn_size, bias=False)  # V
        self.v = Linear(attn_size, 1, bias=False)  # w

    def project_keys(self, keys: Tensor) -> Tensor:
        return self.key_proj(keys)  # (B, S, A)

    @staticmethod
    def uniform_weights(mask: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        """``1 / S_b`` at real keys, 0 at padding: (B, S)."""
        m = mask.to(dtype)
        return m / m.sum(dim=1, keepdim=True)

    def energies(
        self,
        query: Tensor,
        keys: Tensor,
        mask: Tensor,
        *,
        proj_keys: Tensor | None = None,
        prev_weights: Tensor | None = None,
        coverage: Tensor | None = None,
    ) -> Tensor:
        """Energies (B, S), ``-inf`` at padded keys."""
        self._check(prev_weights, coverage)
        if prev_weights is None:
            prev_weights = self.uniform_weights(mask, query.dtype)
        prev = prev_weights.masked_fill(~mask, 0.0)  # (B, S)
        f = self.conv(prev.unsqueeze(1)).transpose(1, 2)  # (B, 1, S) -> (B, K, S) -> (B, S, K)
        pk = self.project_keys(keys) if proj_keys is None else proj_keys  # (B, S, A)
        hid = pk + self.loc_proj(f) + self.query_proj(query).unsqueeze(1)  # (B, S, A)
        e = self.v(tanh(hid)).squeeze(-1)  # (B, S)
        return e.masked_fill(~mask, _NEG_INF)


_KINDS = ("additive", "dot", "general", "local_p", "location")


def build_attention(kind: str, query_size: int, key_size: int, **kw) -> nn.Module:
    """Build an attention module by name.

    ``kind``: ``"additive"`` (:class:`AdditiveAttention`; ``attn_size`` defaults to
    ``query_size``, ``coverage`` passes through), ``"dot"`` (:class:`DotAttention`; needs
    ``query_size == key_size``), ``"general"`` (:class:`GeneralAttention`), ``"local_p"``
    (:class:`LocalPAttention`; ``window``, ``score``, ``attn_size``, ``renormalize``) or
    ``"location"`` (:class:`LocationAwareAttention`; ``attn_size`` defaults to
    ``query_size``, ``conv_channels``, ``kernel_size``).  Unknown keywords raise
    ``TypeError``.
    """
    if kind == "additive":
        return AdditiveAttention(query_size, key_size, kw.pop("attn_size", query_size), **kw)
    if kind == "dot":
        if kw:
            raise TypeError(f"dot attention takes no options, got {sorted(kw)}")
        if query_size != key_size:
            raise ValueError(
                f"dot attention needs query_size == key_size ({query_size} != {key_size})"
            )
        return DotAttention()
    if kind == "general":
        return GeneralAttention(query_size, key_size, **kw)
    if kind == "local_p":
        return LocalPAttention(query_size, key_size, **kw)
    if kind == "location":
        return LocationAwareAttention(query_size, key_size, kw.pop("attn_size", query_size), **kw)
    raise ValueError(f"attention kind must be one of {_KINDS}, got {kind!r}")
