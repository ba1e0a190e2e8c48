"""Acoustic front ends that shorten a feature sequence before the encoder, and SpecAugment.

* :func:`stack_frames`: stack ``k`` consecutive frames into one and keep every ``k``-th
  (Sak, Senior, Rao & Beaufays 2015, "Fast and Accurate Recurrent Neural Network Acoustic
  Models for Speech Recognition", Interspeech: frame stacking and reduced frame rate).
* :class:`ConvSubsampling`: two 3x3 convolutions with stride 2 over (time, frequency), as
  in DeepSpeech 2 (Amodei et al. 2016) and ESPnet's ``Conv2dSubsampling``; 4x shorter.
* :class:`SpecAugment`: frequency and time masking (Park et al. 2019, "SpecAugment: A Simple
  Data Augmentation Method for Automatic Speech Recognition", Interspeech) with
  :class:`torchaudio.transforms.FrequencyMasking` / ``TimeMasking``; time warping is left out.

All take ``x`` (B, T, F) with ``lengths`` (B,) and guarantee that padded frames never reach
real output frames: padding is zeroed before every convolution, so a sequence in a batch
gets exactly the outputs it would get alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchaudio
from torch import Tensor, nn

from seqkit.nn.dense import Linear

__all__ = ["ConvSubsampling", "SpecAugment", "stack_frames", "stacked_lengths"]


def stacked_lengths(lengths: Tensor, k: int) -> Tensor:
    """``ceil(lengths / k)``: lengths after :func:`stack_frames` (or any k-fold reduction)."""
    return (torch.as_tensor(lengths) + k - 1) // k


def _zero_padding(x: Tensor, lengths: Tensor) -> Tensor:
    real = torch.arange(x.size(1), device=x.device) < lengths.to(x.device).unsqueeze(1)  # (B, T)
    return x.masked_fill(~real.unsqueeze(-1), 0.0)


def stack_frames(x: Tensor, lengths: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """``(B, T, F) -> (B, ceil(T / k), k F)``: ``out[b, t] = [x[b, kt]; ..; x[b, kt + k - 1]]``.

    Frames at or past a sequence's length count as zero (the last stacked frame of a
    sequence whose length is not a multiple of ``k`` is zero-filled, nothing is dropped).
    Returns the stacked tensor and ``ceil(lengths / k)``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if k == 1:
        return x, lengths
    b, t, f = x.shape
    x = _zero_padding(x, lengths)
    pad = (-t) % k
    if pad:
        x = F.pad(x, (0, 0, 0, pad))  # (B, T + pad, F)
    return x.reshape(b, (t + pad) // k, k * f), stacked_lengths(lengths, k)  # (B, T/k, kF)


class ConvSubsampling(nn.Module):
    """Two ``Conv2d(3x3, stride 2, padding 1)`` + ReLU layers, then a linear map: 4x shorter.

    Args:
        input_size: F, features per frame.  channels: C per convolution.
        output_size: D of the linear map over the flattened ``C * ceil(ceil(F / 2) / 2)``.

    Shapes: ``x`` (B, T, F), ``lengths`` (B,) -> (B, ceil(ceil(T / 2) / 2), D), new lengths.
    """

    def __init__(self, input_size: int, channels: int = 32, output_size: int = 256):
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=2, padding=1)
        f = (input_size + 1) // 2
        f = (f + 1) // 2
        self.out = Linear(channels * f, output_size)
        self.output_size = output_size

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        h = _zero_padding(x, lengths).unsqueeze(1)  # (B, 1, T, F)
        h = torch.relu(self.conv1(h))  # (B, C, ceil(T/2), ceil(F/2))
        lengths = stacked_lengths(lengths, 2)
        real = torch.arange(h.size(2), device=h.device) < lengths.to(h.device).unsqueeze(1)  # (B, T/2)
        h = h.masked_fill(~real[:, None, :, None], 0.0)  # padding -> 0 again
        h = torch.relu(self.conv2(h))  # (B, C, ceil(T/4), ceil(F/4))
        lengths = stacked_lengths(lengths, 2)
        b, c, t, f = h.shape
        h = self.out(h.permute(0, 2, 1, 3).reshape(b, t, c * f))  # (B, T/4, D)
        return _zero_padding(h, lengths), lengths


class SpecAugment(nn.Module):
    """Frequency and time masks on a padded batch (training mode only; identity in eval).

    Args:
        freq_masks / freq_width: number of frequency masks, each up to ``freq_width`` bins.
        time_masks / time_width: number of time masks, each up to ``time_width`` frames and
            at most ``time_ratio`` of the padded length (torchaudio's ``p``).

    Masked values are set to 0 (the mean after CMVN).  Each utterance gets its own masks.
    ``x`` (B, T, F) -> (B, T, F).
    """

    def __init__(self, freq_masks: int = 2, freq_width: int = 15, time_masks: int = 2, time_width: int = 40,
                 time_ratio: float = 0.2):
        super().__init__()
        self.freq = nn.ModuleList(
            torchaudio.transforms.FrequencyMasking(freq_width, iid_masks=True) for _ in range(freq_masks)
        )
        self.time = nn.ModuleList(
            torchaudio.transforms.TimeMasking(time_width, iid_masks=True, p=time_ratio) for _ in range(time_masks)
        )

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or (not self.freq and not self.time):
            return x
        spec = x.transpose(1, 2).unsqueeze(1)  # (B, 1, F, T): torchaudio's layout
        for m in (*self.freq, *self.time):
            spec = m(spec)
        return spec.squeeze(1).transpose(1, 2)  # (B, T, F)
