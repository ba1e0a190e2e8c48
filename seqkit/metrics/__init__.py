"""Evaluation metrics (BLEU, chrF, WER, CER, slot F1, accuracy, perplexity) and their input readers."""

from __future__ import annotations

from .io import read_tag_lines, read_text_lines
from .scoring import accuracy, alignment_view, bleu, cer, chrf, perplexity, slot_f1, wer

__all__ = [
    "accuracy",
    "alignment_view",
    "bleu",
    "cer",
    "chrf",
    "perplexity",
    "read_tag_lines",
    "read_text_lines",
    "slot_f1",
    "wer",
]
