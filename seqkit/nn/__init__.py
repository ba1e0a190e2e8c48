"""Pure sequence modules: no file I/O, no config parsing.

Every module documents its tensor shapes and the paper it implements.  All public classes
and functions are importable from ``seqkit.nn`` directly.
"""

from seqkit.nn.activation import fast_tanh_enabled, set_fast_tanh
from seqkit.nn.attention import (
    AdditiveAttention,
    DotAttention,
    GeneralAttention,
    LocalPAttention,
    LocationAwareAttention,
    build_attention,
    masked_softmax,
)
from seqkit.nn.autoencoder import SequenceAutoencoder, corrupt_features
from seqkit.nn.cells import (
    ElmanCell,
    GRUCell,
    IRNNCell,
    JordanRNNCell,
    LayerNormLSTMCell,
    LSTMCell,
    PeepholeLSTMCell,
    TorchGRUCell,
    TorchLSTMCell,
)
from seqkit.nn.conv import MaskedConvMaxPool
from seqkit.nn.copy import (
    CopyBatch,
    CopyNetDecoder,
    PointerGeneratorDecoder,
    collate_copy_batch,
    extend_source,
    extend_target,
    extended_log_probs,
    extended_to_tokens,
    oov_to_unk,
)
from seqkit.nn.crf import CRF, bio_transition_constraints
from seqkit.nn.ctc import (
    CTCHead,
    check_ctc_lengths,
    ctc_candidate_log_likelihoods,
    ctc_greedy_decode,
    ctc_loss,
    ctc_min_input_lengths,
)
from seqkit.nn.decoder import AttentionalDecoder, scheduled_sampling_prob
from seqkit.nn.dense import Linear, linear, onednn_linear_enabled, set_onednn_linear
from seqkit.nn.dropout import (
    Dropout,
    EmbeddingDropout,
    LockedDropout,
    WeightDropGRU,
    WeightDropLSTM,
    embedding_dropout,
    locked_dropout,
)
from seqkit.nn.embedding import CharCNN
from seqkit.nn.frontend import ConvSubsampling, SpecAugment, stack_frames, stacked_lengths
from seqkit.nn.lm import RNNLM, ContinuousCache, cache_pointer_log_probs
from seqkit.nn.losses import linear_cross_entropy, sequence_cross_entropy
from seqkit.nn.pointer import POINTER_START, PointerNetwork
from seqkit.nn.pooling import SequencePooling
from seqkit.nn.pyramidal import PyramidalEncoder, concat_adjacent_frames
from seqkit.nn.rnn import CellRNN, RNNEncoder, masked_scan, reverse_padded

__all__ = [
    "CRF",
    "POINTER_START",
    "RNNLM",
    "AdditiveAttention",
    "AttentionalDecoder",
    "CTCHead",
    "CellRNN",
    "ConvSubsampling",
    "CharCNN",
    "Dropout",
    "ContinuousCache",
    "CopyBatch",
    "CopyNetDecoder",
    "DotAttention",
    "ElmanCell",
    "EmbeddingDropout",
    "GRUCell",
    "GeneralAttention",
    "IRNNCell",
    "JordanRNNCell",
    "LSTMCell",
    "LayerNormLSTMCell",
    "Linear",
    "LocalPAttention",
    "LocationAwareAttention",
    "LockedDropout",
    "MaskedConvMaxPool",
    "PeepholeLSTMCell",
    "TorchGRUCell",
    "TorchLSTMCell",
    "PointerGeneratorDecoder",
    "PointerNetwork",
    "PyramidalEncoder",
    "RNNEncoder",
    "SequenceAutoencoder",
    "SequencePooling",
    "SpecAugment",
    "WeightDropGRU",
    "WeightDropLSTM",
    "bio_transition_constraints",
    "build_attention",
    "cache_pointer_log_probs",
    "check_ctc_lengths",
    "collate_copy_batch",
    "concat_adjacent_frames",
    "corrupt_features",
    "ctc_candidate_log_likelihoods",
    "ctc_greedy_decode",
    "ctc_loss",
    "ctc_min_input_lengths",
    "embedding_dropout",
    "extend_source",
    "extend_target",
    "extended_log_probs",
    "extended_to_tokens",
    "fast_tanh_enabled",
    "linear_cross_entropy",
    "locked_dropout",
    "masked_scan",
    "linear",
    "masked_softmax",
    "onednn_linear_enabled",
    "oov_to_unk",
    "reverse_padded",
    "set_fast_tanh",
    "set_onednn_linear",
    "scheduled_sampling_prob",
    "sequence_cross_entropy",
    "stack_frames",
    "stacked_lengths",
]
