"""Audio in, features out: reading, resampling, log-mel filterbanks, CMVN, speed perturbation, a disk cache.

* Reading is :mod:`soundfile` (WAV/FLAC/SPHERE/OGG via libsndfile, no ffmpeg); a corrupt,
  unreadable, empty or truncated file (a WAV whose data chunk is shorter than its header says,
  which libsndfile would read short without a word) or one with NaN/infinite samples is a
  :class:`~seqkit.errors.DataError` naming the file (and, for manifest entries, the utterance).
  Multi-channel audio is averaged to mono; a rate other than the requested one is resampled
  with :func:`torchaudio.functional.resample` (windowed sinc).
* Features are log-mel filterbanks from :class:`torchaudio.transforms.MelSpectrogram`
  (25 ms Hann windows every 10 ms, power spectrum, ``log(mel + 1e-6)``), shape ``(T, n_mels)``
  with ``T = 1 + samples // hop``, or MFCCs (:class:`torchaudio.transforms.MFCC`, the DCT of
  the log-mels), ``(T, n_mfcc)``.
* CMVN: per utterance (:func:`utterance_cmvn`) or global, with statistics accumulated over the
  training set (:class:`GlobalCMVN`, stored in the checkpoint).
* Speed perturbation (Ko et al. 2015, "Audio Augmentation for Speech Recognition", Kaldi's
  ``sox speed``): resampling by ``1 / factor`` and playing at the original rate, which scales
  tempo and pitch together; :func:`speed_perturb`.
* Vocal tract length perturbation (Jaitly & Hinton 2013, "Vocal Tract Length Perturbation
  (VTLP) improves speech recognition"): the frequency axis warped by a factor, piecewise
  linearly so that the Nyquist frequency stays put, which moves formants as another speaker's
  vocal tract would without changing the tempo; :func:`vtlp_matrix`, ``features(..., warp=)``.
* :class:`FeatureCache`: features of a whole manifest computed once and stored in one file
  keyed by a hash of the audio files (path, size, mtime), the segments and the feature
  options, so later runs (and every epoch) reuse them.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio
from torch import Tensor

from ..errors import DataError
from .manifest import Utterance

__all__ = [
    "FeatureOptions",
    "FeatureCache",
    "GlobalCMVN",
    "features",
    "load_audio",
    "speed_perturb",
    "utterance_cmvn",
    "vtlp_matrix",
]


def _wav_truncation(p: Path) -> str | None:
    """For a RIFF/WAVE file whose ``data`` chunk holds fewer bytes than its header declares,
    the reason; else None.  (Streamed WAVs with an unknown size, 0 or >= 2^31 - 4096, pass;
    a file that cannot be opened is left to soundfile to report.)"""
    try:
        size = p.stat().st_size
        with p.open("rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            pos = 12
            while pos + 8 <= size:
                f.seek(pos)
                cid, n = struct.unpack("<4sI", f.read(8))
                if cid == b"data":
                    have = size - pos - 8
                    if have < n < 0x7FFFF000:
                        return f"truncated WAV: the header declares {n} bytes of samples, the file holds {have}"
                    return None
                pos += 8 + n + (n & 1)
    except OSError:
        return None
    return None


def load_audio(
    path: str | Path, sample_rate: int | None = None, start: float | None = None, end: float | None = None
) -> tuple[Tensor, int]:
    """Samples ``(N,)`` float32 in [-1, 1] and their rate (``sample_rate`` when given).

    ``start`` / ``end`` (seconds) read a segment.  Raises :class:`DataError` naming the file
    when it is missing, unreadable, truncated, has no samples (in the segment) or has NaN or
    infinite samples.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError("audio file not found", p)
    truncated = _wav_truncation(p)
    if truncated:
        raise DataError(truncated, p)
    try:
        with sf.SoundFile(str(p)) as f:
            sr = f.samplerate
            first = 0 if start is None else int(round(start * sr))
            last = f.frames if end is None else min(int(round(end * sr)), f.frames)
            if f.frames == 0:
                raise DataError("audio has no samples", p)
            if first >= f.frames:
                raise DataError(f"segment start {start} s is past the end ({f.frames / sr:.3f} s)", p)
            f.seek(first)
            data = f.read(max(last - first, 0), dtype="float32", always_2d=True)  # (N, C)
    except (sf.LibsndfileError, RuntimeError, ValueError) as e:
        raise DataError(f"cannot read audio: {e}", p) from None
    if data.shape[0] == 0:
        raise DataError("audio has no samples" + ("" if start is None else f" in [{start}, {end}] s"), p)
    wave = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1)))  # (N,)
    if not torch.isfinite(wave).all():
        raise DataError("audio contains NaN or infinite samples", p)
    if sample_rate is not None and sr != sample_rate:
        wave = torchaudio.functional.resample(wave, sr, sample_rate)
        sr = sample_rate
    return wave, sr


