"""Data: vocabularies, tokenizers, corpus readers, padding and length-bucketed batching."""

from __future__ import annotations

from .batching import BucketBatchSampler, lengths_to_mask, pad_sequences
from .readers import (
    TaggedExample,
    read_lines,
    read_lm_stream,
    read_parallel,
    read_tagging,
    read_tsv_classification,
)
from .tokenizers import (
    CharTokenizer,
    SentencePieceTokenizer,
    WordTokenizer,
    build_tokenizer,
    tokenizer_from_dict,
)
from .vocab import BOS, EOS, PAD, UNK, Vocab

__all__ = [
    "BOS",
    "EOS",
    "PAD",
    "UNK",
    "BucketBatchSampler",
    "CharTokenizer",
    "SentencePieceTokenizer",
    "TaggedExample",
    "Vocab",
    "WordTokenizer",
    "build_tokenizer",
    "lengths_to_mask",
    "pad_sequences",
    "read_lines",
    "read_lm_stream",
    "read_parallel",
    "read_tagging",
    "read_tsv_classification",
    "tokenizer_from_dict",
]
