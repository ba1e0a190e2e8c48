"""seqkit: recurrent, attention, copy and CTC sequence models for text and speech."""

__version__ = "0.1.0"
