"""CTC forced alignment and word segments (for cutting utterances into word-level audio).

:func:`ctc_word_segments` aligns a transcript to one utterance's CTC log-posteriors with
:func:`torchaudio.functional.forced_align` (the Viterbi path through the CTC topology:
Graves et al. 2006; as used for segmentation by Kürzinger et al. 2020, "CTC-Segmentation of
Large Corpora for German End-to-end Speech Recognition"), merges the frames of each label
(:func:`torchaudio.functional.merge_tokens`) and groups the labels into words at the word
delimiter.  A word spans from the first frame of its first label to the last frame of its
last label; times are frame indices times ``frame_seconds`` (the encoder's frame shift).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torchaudio
from torch import Tensor

__all__ = ["WordSegment", "ctc_word_segments"]


@dataclass
class WordSegment:
    index: int  # the word's position in the transcript
    start: float  # seconds
    end: float  # seconds (exclusive)
    score: float  # mean frame log-posterior of its labels on the path


def ctc_word_segments(
    log_probs: Tensor, targets: Sequence[int], *, blank: int, delimiter: int, frame_seconds: float
) -> list[WordSegment]:
    """Word segments of ``targets`` (label ids, words separated by ``delimiter``) in
    ``log_probs`` (T, V) of one utterance.  ``ValueError`` when no alignment exists (fewer
    frames than labels plus repeats) or the targets contain the blank."""
    ids = [int(t) for t in targets]
    if not ids:
        return []
    if blank in ids:
        raise ValueError("targets contain the blank id")
    lp = log_probs.detach().float().cpu().unsqueeze(0)  # (1, T, V)
    tg = torch.tensor([ids], dtype=torch.int32)  # (1, L)
    try:
        path, scores = torchaudio.functional.forced_align(lp, tg, blank=blank)  # (1, T) each
    except RuntimeError as e:
        raise ValueError(f"no CTC alignment: {e}") from None
    spans = torchaudio.functional.merge_tokens(path[0], scores[0])  # one span per label
    if len(spans) != len(ids):
        raise ValueError(f"alignment has {len(spans)} label spans for {len(ids)} labels")
    words: list[WordSegment] = []
    current: list = []

    frame_lp = scores[0]  # (T,) log-posterior of the path's label at each frame

    def close() -> None:
        if current:
            lps = torch.cat([frame_lp[s.start : s.end] for s in current])
            words.append(WordSegment(len(words), current[0].start * frame_seconds, current[-1].end * frame_seconds,
                                     float(lps.mean())))
            current.clear()

    for tok, span in zip(ids, spans):
        if tok == delimiter:
            close()
        else:
            current.append(span)
    close()
    return words
