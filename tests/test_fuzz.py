"""Property-based (hypothesis) tests of everything that reads user input (issue 9, item 6).

The project rule under test: bad input gives a :class:`SeqkitError` (``DataError``: "path:line:
message") that names the file and, where there is one, a line that exists -- never another
exception type -- and nothing is dropped silently.  Round trips check that well-formed data
written with random unicode, random line endings (LF / CRLF) and unicode whitespace inside
lines reads back exactly, with the line numbers an editor shows (lines end at "\\n" only;
``str.splitlines()`` separators such as \\x0b \\x0c \\x1c-\\x1e \\x85 \\u2028 \\u2029 are
ordinary characters inside a line).

Covered: seqkit.textio, seqkit.data.readers, seqkit.data.manifest (read-only here),
seqkit.metrics.io, seqkit.data.vocab, seqkit.data.tokenizers, ``seqkit score`` (bleu, chrf,
wer, cer, f1, acc) and ``seqkit score ppl`` (the ARPA reader).  The whole file runs in about
20 s; ``SEQKIT_FUZZ_SCALE=20 pytest tests/test_fuzz.py`` fuzzes 20 times longer.
"""

from __future__ import annotations

import json
import math
import os
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from seqkit.cli.main import main
from seqkit.data.manifest import Utterance, read_manifest, write_manifest
from seqkit.data.readers import read_lm_stream, read_parallel, read_tagging, read_tsv_classification
from seqkit.data.tokenizers import (
    CharTokenizer,
    SentencePieceTokenizer,
    WordTokenizer,
    tokenizer_from_dict,
)
from seqkit.data.vocab import BOS, EOS, PAD, UNK, Vocab
from seqkit.errors import DataError, SeqkitError, Skips
from seqkit.metrics.io import read_tag_lines, read_text_lines
from seqkit.textio import decode_lines, read_lines

# SEQKIT_FUZZ_SCALE=20 multiplies every example budget for a longer fuzzing run.
SCALE = float(os.environ.get("SEQKIT_FUZZ_SCALE", "1"))


def examples(n: int) -> int:
    return max(1, round(n * SCALE))


FUZZ = settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

BOM = b"\xef\xbb\xbf"

# ------------------------------------------------------------------ strategies

# Every character Python counts as whitespace except the two line-ending ones: str.split()
# splits tokens on all of them, and several are str.splitlines() separators.
INLINE_SPACE = [c for c in map(chr, range(0x3001)) if c.isspace() and c not in "\r\n"]
SPLITLINES_ONLY = ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]

TRICKY = [
    "\n", "\r", "\r\n", "\n\n", "\t", " ", "  ", "\x00", "\ufeff", "\u200b", "é", "e\u0301",
    "中", "😀", "a", "Z", "0", "B-x", "I-x", "O", "B-", "-", "{", "}", "[", '"', ":", ",",
    "1.5", "NaN", "sentence", "label", "\tlabel", "<unk>", "</s>", "▁", *SPLITLINES_ONLY,
    "\xa0", "\u3000", "\x1f",
]
BAD_BYTES = [
    b"\xff", b"\xfe", b"\x80", b"\xc3", b"\xc0\xaf", b"\xe4\xb8", b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80", b"\xf0\x9f\x98", BOM, b"\r", b"\n",
]

piece_bytes = st.one_of(
    st.sampled_from(TRICKY).map(str.encode),
    st.sampled_from(BAD_BYTES),
    st.text(max_size=4).map(str.encode),
)
# Arbitrary file contents: raw bytes, or a mix of tricky text, unicode and invalid UTF-8.
nasty_bytes = st.one_of(
    st.binary(max_size=40),
    st.lists(piece_bytes, max_size=30).map(b"".join),
)
# Well-formed UTF-8 text made of the same tricky pieces (for readers that need to get past
# the decoding step to be exercised further).
nasty_text = st.lists(
    st.one_of(st.sampled_from(TRICKY), st.text(max_size=4)), max_size=30
).map("".join)

# One line's content: any unicode (no surrogates) without "\n"; the reader removes one
# trailing "\r", so a line must not end with one to read back unchanged.
line_text = st.text(st.characters(codec="utf-8", exclude_characters="\n"), max_size=12).filter(
    lambda s: not s.endswith("\r")
)
newline = st.sampled_from(["\n", "\r\n"])
# A token: non-empty, no whitespace of any kind (so str.split() keeps it whole).
token = st.text(st.characters(codec="utf-8"), min_size=1, max_size=6).filter(
    lambda t: t.split() == [t]
)
space_run = st.lists(st.sampled_from(INLINE_SPACE), min_size=1, max_size=3).map("".join)


@st.composite
def spaced(draw, tokens):
    """``tokens`` joined by random runs of unicode whitespace, with optional padding."""
    pad = st.one_of(st.just(""), space_run)
    out = draw(pad)
    for i, t in enumerate(tokens):
        out += (draw(space_run) if i else "") + t
    return out + draw(pad)


def encode_file(lines: list[str], endings: list[str], final_newline: bool = True) -> bytes:
    """``lines`` joined with their own line endings (the last one optional)."""
    text = "".join(ln + e for ln, e in zip(lines, endings))
    if lines and not final_newline:
        text = text[: -len(endings[len(lines) - 1])]
    return text.encode("utf-8")


@st.composite
def file_lines(draw, lines, final_newline=True):
    """File bytes for ``lines`` with a random LF/CRLF ending per line and an optional BOM."""
    endings = draw(st.lists(newline, min_size=len(lines), max_size=len(lines)))
    data = encode_file(lines, endings, final_newline=final_newline)
    if draw(st.booleans()) or (lines and lines[0].startswith("\ufeff")):
        data = BOM + data  # the reader drops exactly one leading BOM
    return data


