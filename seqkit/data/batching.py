"""Padding, masks, and length-bucketed batching under a padded-token budget."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

__all__ = ["pad_sequences", "lengths_to_mask", "BucketBatchSampler"]


def pad_sequences(
    seqs: Sequence[Sequence[int]] | Sequence[torch.Tensor],
    pad_value: int | float = 0,
    dtype: torch.dtype = torch.long,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad variable-length sequences into one tensor.

    ``seqs``: B lists of numbers, or B tensors of shape ``(T_i, *F)`` with the same
    trailing feature dims ``F`` (e.g. ``(T_i, n_mels)`` speech features).

    Returns ``(padded, lengths)``: ``padded`` is ``(B, T_max, *F)`` filled with
    ``pad_value`` beyond each length, ``lengths`` is ``(B,)`` long (on the CPU).
    The output is on the device of the input tensors.  ``dtype`` is the output
    dtype, except that floating-point tensors are never cast to an integer dtype
    (they keep their own dtype), so ``pad_sequences(features)`` does not truncate
    features when ``dtype`` is left at its default.
    """
    tensors = [s if isinstance(s, torch.Tensor) else torch.as_tensor(list(s), dtype=dtype) for s in seqs]
    if any(t.dim() == 0 for t in tensors):
        raise ValueError("pad_sequences: got a 0-d tensor; each sequence needs a time dimension")
    lengths = torch.tensor([t.shape[0] for t in tensors], dtype=torch.long)
    if not tensors:
        return torch.empty((0, 0), dtype=dtype), lengths
    out_dtype = dtype
    first = tensors[0]
    if first.is_floating_point() and not (dtype.is_floating_point or dtype.is_complex):
        out_dtype = first.dtype
    feat = tuple(first.shape[1:])
    for i, t in enumerate(tensors):
        if tuple(t.shape[1:]) != feat:
            raise ValueError(
                f"pad_sequences: sequence {i} has trailing shape {tuple(t.shape[1:])}, "
                f"expected {feat} like sequence 0"
            )
    t_max = int(lengths.max())
    padded = torch.full((len(tensors), t_max, *feat), pad_value, dtype=out_dtype, device=first.device)
    for i, t in enumerate(tensors):
        if t.shape[0]:
            padded[i, : t.shape[0]] = t.to(device=first.device, dtype=out_dtype)
    return padded, lengths


def lengths_to_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """Boolean mask ``(B, T)``, True at real positions ``t < lengths[b]``.

    ``T`` is ``max_len`` or ``lengths.max()``; the mask is on ``lengths``' device.
    """
    lengths = torch.as_tensor(lengths)
    if max_len is None:
        max_len = int(lengths.max()) if lengths.numel() else 0
    steps = torch.arange(max_len, device=lengths.device)
    return steps.unsqueeze(0) < lengths.unsqueeze(1)


class BucketBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Batches of similar-length items under a padded-token cap, for ``DataLoader(batch_sampler=...)``.

    Algorithm for one epoch (:meth:`batches`):

    1. with ``shuffle``: permute the indices with a ``torch.Generator`` seeded by
       ``seed + epoch`` (never the global RNG), then stable-sort by length so items
       of equal length are in random order; without ``shuffle``: sort by length,
       ties by index, and use no generator at all;
    2. cut consecutive runs greedily into batches such that
       ``max_len_in_batch * n_in_batch <= max_tokens`` (the cost after padding) and
       ``n_in_batch <= max_sentences``.  A zero length counts as 1.  **An item longer
       than ``max_tokens`` is never dropped: it forms a batch of its own**;
    3. with ``shuffle``: permute the batch order with the same generator.

    The batch count depends only on the multiset of lengths, so it is the same in
    every epoch.

    Distributed: rank ``r`` takes ``batches[r::num_replicas]``.  When the number of
    batches is not divisible by ``num_replicas``, the global list is padded by
    repeating batches from its start so that **every rank yields the same number of
    batches** (DDP needs equal step counts); those few items are seen twice that epoch.

    Resuming: :meth:`set_start` skips the first ``start`` batches of this rank's list in
    the current epoch; :meth:`set_epoch` resets it to 0.  ``len()`` ignores ``start``.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        max_tokens: int,
        max_sentences: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ):
        super().__init__()
        self.lengths = [int(n) for n in lengths]
        if any(n < 0 for n in self.lengths):
            raise ValueError("BucketBatchSampler: lengths must be >= 0")
        if max_tokens < 1:
            raise ValueError(f"BucketBatchSampler: max_tokens must be >= 1, got {max_tokens}")
        if max_sentences is not None and max_sentences < 1:
            raise ValueError(f"BucketBatchSampler: max_sentences must be >= 1, got {max_sentences}")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"BucketBatchSampler: bad rank {rank} for num_replicas={num_replicas}")
        self.max_tokens = int(max_tokens)
        self.max_sentences = max_sentences
        self.shuffle = shuffle
        self.seed = int(seed)
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.start = 0
        self._cache: tuple[int, list[list[int]]] | None = None

    def _cut(self, order: list[int]) -> list[list[int]]:
        batches: list[list[int]] = []
        batch: list[int] = []
        cur_max = 0
        cap_n = self.max_sentences
        for i in order:
            n = max(self.lengths[i], 1)
            new_max = max(cur_max, n)
            if batch and (new_max * (len(batch) + 1) > self.max_tokens or (cap_n is not None and len(batch) >= cap_n)):
                batches.append(batch)
                batch, new_max = [], n
            batch.append(i)
            cur_max = new_max
        if batch:
            batches.append(batch)
        return batches

    def batches(self, epoch: int) -> list[list[int]]:
        """The global batch list for ``epoch`` (before the rank split and its padding).

        A deterministic function of ``(lengths, max_tokens, max_sentences, seed, epoch)``.
        """
        if self._cache is not None and self._cache[0] == epoch:
            return [list(b) for b in self._cache[1]]
        n = len(self.lengths)
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + epoch)
            perm = torch.randperm(n, generator=g).tolist()
            order = sorted(perm, key=self.lengths.__getitem__)
            batches = self._cut(order)
            batch_perm = torch.randperm(len(batches), generator=g).tolist()
            batches = [batches[j] for j in batch_perm]
        else:
            order = sorted(range(n), key=self.lengths.__getitem__)
            batches = self._cut(order)
        self._cache = (epoch, batches)
        return [list(b) for b in batches]

    def _rank_batches(self) -> list[list[int]]:
        batches = self.batches(self.epoch)
        r = self.num_replicas
        if r > 1 and batches and len(batches) % r:
            pad = r - len(batches) % r
            batches = batches + [batches[k % len(batches)] for k in range(pad)]
        return batches[self.rank :: r]

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (the shuffle) and reset the start position to 0."""
        self.epoch = int(epoch)
        self.start = 0

    def set_start(self, start: int) -> None:
        """Skip the first ``start`` batches of this rank's list in the current epoch."""
        if start < 0:
            raise ValueError(f"BucketBatchSampler: start must be >= 0, got {start}")
        self.start = int(start)

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._rank_batches()[self.start :]

    def __len__(self) -> int:
        n = len(self.batches(self.epoch))
        return -(-n // self.num_replicas)
