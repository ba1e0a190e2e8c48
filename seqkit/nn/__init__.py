"""Pure sequence modules: no file I/O, no config parsing.

Every module documents its tensor shapes and the paper it implements.
"""

from seqkit.nn.crf import CRF, bio_transition_constraints
from seqkit.nn.embedding import CharCNN
from seqkit.nn.pooling import SequencePooling
from seqkit.nn.rnn import RNNEncoder

__all__ = ["CRF", "CharCNN", "RNNEncoder", "SequencePooling", "bio_transition_constraints"]