def speed_perturb(wave: Tensor, sample_rate: int, factor: float) -> Tensor:
    """``wave`` (N,) played ``factor`` times faster (tempo and pitch): (N,) -> (~N / factor,)."""
    if factor <= 0:
        raise ValueError(f"speed factor must be > 0, got {factor}")
    if factor == 1.0:
        return wave
    # N / factor samples read at the same rate; the ratio as a small fraction keeps the
    # resampling kernel small (torchaudio's cost grows with the reduced rates)
    ratio = Fraction(factor).limit_denominator(100)
    return torchaudio.functional.resample(wave, ratio.numerator, ratio.denominator)


@dataclass(frozen=True)
class FeatureOptions:
    kind: str = "fbank"  # "fbank": log-mel filterbanks; "mfcc": MFCCs (DCT of the log-mels)
    sample_rate: int = 16000  # audio at another rate is resampled to this
    n_mels: int = 80
    n_mfcc: int = 13  # mfcc only
    win_ms: float = 25.0
    hop_ms: float = 10.0

    @property
    def hop(self) -> int:
        return int(round(self.sample_rate * self.hop_ms / 1000))

    @property
    def win(self) -> int:
        return int(round(self.sample_rate * self.win_ms / 1000))

    @property
    def dim(self) -> int:
        return self.n_mfcc if self.kind == "mfcc" else self.n_mels


def vtlp_matrix(n_freqs: int, sample_rate: int, alpha: float, boundary: float = 0.6) -> Tensor:
    """Linear map of a spectrum's ``n_freqs`` bins (0 to Nyquist) onto its VTLP-warped copy:
    ``warped = spectrum @ M.T``, ``M`` (n_freqs, n_freqs).

    The warp is Jaitly & Hinton's: ``f -> alpha * f`` up to ``boundary * nyquist * min(alpha, 1) /
    alpha``, then linear up to Nyquist, which maps to itself; the warped spectrum at ``f`` is the
    original one at the inverse warp of ``f``, linearly interpolated between bins.  ``alpha > 1``
    moves formants up (a shorter vocal tract).  (Jaitly & Hinton use 4.8 kHz of 8 kHz: 0.6.)
    """
    if alpha <= 0 or not 0 < boundary < 1:
        raise ValueError(f"VTLP needs alpha > 0 and 0 < boundary < 1, got {alpha}, {boundary}")
    nyq = sample_rate / 2
    f = np.linspace(0.0, nyq, n_freqs)
    hi = boundary * nyq * min(alpha, 1.0)
    knee = hi / alpha
    warped = np.where(f <= knee, alpha * f, nyq - (nyq - hi) / (nyq - knee) * (nyq - f))  # w(f), monotone
    src = np.interp(f, warped, f) / nyq * (n_freqs - 1)  # w^-1(f) as a fractional bin
    lo = np.clip(np.floor(src).astype(int), 0, n_freqs - 2)
    frac = src - lo
    m = np.zeros((n_freqs, n_freqs))
    rows = np.arange(n_freqs)
    m[rows, lo] = 1 - frac
    m[rows, lo + 1] += frac
    return torch.from_numpy(m).float()


_TRANSFORMS: dict[tuple[FeatureOptions, float], torch.nn.Module] = {}


def features(wave: Tensor, opts: FeatureOptions, warp: float = 1.0) -> Tensor:
    """Log-mel filterbanks or MFCCs: ``wave`` (N,) at ``opts.sample_rate`` -> (T, dim); ``warp``
    other than 1 warps the power spectrum's frequency axis first (:func:`vtlp_matrix`)."""
    if opts.kind not in ("fbank", "mfcc"):
        raise ValueError(f"feature kind must be 'fbank' or 'mfcc', got {opts.kind!r}")
    tr = _TRANSFORMS.get((opts, warp))
    if tr is None:
        n_fft = 1 << (opts.win - 1).bit_length()  # next power of two
        mel = dict(n_fft=n_fft, win_length=opts.win, hop_length=opts.hop, n_mels=opts.n_mels, center=True)
        if opts.kind == "mfcc":
            tr = torchaudio.transforms.MFCC(sample_rate=opts.sample_rate, n_mfcc=opts.n_mfcc, log_mels=True,
                                            melkwargs=mel)
        else:
            tr = torchaudio.transforms.MelSpectrogram(sample_rate=opts.sample_rate, power=2.0, **mel)
        if warp != 1.0:  # mel(warped spectrum) = spectrum @ (M.T @ fb): warp the filterbank once
            scale = tr.MelSpectrogram.mel_scale if opts.kind == "mfcc" else tr.mel_scale
            scale.fb = vtlp_matrix(scale.fb.size(0), opts.sample_rate, warp).T @ scale.fb  # (F, n_mels)
        _TRANSFORMS[(opts, warp)] = tr
    with torch.no_grad():
        out = tr(wave)  # (dim, T)
    if opts.kind == "fbank":
        out = torch.log(out + 1e-6)
    return out.T.contiguous()  # (T, dim)


