"""Audio glue shared by the speech tasks (``asr``, ``audio_word2vec``): manifests, cached
features, normalisation.  The task's ``DataConfig`` must have ``features``, ``sample_rate``,
``n_mels``, ``n_mfcc``, ``cmvn`` (``global`` / ``speaker`` / ``utterance`` / ``none``), ``cache_dir``
and ``allow_outside_paths`` (manifest audio paths may leave the manifest's folder).

``cmvn: speaker`` normalises each utterance with the mean and standard deviation of all
utterances of its speaker in the same list (the manifest's ``speaker`` field), as Kaldi's
per-speaker CMVN does; the statistics of an unseen speaker come from that speaker's own
(untranscribed) dev or test audio.  ``seqkit predict`` treats the files of one call as one
speaker."""

from __future__ import annotations

import torch

from ..data.audio import (
    FeatureCache,
    FeatureOptions,
    GlobalCMVN,
    features,
    load_audio,
    utterance_cmvn,
)
from ..data.manifest import Utterance, read_manifest
from ..errors import ConfigError, DataError
from .base import Task


class AudioTask(Task):
    """A :class:`Task` whose examples are manifest entries turned into (T, F) features."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.cmvn: GlobalCMVN | None = None  # global statistics (data.cmvn: global), saved in checkpoints

    def state_dict(self) -> dict:
        return {"cmvn": None if self.cmvn is None else self.cmvn.to_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.cmvn = None if state["cmvn"] is None else GlobalCMVN.from_dict(state["cmvn"])

    @staticmethod
    def pad_features(items: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
        """The items' ``feats`` padded into (B, T, F) with zeros, and their lengths (B,)."""
        feats = [it["feats"] for it in items]
        return torch.nn.utils.rnn.pad_sequence(feats, batch_first=True), torch.tensor([f.size(0) for f in feats])

    @property
    def feature_options(self) -> FeatureOptions:
        d = self.cfg.data
        return FeatureOptions(kind=d.features, sample_rate=d.sample_rate, n_mels=d.n_mels, n_mfcc=d.n_mfcc)

    def _manifest(self, path: str, key: str) -> list[Utterance]:
        self.check_file(key, path)
        return read_manifest(path, allow_outside=self.cfg.data.allow_outside_paths)

    def _features(self, utts: list[Utterance], name: str, speed: float = 1.0, warp: float = 1.0) -> list[torch.Tensor]:
        """(T_i, F) features of ``utts`` at ``speed`` with the VTLP ``warp`` (from ``data.cache_dir``
        when cached there)."""
        return FeatureCache(self.cfg.data.cache_dir).features(utts, self.feature_options, speed, name=name, warp=warp)

    def fit_cmvn(self, utts: list[Utterance], name: str) -> None:
        """With ``data.cmvn: global``: statistics of ``utts`` (the training set)."""
        if self.cfg.data.cmvn == "global":
            self.cmvn = GlobalCMVN.fit(self._features(utts, name))

    def normalize_all(self, feats: list[torch.Tensor], speakers: list[str]) -> list[torch.Tensor]:
        """``feats[i]`` (T_i, F), spoken by ``speakers[i]``, normalised as ``data.cmvn`` says."""
        if self.cfg.data.cmvn != "speaker":
            return [self.normalize(f) for f in feats]
        groups: dict[str, list[torch.Tensor]] = {}
        for f, spk in zip(feats, speakers):
            groups.setdefault(spk, []).append(f)
        stats = {spk: GlobalCMVN.fit(fs) for spk, fs in groups.items()}
        return [stats[spk](f) for f, spk in zip(feats, speakers)]

    def normalize(self, feats: torch.Tensor) -> torch.Tensor:
        """One utterance (T, F) -> (T, F); ``cmvn: speaker`` needs :meth:`normalize_all`."""
        mode = self.cfg.data.cmvn
        if mode == "speaker":
            raise ConfigError(f"{self.cfg.source}: key 'data.cmvn': 'speaker' needs the speaker's utterances")
        if mode == "utterance":
            return utterance_cmvn(feats)
        if mode == "global":
            if self.cmvn is None:
                raise ConfigError(f"{self.cfg.source}: key 'data.cmvn': global statistics are missing")
            return self.cmvn(feats)
        return feats

    def input_items(self, lines: list[str]) -> tuple[list[dict], list[int]]:
        """``seqkit predict`` input: one ``path`` or ``path start end`` (seconds) per line.

        Returns the normalised features (``{"feats": (T, F)}``) of the non-empty lines and
        their line indices.  A file that cannot be read is a :class:`DataError` naming the
        input line and the file.
        """
        feats, where = [], []
        for n, line in enumerate(lines):
            path, start, end = line.strip(), None, None
            if not path:
                continue
            parts = path.rsplit(maxsplit=2)
            if len(parts) == 3:
                try:
                    start, end = float(parts[1]), float(parts[2])
                    path = parts[0]
                except ValueError:  # a path with spaces, no segment
                    pass
            try:
                wave, _ = load_audio(path, self.cfg.data.sample_rate, start, end)
            except DataError as e:
                raise DataError(f"input line {n + 1}: {e}") from None
            feats.append(features(wave, self.feature_options))
            where.append(n)
        return [{"feats": f} for f in self.normalize_all(feats, ["input"] * len(feats))], where
