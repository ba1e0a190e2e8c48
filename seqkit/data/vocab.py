"""Token <-> id vocabularies.

A :class:`Vocab` holds its special symbols first (in the order given), then the
ordinary tokens.  It is saved as plain JSON (``to_dict`` / ``save``) so that it can
travel inside a checkpoint without pickling any class.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..errors import DataError

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
DEFAULT_SPECIALS: tuple[str, ...] = (PAD, UNK, BOS, EOS)


class Vocab:
    """A bidirectional token/id map.

    Ids ``0 .. len(specials) - 1`` are the specials in the given order; the
    remaining ids are ``tokens`` in order of first appearance (duplicates, and
    tokens equal to a special, are not repeated).

    :meth:`index` maps an unknown token to :attr:`unk_id` when ``UNK`` is among the
    specials and raises :class:`KeyError` otherwise.
    """

    def __init__(self, tokens: Sequence[str], specials: Sequence[str] = DEFAULT_SPECIALS):
        self.specials: list[str] = []
        self._itos: list[str] = []
        self._stoi: dict[str, int] = {}
        for tok in specials:
            if tok not in self._stoi:
                self.specials.append(tok)
                self._add(tok)
        for tok in tokens:
            if tok not in self._stoi:
                self._add(tok)

    def _add(self, tok: str) -> None:
        if not isinstance(tok, str):
            raise TypeError(f"vocabulary tokens must be str, got {type(tok).__name__}: {tok!r}")
        self._stoi[tok] = len(self._itos)
        self._itos.append(tok)

    @classmethod
    def build(
        cls,
        sequences: Iterable[Iterable[str]],
        min_freq: int = 1,
        max_size: int | None = None,
        specials: Sequence[str] = DEFAULT_SPECIALS,
    ) -> Vocab:
        """Count tokens and keep those seen at least ``min_freq`` times.

        Order: frequency descending, ties broken alphabetically, so the result is a
        deterministic function of the counts.  ``max_size`` limits the number of
        non-special tokens kept (specials are always kept).
        """
        if min_freq < 1:
            raise ValueError(f"min_freq must be >= 1, got {min_freq}")
        if max_size is not None and max_size < 0:
            raise ValueError(f"max_size must be >= 0, got {max_size}")
        counts: Counter[str] = Counter()
        for seq in sequences:
            counts.update(seq)
        special_set = set(specials)
        kept = [
            (tok, n) for tok, n in counts.items() if n >= min_freq and tok not in special_set
        ]
        kept.sort(key=lambda tn: (-tn[1], tn[0]))
        if max_size is not None:
            kept = kept[:max_size]
        return cls([tok for tok, _ in kept], specials=specials)

    # -- lookup ---------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._itos)

    def __contains__(self, tok: object) -> bool:
        return tok in self._stoi

    def __iter__(self):
        return iter(self._itos)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocab):
            return NotImplemented
        return self._itos == other._itos and self.specials == other.specials

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)}, specials={self.specials})"

    @property
    def tokens(self) -> list[str]:
        """All tokens, specials included, in id order (a copy)."""
        return list(self._itos)

    def index(self, token: str) -> int:
        """Id of ``token``; unknown tokens map to :attr:`unk_id` (KeyError without UNK)."""
        i = self._stoi.get(token)
        if i is not None:
            return i
        unk = self._stoi.get(UNK)
        if unk is None:
            raise KeyError(token)
        return unk

    def token(self, i: int) -> str:
        """Token with id ``i`` (IndexError when out of range)."""
        i = int(i)
        if i < 0 or i >= len(self._itos):
            raise IndexError(f"token id {i} out of range for a vocabulary of size {len(self)}")
        return self._itos[i]

    def _special_id(self, tok: str) -> int | None:
        return self._stoi[tok] if tok in self.specials else None

    @property
    def pad_id(self) -> int | None:
        return self._special_id(PAD)

    @property
    def unk_id(self) -> int | None:
        return self._special_id(UNK)

    @property
    def bos_id(self) -> int | None:
        return self._special_id(BOS)

    @property
    def eos_id(self) -> int | None:
        return self._special_id(EOS)

    # -- sequences ------------------------------------------------------------

    def encode(self, tokens: Sequence[str], add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Map tokens to ids, optionally framed by BOS/EOS (ValueError if absent)."""
        ids = [self.index(t) for t in tokens]
        if add_bos:
            if self.bos_id is None:
                raise ValueError(f"add_bos=True but {BOS!r} is not a special of this vocabulary")
            ids.insert(0, self.bos_id)
        if add_eos:
            if self.eos_id is None:
                raise ValueError(f"add_eos=True but {EOS!r} is not a special of this vocabulary")
            ids.append(self.eos_id)
        return ids

    def decode(self, ids: Sequence[int], strip_specials: bool = True) -> list[str]:
        """Map ids to tokens.

        With ``strip_specials`` decoding stops at the first EOS and the other
        specials (PAD, BOS, ...) are dropped -- except UNK, which is kept so that
        unknown words stay visible in the output.
        """
        out: list[str] = []
        eos = self.eos_id
        drop = {self._stoi[s] for s in self.specials if s != UNK}
        for i in ids:
            i = int(i)
            if strip_specials:
                if i == eos:
                    break
                if i in drop:
                    continue
            out.append(self.token(i))
        return out

    # -- persistence ----------------------------------------------------------

    def to_dict(self) -> dict:
        """``{"tokens": [... all tokens in id order ...], "specials": [...]}`` (str/list only)."""
        return {"tokens": list(self._itos), "specials": list(self.specials)}

    @classmethod
    def from_dict(cls, d: dict) -> Vocab:
        try:
            tokens, specials = d["tokens"], d["specials"]
        except (KeyError, TypeError) as e:
            raise DataError(f"not a vocabulary dict (need 'tokens' and 'specials'): {e}") from None
        if not all(
            isinstance(v, (list, tuple)) and all(isinstance(t, str) for t in v) for v in (tokens, specials)
        ):
            raise DataError("not a vocabulary dict: 'tokens' and 'specials' must be lists of strings")
        tokens, specials = list(tokens), list(specials)
        vocab = cls(tokens, specials)
        if vocab._itos != tokens:
            raise DataError(
                "vocabulary dict is inconsistent: the specials must come first and tokens must be unique"
            )
        return vocab

    def save(self, path: str | Path) -> None:
        """Write the vocabulary as UTF-8 JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        p = Path(path)
        if not p.is_file():
            raise DataError("no such file", p)
        try:
            # bytes, not read_text: text mode would count a lone "\r" as a line in e.lineno
            d = json.loads(p.read_bytes().decode("utf-8"))
        except UnicodeDecodeError as e:
            raise DataError(f"not valid UTF-8: {e.reason}", p) from None
        except json.JSONDecodeError as e:
            raise DataError(f"not valid JSON: {e.msg}", p, e.lineno) from None
        except (ValueError, RecursionError) as e:  # e.g. an integer of > 4300 digits, deep nesting
            raise DataError(f"not valid JSON: {e}", p) from None
        try:
            return cls.from_dict(d)
        except DataError as e:
            raise DataError(e.reason, p) from None
