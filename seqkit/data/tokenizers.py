"""Text tokenizers: whitespace words, characters, and SentencePiece subwords.

Every tokenizer has ``encode(text) -> list[str]``, ``decode(tokens) -> str`` and
``to_dict()`` / ``from_dict(d)``.  ``to_dict`` holds only str/int/bool/list/dict/bytes
values and a ``"kind"`` key, so a tokenizer can be stored inside a checkpoint and
rebuilt with :func:`tokenizer_from_dict` (SentencePiece stores its whole model
proto, so the checkpoint does not depend on a ``.model`` file on disk).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import sentencepiece as spm

from ..errors import DataError, SeqkitError


class WordTokenizer:
    """Split on any run of whitespace (spaces, tabs, trailing spaces); join with one space.

    ``split_punct=True`` also splits punctuation off words the way sacreBLEU's ``13a``
    tokenizer does for scoring ("bushes." -> "bushes", "."), keeping hyphens and apostrophes
    inside words ("hard-hat", "man's"); ``decode`` then re-attaches closing punctuation
    (",", ".", "!", "?", ";", ":", ")") to the word before it and "(" to the word after.
    """

    kind = "word"
    _PUNCT = re.compile(r"\w+(?:[-'’]\w+)*|[^\w\s]")
    _CLOSE = re.compile(r" ([,.!?;:)\]}])")
    _OPEN = re.compile(r"([(\[{]) ")

    def __init__(self, lowercase: bool = False, split_punct: bool = False):
        self.lowercase = lowercase
        self.split_punct = split_punct

    def encode(self, text: str) -> list[str]:
        if self.lowercase:
            text = text.lower()
        return self._PUNCT.findall(text) if self.split_punct else text.split()

    def decode(self, tokens: Sequence[str]) -> str:
        text = " ".join(tokens)
        if self.split_punct:
            text = self._OPEN.sub(r"\1", self._CLOSE.sub(r"\1", text))
        return text

    def to_dict(self) -> dict:
        return {"kind": self.kind, "lowercase": self.lowercase, "split_punct": self.split_punct}

    @classmethod
    def from_dict(cls, d: dict) -> WordTokenizer:
        return cls(lowercase=bool(d.get("lowercase", False)), split_punct=bool(d.get("split_punct", False)))

    def __repr__(self) -> str:
        return f"WordTokenizer(lowercase={self.lowercase}, split_punct={self.split_punct})"


class CharTokenizer:
    """One token per character; the space character becomes ``space`` (default "▁").

    ``decode`` maps ``space`` back to " " and concatenates, so
    ``decode(encode(s)) == s`` for any ``s`` that does not itself contain ``space``.
    """

    kind = "char"

    def __init__(self, space: str = "▁"):
        if not isinstance(space, str) or not space:
            raise ValueError("space symbol must be a non-empty string")
        self.space = space

    def encode(self, text: str) -> list[str]:
        sp = self.space
        return [sp if c == " " else c for c in text]

    def decode(self, tokens: Sequence[str]) -> str:
        sp = self.space
        return "".join(" " if t == sp else t for t in tokens)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "space": self.space}

    @classmethod
    def from_dict(cls, d: dict) -> CharTokenizer:
        return cls(space=d.get("space", "▁"))

    def __repr__(self) -> str:
        return f"CharTokenizer(space={self.space!r})"


class SentencePieceTokenizer:
    """A SentencePiece model (unigram or BPE); ``encode`` gives pieces, not ids.

    Build one with :meth:`train`, :meth:`load` (a ``.model`` file) or
    :meth:`from_dict`.  ``model_proto`` is the serialized model.
    """

    kind = "sentencepiece"

    def __init__(self, model_proto: bytes):
        self.model_proto = bytes(model_proto)
        if not self.model_proto:  # sentencepiece would make an unusable processor, failing later
            raise RuntimeError("empty model proto")
        self.sp = spm.SentencePieceProcessor(model_proto=self.model_proto)

    @classmethod
    def train(
        cls,
        texts: Iterable[str] | None = None,
        files: list[str] | None = None,
        *,
        model_prefix: str | Path,
        vocab_size: int,
        model_type: str = "unigram",
        character_coverage: float = 1.0,
        seed: int = 0,
        **extra,
    ) -> SentencePieceTokenizer:
        """Train a model on ``texts`` (an iterable of sentences) or ``files`` (one sentence a line).

        Writes ``{model_prefix}.model`` and ``.vocab``.  ``hard_vocab_limit=False``
        lets tiny corpora produce fewer pieces than ``vocab_size`` instead of failing.
        Determinism: the library's random generator is seeded with ``seed`` and input
        sentences are not shuffled/sampled unless ``extra`` asks for it, so the same
        corpus and options give the same model.  ``extra`` is passed to
        ``SentencePieceTrainer.train`` (e.g. ``input_sentence_size``, ``num_threads``).
        """
        if (texts is None) == (files is None):
            raise SeqkitError("SentencePieceTokenizer.train needs exactly one of texts= or files=")
        prefix = Path(model_prefix)
        prefix.parent.mkdir(parents=True, exist_ok=True)
        opts: dict = dict(
            model_prefix=str(prefix),
            vocab_size=int(vocab_size),
            model_type=model_type,
            character_coverage=character_coverage,
            hard_vocab_limit=False,
            shuffle_input_sentence=False,
            minloglevel=2,
        )
        opts.update(extra)
        if files is not None:
            for f in files:
                if not Path(f).is_file():
                    raise DataError("no such file", f)
            opts["input"] = ",".join(str(f) for f in files)
        else:
            opts["sentence_iterator"] = iter(texts)
        spm.set_random_generator_seed(int(seed))
        try:
            spm.SentencePieceTrainer.train(**opts)
        except RuntimeError as e:
            raise SeqkitError(f"sentencepiece training failed: {e}") from None
        return cls.load(f"{prefix}.model")

    @classmethod
    def load(cls, model_file: str | Path) -> SentencePieceTokenizer:
        p = Path(model_file)
        if not p.is_file():
            raise DataError("no such file", p)
        proto = p.read_bytes()
        try:
            return cls(proto)
        except RuntimeError as e:
            raise DataError(f"not a sentencepiece model: {e}", p) from None

    def encode(self, text: str) -> list[str]:
        return self.sp.encode(text, out_type=str)

    def decode(self, tokens: Sequence[str]) -> str:
        return self.sp.decode(list(tokens))

    def pieces(self) -> list[str]:
        """All pieces of the model in id order (includes its <unk>, <s>, </s>)."""
        return [self.sp.id_to_piece(i) for i in range(self.sp.get_piece_size())]

    def __len__(self) -> int:
        return self.sp.get_piece_size()

    def to_dict(self) -> dict:
        return {"kind": self.kind, "model_proto": self.model_proto}

    @classmethod
    def from_dict(cls, d: dict) -> SentencePieceTokenizer:
        return cls(d["model_proto"])

    def __repr__(self) -> str:
        return f"SentencePieceTokenizer(pieces={len(self)})"


Tokenizer = WordTokenizer | CharTokenizer | SentencePieceTokenizer

_KINDS = {
    "word": WordTokenizer,
    "char": CharTokenizer,
    "sentencepiece": SentencePieceTokenizer,
}


def build_tokenizer(kind: str, **kwargs) -> Tokenizer:
    """Make a tokenizer by name: ``word``, ``char`` or ``sentencepiece`` (needs ``model_file``)."""
    if kind not in _KINDS:
        raise SeqkitError(f"unknown tokenizer {kind!r}; valid kinds: {', '.join(sorted(_KINDS))}")
    if kind == "sentencepiece":
        model_file = kwargs.pop("model_file", None)
        if model_file is None:
            raise SeqkitError("tokenizer 'sentencepiece' needs model_file=PATH")
        if kwargs:
            raise SeqkitError(f"unexpected options for tokenizer 'sentencepiece': {sorted(kwargs)}")
        return SentencePieceTokenizer.load(model_file)
    try:
        return _KINDS[kind](**kwargs)
    except TypeError as e:
        raise SeqkitError(f"bad options for tokenizer {kind!r}: {e}") from None


def tokenizer_from_dict(d: dict) -> Tokenizer:
    """Rebuild a tokenizer saved with ``to_dict`` (dispatches on ``d["kind"]``)."""
    kind = d.get("kind") if isinstance(d, dict) else None
    if not isinstance(kind, str) or kind not in _KINDS:
        raise SeqkitError(f"unknown tokenizer kind {kind!r}; valid kinds: {', '.join(sorted(_KINDS))}")
    try:
        return _KINDS[kind].from_dict(d)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:  # e.g. a corrupt model_proto
        raise SeqkitError(f"bad {kind!r} tokenizer dict: {type(e).__name__}: {e}") from None