def editor_lines(data: bytes) -> int:
    """Lines an editor shows for ``data`` (lines end at "\\n"; a final "\\n" ends the last one)."""
    if data.startswith(BOM):
        data = data[3:]
    if not data:
        return 0
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)


def first_bad_line(data: bytes) -> int | None:
    """1-based line holding the first byte that is not UTF-8, or None (an oracle that decodes
    each "\\n"-separated chunk on its own; "\\n" is never part of a multi-byte sequence)."""
    if data.startswith(BOM):
        data = data[3:]
    for i, chunk in enumerate(data.split(b"\n")):
        try:
            chunk.decode("utf-8")
        except UnicodeDecodeError:
            return i + 1
    return None


def check_error(err: BaseException, files: dict[Path, bytes]) -> None:
    """``err`` obeys the project rule: a SeqkitError naming one of ``files`` (and, for a
    DataError with a line, a line of that file or the one just past its end)."""
    assert isinstance(err, SeqkitError), f"{type(err).__name__}: {err}"
    msg = str(err)
    assert any(str(p) in msg for p in files), msg
    if isinstance(err, DataError) and err.line is not None:
        assert err.path in {str(p) for p in files}, msg
        assert msg.startswith(f"{err.path}:{err.line}: "), msg
        assert 1 <= err.line <= editor_lines(files[Path(err.path)]) + 1, msg


def call(fn, *args, **kwargs):
    """``(result, None)`` or ``(None, exception)``; any exception type is caught for check_error."""
    try:
        return fn(*args, **kwargs), None
    except Exception as e:  # noqa: BLE001 - the test classifies it
        return None, e


def write_files(tmp_path: Path, **contents: bytes) -> dict[Path, bytes]:
    out = {}
    for name, data in contents.items():
        p = tmp_path / name.replace("_", ".")
        p.write_bytes(data)
        out[p] = data
    return out


# ------------------------------------------------------------------ textio


@given(data=nasty_bytes)
@example(data=b"a\x0bb\x0cc\x1cd\x1de\x1ef\xc2\x85g\xe2\x80\xa8h\xe2\x80\xa9i\n")
@example(data=b"one\rtwo\r\nthree\n\r\n")
@example(data=BOM + BOM + b"x")
@example(data=b"ok\nok\n\xe4\xb8\nlast")
@settings(max_examples=examples(200), deadline=None)
def test_decode_lines_arbitrary_bytes(data):
    """Lines or a DataError on the line of the first bad byte; as many lines as an editor shows."""
    bad = first_bad_line(data)
    try:
        lines = decode_lines(data, "in.txt")
    except DataError as e:
        assert bad is not None and e.path == "in.txt" and e.line == bad, (e, bad)
        assert str(e).startswith(f"in.txt:{bad}: not valid UTF-8")
        return
    assert bad is None
    assert len(lines) == editor_lines(data)
    body = data[3:] if data.startswith(BOM) else data
    chunks = body.decode("utf-8").split("\n")
    for ln, raw in zip(lines, chunks):  # each line is its raw chunk less one trailing "\r"
        assert "\n" not in ln and raw in (ln, ln + "\r")


@given(lines=st.lists(line_text, max_size=8), data=st.data())
@example(lines=["a\u2028b", "\x85", "\x0c\x0b", "\x1c\x1d\x1e", "c\u2029"], data=None)
@settings(max_examples=examples(150), deadline=None)
def test_decode_lines_round_trip(lines, data):
    """Any lines written with LF or CRLF endings (mixed), with or without a BOM and a final
    newline, read back exactly; splitlines() separators inside lines are kept."""
    if data is None:  # the explicit example: LF, no BOM
        blob = encode_file(lines, ["\n"] * len(lines))
    else:
        final = data.draw(st.booleans()) or not lines or lines[-1] == ""
        blob = data.draw(file_lines(lines, final_newline=final))
    assert decode_lines(blob, "x") == lines
    assert editor_lines(blob) == len(lines)


@given(data=nasty_bytes)
@FUZZ
def test_read_lines_and_metrics_io_arbitrary_bytes(tmp_path, data):
    files = write_files(tmp_path, in_txt=data)
    (p,) = files
    lines, err = call(read_lines, p)
    if err is not None:
        check_error(err, files)
    else:
        assert lines == decode_lines(data, p)
    text, err = call(read_text_lines, p)
    if err is not None:
        check_error(err, files)
        if lines is not None:  # read_lines succeeded: the only extra error is an empty file
            assert lines == [] and str(err) == f"{p}: file is empty"
    else:
        assert text == lines and text
        assert read_tag_lines(p) == [ln.split() for ln in lines]


def test_read_lines_missing_and_directory(tmp_path):
    for p, why in ((tmp_path / "missing.txt", "no such file"), (tmp_path, "is a directory")):
        for fn in (read_lines, read_text_lines, read_lm_stream):
            with pytest.raises(DataError) as err:
                fn(p)
            assert str(err.value).startswith(f"{p}: {why}")


# ------------------------------------------------------------------ readers: arbitrary bytes


