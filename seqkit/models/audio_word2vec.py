"""The Audio Word2Vec model of ``task: audio_word2vec``: :class:`~seqkit.nn.autoencoder.SequenceAutoencoder`
taking the trainer's batch dict (``x`` (B, T, F), ``lengths`` (B,))."""

from __future__ import annotations

from seqkit.nn.autoencoder import SequenceAutoencoder

__all__ = ["SegmentAutoencoder"]


class SegmentAutoencoder(SequenceAutoencoder):
    """SA / DSA over a batch dict; see :class:`~seqkit.nn.autoencoder.SequenceAutoencoder`."""

    def forward(self, batch: dict) -> dict:  # type: ignore[override]
        return super().forward(batch["x"], batch["lengths"])
