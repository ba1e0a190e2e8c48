"""Audio glue shared by the speech tasks (``asr``, ``audio_word2vec``): manifests, cached
features, normalisation.  The task's ``DataConfig`` must have ``features``, ``sample_rate``,
``n_mels``, ``n_mfcc``, ``cmvn`` (``global`` / ``utterance`` / ``none``) and ``cache_dir``."""

from __future__ import annotations

import torch

from ..data.audio import FeatureCache, FeatureOptions, GlobalCMVN, utterance_cmvn
from ..data.manifest import Utterance, read_manifest
from ..errors import ConfigError
from .base import Task


class AudioTask(Task):
    """A :class:`Task` whose examples are manifest entries turned into (T, F) features."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.cmvn: GlobalCMVN | None = None  # global statistics (data.cmvn: global), saved in checkpoints

    @property
    def feature_options(self) -> FeatureOptions:
        d = self.cfg.data
        return FeatureOptions(kind=d.features, sample_rate=d.sample_rate, n_mels=d.n_mels, n_mfcc=d.n_mfcc)

    def _manifest(self, path: str, key: str) -> list[Utterance]:
        self.check_file(key, path)
        return read_manifest(path)

    def _features(self, utts: list[Utterance], name: str, speed: float = 1.0) -> list[torch.Tensor]:
        """(T_i, F) features of ``utts`` (from ``data.cache_dir`` when cached there)."""
        return FeatureCache(self.cfg.data.cache_dir).features(utts, self.feature_options, speed, name=name)

    def fit_cmvn(self, utts: list[Utterance], name: str) -> None:
        """With ``data.cmvn: global``: statistics of ``utts`` (the training set)."""
        if self.cfg.data.cmvn == "global":
            self.cmvn = GlobalCMVN.fit(self._features(utts, name))

    def normalize(self, feats: torch.Tensor) -> torch.Tensor:
        mode = self.cfg.data.cmvn
        if mode == "utterance":
            return utterance_cmvn(feats)
        if mode == "global":
            if self.cmvn is None:
                raise ConfigError(f"{self.cfg.source}: key 'data.cmvn': global statistics are missing")
            return self.cmvn(feats)
        return feats