@given(a=nasty_bytes, b=nasty_bytes, c=nasty_bytes)
@example(a=b"x y\n\nz\n", b=b"O O\n\nO\n", c=b"i\n\nj\n")
@example(a=b"a\xc2\x85b\n", b=b"O O\n", c=b"i\n")
@example(a=b"a\xe2\x80\xa8b\nc\n", b=b"O\nO\n", c=b"i\nj")
@FUZZ
def test_read_tagging_arbitrary_bytes(tmp_path, a, b, c):
    files = write_files(tmp_path, seq_in=a, seq_out=b, label=c)
    pa, pb, pc = files
    for args in ((pa,), (pa, pb), (pa, None, pc), (pa, pb, pc)):
        used = {p: files[p] for p in args if p is not None}
        for skips in (None, Skips()):
            got, err = call(read_tagging, *args, skips=skips)
            if err is not None:
                check_error(err, used)
                continue
            n = editor_lines(a)
            assert all(editor_lines(files[p]) == n for p in used)  # line-aligned
            lines_seen = [ex.line for ex in got] + [ln for _, ln, _ in (skips.items if skips else [])]
            assert sorted(lines_seen) == list(range(1, n + 1))  # nothing dropped silently
            for ex in got:
                assert ex.tokens and all(t.split() == [t] for t in ex.tokens)
                assert ex.tags is None or len(ex.tags) == len(ex.tokens)


@given(data=nasty_bytes, header=st.booleans(), with_header_line=st.booleans())
@example(data=b"a b\tpos\n\t\n", header=False, with_header_line=False)
@example(data=b"a\x0cb\t1\r\nc\x1c\t0\n", header=True, with_header_line=True)
@FUZZ
def test_read_tsv_classification_arbitrary_bytes(tmp_path, data, header, with_header_line):
    if with_header_line:
        data = b"sentence\tlabel\n" + data
    files = write_files(tmp_path, in_tsv=data)
    (p,) = files
    for skips in (None, Skips()):
        got, err = call(read_tsv_classification, p, header=header, skips=skips)
        if err is not None:
            check_error(err, files)
            continue
        first = 2 if header else 1
        seen = [ln for _, _, ln in got] + [ln for _, ln, _ in (skips.items if skips else [])]
        assert sorted(seen) == list(range(first, editor_lines(data) + 1))
        assert all(text and lab and text == text.strip() and lab == lab.strip() for text, lab, _ in got)


@given(data=nasty_bytes, add_eos=st.booleans())
@FUZZ
def test_read_lm_stream_arbitrary_bytes(tmp_path, data, add_eos):
    files = write_files(tmp_path, in_txt=data)
    (p,) = files
    got, err = call(read_lm_stream, p, add_eos=add_eos)
    if err is not None:
        check_error(err, files)
        return
    words = [ln.split() for ln in read_lines(p)]
    assert len(got) == sum(len(w) + (1 if w and add_eos else 0) for w in words)


@given(a=nasty_bytes, b=nasty_bytes)
@example(a=b"x\n\n", b=b"y\nz\n")
@example(a=b"x\x1cy\n", b=b"u\n")
@FUZZ
def test_read_parallel_arbitrary_bytes(tmp_path, a, b):
    files = write_files(tmp_path, src_txt=a, tgt_txt=b)
    pa, pb = files
    for skips in (None, Skips()):
        got, err = call(read_parallel, pa, pb, skips=skips)
        if err is not None:
            check_error(err, files)
            continue
        n = editor_lines(a)
        assert editor_lines(b) == n
        seen = [ln for _, _, ln in got] + [ln for _, ln, _ in (skips.items if skips else [])]
        assert sorted(seen) == list(range(1, n + 1))


# ------------------------------------------------------------------ readers: round trips

bio_tag = st.one_of(
    st.just("O"), st.builds(lambda p, t: p + t, st.sampled_from(["B-", "I-"]), token)
)


@st.composite
def tagging_rows(draw):
    """Rows of (tokens, tags, intent), some None (a line empty in every file)."""
    rows = []
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.integers(0, 5)) == 0:
            rows.append(None)
            continue
        toks = draw(st.lists(token, min_size=1, max_size=5))
        tags = draw(st.lists(bio_tag, min_size=len(toks), max_size=len(toks)))
        rows.append((toks, tags, draw(token)))
    return rows


@given(rows=tagging_rows(), data=st.data())
@FUZZ
def test_read_tagging_round_trip(tmp_path, rows, data):
    """Tokens, tags and intents come back unchanged on the right line whatever the whitespace
    (unicode spaces, \\x85, \\u2028, ...) between them and the line endings of each file."""
    cols = [[], [], []]
    for row in rows:
        for k in range(3):
            if row is None:
                cols[k].append(data.draw(st.sampled_from(["", " ", "\t", "\u3000"])))
            elif k < 2:
                cols[k].append(data.draw(spaced(row[k])))
            else:
                cols[k].append(data.draw(spaced([row[2]])))
    blobs = {name: data.draw(file_lines(col)) for name, col in zip(("seq_in", "seq_out", "label"), cols)}
    files = write_files(tmp_path, **blobs)
    skips = Skips()
    got = read_tagging(*files, skips=skips)
    want = [(r[0], r[1], r[2], i + 1) for i, r in enumerate(rows) if r is not None]
    assert [(ex.tokens, ex.tags, ex.intent, ex.line) for ex in got] == want
    assert [ln for _, ln, _ in skips.items] == [i + 1 for i, r in enumerate(rows) if r is None]
    if any(r is None for r in rows):
        with pytest.raises(DataError, match="empty line"):
            read_tagging(*files)


@given(
    rows=st.lists(st.tuples(st.lists(token, min_size=1, max_size=4), token), max_size=6),
    order=st.permutations(["sentence", "label", "idx"]),
    data=st.data(),
)
@FUZZ
def test_read_tsv_classification_round_trip(tmp_path, rows, order, data):
    lines = ["\t".join(order)]
    for toks, lab in rows:
        cells = {"sentence": " ".join(toks), "label": lab, "idx": data.draw(line_text.filter(lambda s: "\t" not in s))}
        lines.append("\t".join(cells[c] for c in order))
    files = write_files(tmp_path, in_tsv=data.draw(file_lines(lines)))
    got = read_tsv_classification(*files)
    assert got == [(" ".join(toks), lab, i + 2) for i, (toks, lab) in enumerate(rows)]


