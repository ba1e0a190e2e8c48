"""Task registry: the ``task:`` key of a config names one of these.

A task owns its typed ``DataConfig`` / ``ModelConfig`` dataclasses and the glue that
turns data files into batches, builds the model from :mod:`seqkit.models`, evaluates
and predicts.  Adding a task is one module plus one line here.
"""

from __future__ import annotations

import importlib

from ..errors import ConfigError

TASKS = {
    "slot_filling": "seqkit.tasks.slot_filling:SlotFillingTask",
    "language_model": "seqkit.tasks.lm:LanguageModelTask",
    "text_classification": "seqkit.tasks.classification:TextClassificationTask",
    "translation": "seqkit.tasks.translation:TranslationTask",
    "asr": "seqkit.tasks.asr:ASRTask",
    "audio_word2vec": "seqkit.tasks.audio_word2vec:AudioWord2VecTask",
}


def get_task(name: str, where: str = "<config>"):
    if name not in TASKS:
        raise ConfigError(f"{where}: key 'task': unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    module, cls = TASKS[name].split(":")
    return getattr(importlib.import_module(module), cls)
