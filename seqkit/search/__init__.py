"""Search over incremental decoders (the step/state contract of :mod:`seqkit.search.state`).

Greedy and batched beam search with GNMT length penalty, n-best, LM shallow fusion and joint
CTC/attention scoring; CTC greedy/prefix beam search with LM fusion; LM scorers;
balanced (count-constrained) assignment of a whole set to classes.
"""

from seqkit.search.assign import balanced_assignment, equal_counts
from seqkit.search.beam import (
    GreedyResult,
    Hypothesis,
    Stepper,
    beam_search,
    beam_search_per_sentence,
    gnmt_length_penalty,
    greedy_search,
)
from seqkit.search.ctc_align import WordSegment, ctc_word_segments
from seqkit.search.ctc_decoder import (
    CTCHypothesis,
    ctc_prefix_beam_search,
    ctc_prefix_beam_search_batch,
)
from seqkit.search.ctc_prefix_score import CTCPrefixScorer
from seqkit.search.lm_scorer import ArpaLM, LMScorer, MappedLMStepper, NeuralLMScorer, NeuralLMState
from seqkit.search.state import State, expand_state, select_state

__all__ = [
    "ArpaLM",
    "CTCHypothesis",
    "CTCPrefixScorer",
    "GreedyResult",
    "Hypothesis",
    "LMScorer",
    "MappedLMStepper",
    "NeuralLMScorer",
    "NeuralLMState",
    "State",
    "Stepper",
    "WordSegment",
    "balanced_assignment",
    "beam_search",
    "beam_search_per_sentence",
    "ctc_prefix_beam_search",
    "ctc_word_segments",
    "ctc_prefix_beam_search_batch",
    "equal_counts",
    "expand_state",
    "gnmt_length_penalty",
    "greedy_search",
    "select_state",
]