@given(
    pairs=st.lists(
        st.one_of(st.none(), st.tuples(st.lists(token, min_size=1, max_size=4), st.lists(token, min_size=1, max_size=4))),
        max_size=6,
    ),
    data=st.data(),
)
@FUZZ
def test_read_parallel_round_trip(tmp_path, pairs, data):
    src = [data.draw(spaced(p[0])) if p else "" for p in pairs]
    tgt = [data.draw(spaced(p[1])) if p else data.draw(st.sampled_from(["", "x"])) for p in pairs]
    files = write_files(tmp_path, src_txt=data.draw(file_lines(src)), tgt_txt=data.draw(file_lines(tgt)))
    skips = Skips()
    got = read_parallel(*files, skips=skips)
    want = [(s.strip(), t.strip(), i + 1) for i, (s, t, p) in enumerate(zip(src, tgt, pairs)) if p]
    assert got == want
    assert [ln for _, ln, _ in skips.items] == [i + 1 for i, p in enumerate(pairs) if not p]
    # line-count mismatch: one extra line in the target is reported on that line
    (ps, pt) = files
    pt.write_bytes(pt.read_bytes() + b"extra\n")
    with pytest.raises(DataError) as err:
        read_parallel(ps, pt)
    assert err.value.path == str(pt) and err.value.line == len(pairs) + 1


@given(sents=st.lists(st.lists(token, max_size=4), max_size=6), data=st.data())
@FUZZ
def test_read_lm_stream_round_trip(tmp_path, sents, data):
    files = write_files(tmp_path, in_txt=data.draw(file_lines([data.draw(spaced(s)) for s in sents])))
    want = [t for s in sents if s for t in [*s, EOS]]
    assert read_lm_stream(*files) == want


# ------------------------------------------------------------------ manifest (read only)

json_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True), st.text(max_size=4)
)
json_value = st.recursive(
    json_scalar | st.sampled_from([[], {}]),
    lambda v: st.lists(v, min_size=1, max_size=2) | st.dictionaries(st.text(max_size=3), v, min_size=1, max_size=2),
    max_leaves=4,
)
good_fields = {
    "id": st.text(min_size=1, max_size=4),
    "path": st.text(string.ascii_letters, min_size=1, max_size=4).map(lambda s: s + ".wav"),
    "duration": st.integers(1, 10**5).map(lambda k: k / 1000),
    "text": token,
    "speaker": st.text(max_size=4),
}


@st.composite
def manifest_line(draw):
    """A JSON object with each required key present and well-typed, or not; start/end maybe."""
    obj = {}
    for key, good in good_fields.items():
        choice = draw(st.integers(0, 9))
        if choice == 0:
            continue
        obj[key] = draw(json_value) if choice == 1 else draw(good)
    if draw(st.booleans()):  # numbers or null only: other types are a known bug (below)
        obj["start"] = draw(st.one_of(st.none(), st.integers(-1, 3), st.floats(0, 10)))
        obj["end"] = draw(st.one_of(st.none(), st.integers(-1, 3), st.floats(0, 20)))
    text = json.dumps(obj, ensure_ascii=draw(st.booleans()))
    return text if draw(st.integers(0, 5)) else text[: draw(st.integers(0, len(text)))]


valid_manifest_text = st.lists(st.one_of(manifest_line(), nasty_text), max_size=4).map(
    lambda lines: "".join(ln + "\n" for ln in lines)
)


def _manifest_case(tmp_path, data: bytes):
    files = write_files(tmp_path, m_jsonl=data)
    (p,) = files
    got, err = call(read_manifest, p)
    if err is not None:
        check_error(err, files)
    else:
        assert len(got) == editor_lines(data)


@given(data=st.one_of(valid_manifest_text.map(str.encode), nasty_bytes))
@FUZZ
def test_read_manifest_arbitrary_lines(tmp_path, data):
    """JSON lines with random keys, types and truncations, or arbitrary bytes: utterances
    (one per line) or a DataError naming the file and line."""
    _manifest_case(tmp_path, data)


_GOOD = '{"id": "u", "path": "a.wav", "duration": 1.0, "text": "hi", "speaker": "s"'
# Found by fuzzing and fixed in manifest.py by cd07406 (it now reads through seqkit.textio).
MANIFEST_FIXED = {
    "invalid UTF-8 (was UnicodeDecodeError)": b"\xff\n",
    "a BOM (was rejected as invalid JSON)": BOM + (_GOOD + "}\n").encode(),
    # text mode also ended lines at a lone "\r", so line numbers differed from an editor's
    # (and seqkit.textio's): this error was reported on line 2
    "a lone CR (was a line break)": (_GOOD + "}\r{broken\n").encode(),
    # and fixed in manifest.py after the fuzzing report
    "start of type str (was TypeError)": (_GOOD + ', "start": "0", "end": 1}\n').encode(),
    "deep JSON nesting (was RecursionError)": b"[" * 100_000 + b"\n",
    "huge integer literal (was ValueError)": (_GOOD.replace("1.0", "1" + "0" * 5000) + "}\n").encode(),
    "duration NaN (was accepted)": (_GOOD.replace("1.0", "NaN") + "}\n").encode(),
    "end Infinity (was accepted)": (_GOOD + ', "start": 0, "end": Infinity}\n').encode(),
}