def utterance_cmvn(feats: Tensor, eps: float = 1e-5) -> Tensor:
    """Zero mean and unit variance per feature over the utterance's frames: (T, F) -> (T, F)."""
    mean = feats.mean(dim=0, keepdim=True)
    std = feats.std(dim=0, unbiased=False, keepdim=True)
    return (feats - mean) / (std + eps)


class GlobalCMVN:
    """Mean and standard deviation per feature over many utterances (the training set)."""

    def __init__(self, mean: Tensor, std: Tensor):
        self.mean, self.std = mean.float(), std.float()

    @classmethod
    def fit(cls, feats: Sequence[Tensor], eps: float = 1e-5) -> GlobalCMVN:
        n = sum(f.size(0) for f in feats)
        total = sum(f.double().sum(dim=0) for f in feats)
        sq = sum((f.double() ** 2).sum(dim=0) for f in feats)
        mean = total / n
        var = (sq / n - mean**2).clamp_min(0)
        return cls(mean.float(), (var.sqrt() + eps).float())

    def __call__(self, feats: Tensor) -> Tensor:
        return (feats - self.mean) / self.std

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> GlobalCMVN:
        return cls(torch.tensor(d["mean"]), torch.tensor(d["std"]))


def utterance_features(u: Utterance, opts: FeatureOptions, speed: float = 1.0, warp: float = 1.0) -> Tensor:
    """Features (T, dim) of one manifest entry (its segment if it has one), at ``speed`` and with
    the VTLP ``warp``; a :class:`DataError` from reading its audio also names the utterance."""
    try:
        wave, _ = load_audio(u.path, opts.sample_rate, u.start, u.end)
    except DataError as e:
        raise DataError(f"{e.reason} (utterance {u.id})", e.path, e.line) from None
    wave = speed_perturb(wave, opts.sample_rate, speed)
    return features(wave, opts, warp)


class FeatureCache:
    """Features of every utterance of a manifest, computed once and kept on disk.

    ``cache_dir=None`` keeps them in memory only.  The key covers each audio file's path,
    size and modification time, each entry's segment, the speed factor and the feature
    options (with the VTLP warp, where not 1), so a changed file or option recomputes.  The
    file is written atomically.
    """

    def __init__(self, cache_dir: str | Path | None):
        self.dir = None if cache_dir is None else Path(cache_dir)

    @staticmethod
    def key(utts: Sequence[Utterance], opts: FeatureOptions, speed: float, warp: float = 1.0) -> str:
        # (the key of an unwarped set is what it was before VTLP existed: old caches stay valid)
        h = hashlib.sha1(json.dumps([asdict(opts), speed] + ([] if warp == 1.0 else [warp])).encode())
        for u in utts:
            try:
                st = os.stat(u.path)
                stamp = (st.st_size, st.st_mtime_ns)
            except OSError:
                stamp = None
            h.update(json.dumps([u.id, u.path, u.start, u.end, stamp]).encode())
        return h.hexdigest()[:16]

    def features(self, utts: Sequence[Utterance], opts: FeatureOptions, speed: float = 1.0,
                 name: str = "feats", warp: float = 1.0) -> list[Tensor]:
        """(T_i, dim) float32 features of ``utts`` in order (from the cache when present)."""
        path = None
        if self.dir is not None:
            path = self.dir / f"{name}-{self.key(utts, opts, speed, warp)}.pt"
            if path.is_file():
                cached = torch.load(path, weights_only=True)
                return [cached[u.id] for u in utts]
        feats = [utterance_features(u, opts, speed, warp) for u in utts]
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            torch.save({u.id: f for u, f in zip(utts, feats)}, tmp)
            os.replace(tmp, path)
        return feats