def _manifest_regression(tmp_path, data: bytes):
    p = tmp_path / "m.jsonl"
    p.write_bytes(data)
    if data.startswith(BOM):
        assert len(read_manifest(p)) == 1  # every other reader ignores a leading BOM
        return
    with pytest.raises(DataError) as err:
        read_manifest(p)
    assert str(err.value).startswith(f"{p}:1: ")


@pytest.mark.parametrize("case", sorted(MANIFEST_FIXED))
def test_read_manifest_fixed_bugs(tmp_path, case):
    _manifest_regression(tmp_path, MANIFEST_FIXED[case])


@given(
    utts=st.lists(
        st.builds(
            Utterance,
            id=st.text(min_size=1, max_size=5),
            path=good_fields["path"],
            duration=good_fields["duration"],
            text=st.text(max_size=6).filter(str.strip),
            speaker=st.text(max_size=4),
            extra=st.dictionaries(st.sampled_from(["word", "source"]), st.text(max_size=4), max_size=2),
        ),
        max_size=5,
        unique_by=lambda u: u.id,
    ),
    segments=st.lists(st.tuples(st.integers(0, 999), st.integers(1, 999)), min_size=5, max_size=5),
)
@FUZZ
def test_manifest_round_trip(tmp_path, utts, segments):
    """write_manifest then read_manifest gives the utterances back (text may hold \\u2028,
    \\x85, \\r, ...: JSON escapes or keeps them inside the one line)."""
    for u, (s, length) in zip(utts, segments):
        if s % 2:
            u.start, u.end = s / 100, (s + length) / 100
    p = tmp_path / "m.jsonl"
    assert write_manifest(p, utts) == len(utts)
    got = read_manifest(p)
    assert [(g.id, g.path, g.duration, g.text, g.speaker, g.start, g.end, g.extra) for g in got] == [
        (u.id, str(tmp_path / u.path), u.duration, u.text, u.speaker, u.start, u.end, u.extra)
        for u in utts
    ]


# ------------------------------------------------------------------ vocab

any_token = st.text(st.characters(codec="utf-8"), max_size=5)


@given(
    seqs=st.lists(st.lists(any_token, max_size=6), max_size=6),
    probe=st.lists(any_token, max_size=8),
    min_freq=st.integers(1, 3),
    max_size=st.none() | st.integers(0, 10),
)
@FUZZ
def test_vocab_ids_in_range_unknown_is_unk_and_dict_round_trip(tmp_path, seqs, probe, min_freq, max_size):
    vocab = Vocab.build(seqs, min_freq=min_freq, max_size=max_size)
    assert vocab.tokens[:4] == [PAD, UNK, BOS, EOS]
    ids = vocab.encode(probe, add_bos=True, add_eos=True)
    assert all(0 <= i < len(vocab) for i in ids)
    for tok, i in zip(probe, ids[1:-1]):
        assert i == (vocab.index(tok) if tok in vocab else vocab.unk_id)
        assert vocab.token(i) == (tok if tok in vocab else UNK)
    known = [t for t in probe if t in vocab and t not in vocab.specials]
    assert vocab.decode(vocab.encode(known)) == known
    assert vocab.decode(vocab.encode(probe), strip_specials=False) == [
        t if t in vocab else UNK for t in probe
    ]
    assert Vocab.from_dict(json.loads(json.dumps(vocab.to_dict()))) == vocab
    vocab.save(tmp_path / "v.json")
    assert Vocab.load(tmp_path / "v.json") == vocab


@given(data=st.one_of(nasty_bytes, st.builds(json.dumps, json_value).map(str.encode)))
@example(data=b'{"tokens": [1], "specials": []}')
@example(data=b'{"tokens": [null, "a"], "specials": [null]}')
@example(data=b"[" * 100_000)
@example(data=b'{"tokens": [' + b"1" * 5000 + b'], "specials": []}')
@example(data=b"\r\r")  # was reported on line 3 (text mode turned each "\r" into a line end)
@FUZZ
def test_vocab_load_arbitrary_bytes(tmp_path, data):
    files = write_files(tmp_path, v_json=data)
    (p,) = files
    got, err = call(Vocab.load, p)
    if err is not None:
        check_error(err, files)
    else:
        assert isinstance(got, Vocab) and all(isinstance(t, str) for t in got.tokens)


# ------------------------------------------------------------------ tokenizers


@given(text=nasty_text, lowercase=st.booleans())
@example(text="a\u2028b\x85c\x1cd", lowercase=False)
@FUZZ
def test_word_tokenizer(text, lowercase):
    tok = WordTokenizer(lowercase=lowercase)
    toks = tok.encode(text)
    assert toks == (text.lower() if lowercase else text).split()
    assert tok.decode(toks) == " ".join(toks)
    assert WordTokenizer().encode(tok.decode(toks)) == toks  # decode(encode) re-encodes the same


@given(text=nasty_text, lowercase=st.booleans())
@example(text="bushes. (hard-hat) man's", lowercase=False)
@FUZZ
def test_word_tokenizer_split_punct_is_stable(text, lowercase):
    tok = WordTokenizer(lowercase=lowercase, split_punct=True)
    toks = tok.encode(text)
    assert all(t and t.split() == [t] for t in toks)
    assert WordTokenizer(split_punct=True).encode(tok.decode(toks)) == toks


@given(text=st.text(st.characters(codec="utf-8"), max_size=20), space=st.sampled_from(["▁", "_", "<sp>"]))
@FUZZ
def test_char_tokenizer_round_trip(text, space):
    tok = CharTokenizer(space=space)
    chars = tok.encode(text)
    assert len(chars) == len(text)
    if space not in text:
        assert tok.decode(chars) == text


@given(train=st.lists(st.text(max_size=8), max_size=5), probe=st.text(max_size=12))
@example(train=["▁"], probe="▁")  # "▁" in the text decodes as a space (documented)
@FUZZ
def test_char_tokenizer_with_vocab_unknowns_are_unk(train, probe):
    tok = CharTokenizer()
    vocab = Vocab.build([tok.encode(t) for t in train])
    ids = vocab.encode(tok.encode(probe))
    assert all(0 <= i < len(vocab) for i in ids)
    seen = {c for t in train for c in tok.encode(t)}
    assert [i == vocab.unk_id for i in ids] == [c not in seen for c in tok.encode(probe)]
    if all(c in seen for c in tok.encode(probe)) and tok.space not in probe:
        assert tok.decode(vocab.decode(ids)) == probe


SP_ALPHABET = "abcdefghé中"
sp_word = st.text(SP_ALPHABET, min_size=1, max_size=6)


@pytest.fixture(scope="module")
def sp_tok(tmp_path_factory):
    import random

    rng = random.Random(0)
    texts = [" ".join(SP_ALPHABET)] + [
        " ".join("".join(rng.choice(SP_ALPHABET) for _ in range(rng.randint(1, 6)))
                 for _ in range(rng.randint(2, 8)))
        for _ in range(150)
    ]
    return SentencePieceTokenizer.train(texts, model_prefix=tmp_path_factory.mktemp("sp") / "m", vocab_size=40)


@given(words=st.lists(sp_word, min_size=1, max_size=6))
@FUZZ
def test_sentencepiece_round_trip_in_vocabulary(sp_tok, words):
    text = " ".join(words)
    pieces = sp_tok.encode(text)
    assert sp_tok.decode(pieces) == text
    vocab = Vocab.build([sp_tok.pieces()])
    assert UNK not in [vocab.token(i) for i in vocab.encode(pieces)]
    assert tokenizer_from_dict(sp_tok.to_dict()).encode(text) == pieces


@given(text=st.one_of(nasty_text, st.text(st.characters(codec="utf-8"), max_size=15)))
@example(text="\x00 a \u2028 b\x85")
@example(text="<unk>")  # a run of unknown characters is one piece spelling that run
@example(text="</s> <pad>")
@FUZZ
def test_sentencepiece_unknowns_never_raise(sp_tok, text):
    pieces = sp_tok.encode(text)
    assert all(isinstance(p, str) and p for p in pieces)
    assert isinstance(sp_tok.decode(pieces), str)
    known = set(sp_tok.pieces())
    vocab = Vocab.build([sp_tok.pieces()])
    ids = vocab.encode(pieces)
    assert all(0 <= i < len(vocab) for i in ids)
    for p, i in zip(pieces, ids):
        if p in vocab.specials:  # the piece spells a special's name (see the report on issue 9)
            assert i == vocab.index(p)
        else:
            assert (i == vocab.unk_id) == (p not in known), (p, i)


@given(
    kind=st.sampled_from(["word", "char"]),
    lowercase=st.booleans(),
    split_punct=st.booleans(),
    space=st.sampled_from(["▁", "|"]),
    text=nasty_text,
)
@FUZZ
def test_tokenizer_dict_round_trip(kind, lowercase, split_punct, space, text):
    tok = WordTokenizer(lowercase, split_punct) if kind == "word" else CharTokenizer(space)
    again = tokenizer_from_dict(json.loads(json.dumps(tok.to_dict())))
    assert type(again) is type(tok) and again.to_dict() == tok.to_dict()
    assert again.encode(text) == tok.encode(text)


@given(
    d=st.one_of(
        json_value,
        st.fixed_dictionaries(
            {"kind": st.one_of(st.sampled_from(["word", "char", "sentencepiece"]), json_value)},
            optional={
                "lowercase": json_value,
                "split_punct": json_value,
                "space": st.one_of(st.sampled_from(["▁", ""]), json_value),
                "model_proto": st.one_of(st.binary(max_size=20), json_value),
            },
        ),
    )
)
@example(d={"kind": ["word"]})
@example(d={"kind": "char", "space": ""})
@example(d={"kind": "char", "space": 5})
@example(d={"kind": "sentencepiece"})
@example(d={"kind": "sentencepiece", "model_proto": b"junk"})
@example(d={"kind": "sentencepiece", "model_proto": b""})  # was: RuntimeError on first encode
@FUZZ
def test_tokenizer_from_bad_dict(d):
    """A corrupt tokenizer dict (e.g. from a damaged checkpoint) is a SeqkitError, or gives a
    tokenizer that works."""
    tok, err = call(tokenizer_from_dict, d)
    if err is not None:
        assert isinstance(err, SeqkitError), f"{type(err).__name__}: {err}"
        assert "tokenizer" in str(err)
    else:
        assert all(isinstance(t, str) for t in tok.encode("a b é"))


def test_sentencepiece_load_empty_or_corrupt_model_file(tmp_path):
    """An empty .model file was accepted and crashed with RuntimeError on the first encode."""
    for data in (b"", b"not a model"):
        p = tmp_path / "m.model"
        p.write_bytes(data)
        with pytest.raises(DataError) as err:
            SentencePieceTokenizer.load(p)
        assert str(err.value).startswith(f"{p}: not a sentencepiece model")


# ------------------------------------------------------------------ seqkit score

METRICS = ["bleu", "chrf", "wer", "cer", "f1", "acc"]
RANGE = {"bleu": (0, 100), "chrf": (0, 100), "wer": (0, math.inf), "cer": (0, math.inf),
         "f1": (0, 1), "acc": (0, 1)}
PERFECT = {"bleu": 100.0, "chrf": 100.0, "wer": 0.0, "cer": 0.0, "f1": 1.0, "acc": 1.0}


def score(capsys, metric: str, ref: Path, hyp: Path) -> tuple[int, dict | None, str]:
    """Run ``seqkit score`` in-process; (return code, JSON result or None, stderr)."""
    capsys.readouterr()
    rc = main(["score", metric, "--ref", str(ref), "--hyp", str(hyp), "--json"])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    if rc == 0:
        assert len(out.splitlines()) == 1
        return rc, json.loads(out), err
    assert rc == 2 and out == "" and err.startswith("seqkit: error: "), (rc, out, err)
    return rc, None, err


@st.composite
def score_inputs(draw, metric, n=None):
    """A list of well-formed lines for ``metric`` (tags for f1)."""
    n = draw(st.integers(1, 5)) if n is None else n
    if metric == "f1":
        return [" ".join(draw(st.lists(bio_tag, max_size=4))) for _ in range(n)]
    return [draw(spaced(draw(st.lists(token, max_size=5)))) for _ in range(n)]


@given(metric=st.sampled_from(METRICS), data=st.data())
@FUZZ
def test_score_random_valid_files(tmp_path, capsys, metric, data):
    refs = data.draw(score_inputs(metric))
    if metric == "f1":  # the hypothesis needs as many tags as the reference on each line
        hyps = [" ".join(data.draw(st.lists(bio_tag, min_size=len(r.split()), max_size=len(r.split()))))
                for r in refs]
    else:
        hyps = data.draw(score_inputs(metric, len(refs)))
    files = write_files(tmp_path, ref_txt=data.draw(file_lines(refs)), hyp_txt=data.draw(file_lines(hyps)))
    rc, result, err = score(capsys, metric, *files)
    if metric in ("wer", "cer") and not any(r.strip() for r in refs):
        assert rc == 2 and "every reference line is empty" in err and str(tmp_path / "ref.txt") in err
        return
    assert rc == 0, err
    lo, hi = RANGE[metric]
    assert lo <= result["score"] <= hi + 1e-9
    assert result.get("sentences", result.get("total")) == len(refs)


@given(metric=st.sampled_from(METRICS), data=st.data())
@FUZZ
def test_score_identical_files_give_perfect_score(tmp_path, capsys, metric, data):
    if metric == "f1":  # at least one slot, or F1 is 0 by definition
        lines = data.draw(st.lists(st.lists(bio_tag, max_size=4), min_size=1, max_size=4))
        lines[0].append("B-" + data.draw(token))
        lines = [" ".join(t) for t in lines]
    elif metric == "bleu":  # at least one 4-gram, or BLEU is 0 by definition; 13a-stable tokens
        word = st.text(string.ascii_letters + string.digits + "éü中", min_size=1, max_size=5)
        lines = data.draw(st.lists(st.lists(word, max_size=6).map(" ".join), min_size=1, max_size=4))
        lines[0] = " ".join(data.draw(st.lists(word, min_size=4, max_size=6)))
    else:  # at least one non-empty line
        lines = data.draw(score_inputs(metric))
        lines[0] += " " + data.draw(token)
    files = write_files(tmp_path, ref_txt=data.draw(file_lines(lines)), hyp_txt=data.draw(file_lines(lines)))
    rc, result, err = score(capsys, metric, *files)
    assert rc == 0, err
    assert result["score"] == pytest.approx(PERFECT[metric]), result


@given(
    metric=st.sampled_from(METRICS),
    ref=nasty_bytes,
    hyp=nasty_bytes,
    same_count=st.booleans(),
)
@example(metric="wer", ref=b"a\xc2\x85b\n", hyp=b"a b\n", same_count=True)
@example(metric="f1", ref=b"B-x \xe2\x80\xa8 O\n", hyp=b"O O\n", same_count=True)
@example(metric="chrf", ref=b"\n", hyp=b"\n", same_count=True)
@example(metric="bleu", ref=b"\xef\xbb\xbf", hyp=b"a\n", same_count=True)
@FUZZ
@pytest.mark.filterwarnings("ignore:.*seems not to be NE tag:UserWarning")
def test_score_arbitrary_bytes(tmp_path, capsys, metric, ref, hyp, same_count):
    """Return code 0 with a score in range, or 2 with "seqkit: error:" naming a file."""
    if same_count:  # pad the shorter file so that more inputs get past the line-count check
        nr, nh = editor_lines(ref), editor_lines(hyp)
        ref = ref + (b"\n" if ref and not ref.endswith(b"\n") else b"") + b"x\n" * (nh - nr)
        hyp = hyp + (b"\n" if hyp and not hyp.endswith(b"\n") else b"") + b"x\n" * (nr - nh)
    files = write_files(tmp_path, ref_txt=ref, hyp_txt=hyp)
    rc, result, err = score(capsys, metric, *files)
    if rc == 0:
        lo, hi = RANGE[metric]
        assert lo <= result["score"] <= hi + 1e-9
    else:
        assert any(str(p) in err for p in files), err


@given(
    metric=st.sampled_from(METRICS),
    n_ref=st.integers(0, 4),
    n_hyp=st.integers(0, 4),
    crlf=st.booleans(),
)
@FUZZ
def test_score_line_count_mismatch_and_empty_files(tmp_path, capsys, metric, n_ref, n_hyp, crlf):
    end = "\r\n" if crlf else "\n"
    line = "B-x O" if metric == "f1" else "a b c d"  # a 4-gram, or BLEU is 0
    files = write_files(tmp_path, ref_txt=(line + end).encode() * n_ref, hyp_txt=(line + end).encode() * n_hyp)
    ref, hyp = files
    rc, result, err = score(capsys, metric, ref, hyp)
    if n_ref and n_hyp and n_ref == n_hyp:
        assert rc == 0 and result["score"] == pytest.approx(PERFECT[metric])
        return
    assert rc == 2
    if not n_ref or not n_hyp:
        # bleu/chrf read the hypothesis first, the other metrics the reference
        first, second = (hyp, ref) if metric in ("bleu", "chrf") else (ref, hyp)
        empty = first if not (n_hyp if first == hyp else n_ref) else second
        assert err == f"seqkit: error: {empty}: file is empty\n"
    else:
        lines = lambda k: f"{k} line" + ("" if k == 1 else "s")  # noqa: E731
        assert f"line counts differ: {ref} has {lines(n_ref)} but {hyp} has {lines(n_hyp)}" in err


# ------------------------------------------------------------------ seqkit score ppl

arpa_line = st.one_of(
    st.sampled_from([
        "\\data\\", "\\end\\", "\\1-grams:", "\\2-grams:", "\\3-grams:", "\\x-grams:", "\\²-grams:",
        "ngram 1=2", "ngram 1=3", "ngram 2=1", "ngram 1=0", "ngram x=1", "ngram 1=²", "ngram 2=",
        "ngram 1=" + "9" * 5000, "-1.0\ta", "-0.5\t<unk>", "-0.2\t</s>", "-99\t<s>\t-0.3",
        "-0.5\ta b\t-0.1", "-0.5\ta\tb", "nan\ta", "-inf\ta", "-1e300\ta", "1e308\ta\t1e308",
        "x\ta", "-1\t", "",
    ]),
    nasty_text,
)


@st.composite
def arpa_model(draw):
    """A well-formed ARPA model over a random vocabulary (orders 1-2, log10 probs <= 0)."""
    words = draw(st.lists(token, min_size=1, max_size=4, unique=True))
    uni = [*dict.fromkeys([*words, "<s>", "</s>", "<unk>"])]
    bi = draw(st.lists(st.tuples(st.sampled_from(uni), st.sampled_from(uni)), max_size=4, unique=True))
    prob = st.floats(-5, 0).map(lambda x: f"{x:.4f}")
    lines = ["\\data\\", f"ngram 1={len(uni)}"] + ([f"ngram 2={len(bi)}"] if bi else [])
    lines += ["", "\\1-grams:"] + [f"{draw(prob)}\t{w}\t{draw(prob)}" for w in uni]
    if bi:
        lines += ["", "\\2-grams:"] + [f"{draw(prob)}\t{a} {b}" for a, b in bi]
    return lines + ["", "\\end\\"]


@given(
    arpa=st.one_of(arpa_model(), st.lists(arpa_line, max_size=12)).map(lambda ls: "\n".join(ls) + "\n"),
    text=st.one_of(nasty_bytes, st.lists(st.lists(token, max_size=4).map(" ".join), max_size=4).map(
        lambda ls: "".join(s + "\n" for s in ls).encode())),
)
@example(arpa="\\data\\\nngram 1=0\n\\1-grams:\n\\end\\\n", text=b"a\n")
@example(arpa="\\data\\\nngram x=1\n", text=b"a\n")
@example(arpa="\\data\\\nngram 1=\u00b2\n", text=b"a\n")
@example(arpa="\\data\\\nngram 1=" + "9" * 5000 + "\n", text=b"a\n")
@example(arpa="\\data\\\nngram 1=1\n\\1-grams:\n-1e300\ta\n\\end\\\n", text=b"a\n")
@example(arpa="\\data\\\nngram 1=1\n\\1-grams:\nnan\ta\n\\end\\\n", text=b"a\n")
@example(arpa="\\data\\\nngram 1=1\n\\1-grams:\n-1\ta\n\\end\\\n", text=b"")
@FUZZ
def test_score_ppl_arbitrary_inputs(tmp_path, capsys, arpa, text):
    """``seqkit score ppl``: a perplexity, or exit status 2 with "seqkit: error:" naming the
    ARPA or text file; never another exception."""
    check_ppl(tmp_path, capsys, arpa, text)


@given(arpa=arpa_model(), text=st.lists(st.lists(token, max_size=4).map(" ".join), min_size=1, max_size=4))
@FUZZ
def test_score_ppl_well_formed_model(tmp_path, capsys, arpa, text):
    """A model with log10 probabilities <= 0 gives a perplexity >= 1 on any non-empty text."""
    text = "".join(s + "\n" for s in text).encode()
    assert check_ppl(tmp_path, capsys, "\n".join(arpa) + "\n", text) >= 1.0 - 1e-9


def check_ppl(tmp_path, capsys, arpa: str, text: bytes) -> float | None:
    files = write_files(tmp_path, lm_arpa=arpa.encode(), text_txt=text)
    lm, txt = files
    capsys.readouterr()
    rc = main(["score", "ppl", "--arpa", str(lm), "--text", str(txt), "--json"])
    out, err = capsys.readouterr()
    if rc == 0:
        result = json.loads(out)
        assert not math.isnan(result["score"])
        assert result["tokens"] == result["sentences"] + sum(len(ln.split()) for ln in read_lines(txt))
        return result["score"]
    assert rc == 2 and err.startswith("seqkit: error: ") and "Traceback" not in err, err
    assert str(lm) in err or str(txt) in err, err
    return None

