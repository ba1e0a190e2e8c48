"""Tests for seqkit.data: vocab, tokenizers, readers, padding and bucketed batching."""

from __future__ import annotations

import json
import random

import pytest
import torch

from seqkit.data import (
    BOS,
    EOS,
    PAD,
    UNK,
    BucketBatchSampler,
    CharTokenizer,
    SentencePieceTokenizer,
    TaggedExample,
    Vocab,
    WordTokenizer,
    build_tokenizer,
    lengths_to_mask,
    pad_sequences,
    read_lines,
    read_lm_stream,
    read_parallel,
    read_tagging,
    read_tsv_classification,
    tokenizer_from_dict,
)
from seqkit.errors import DataError, SeqkitError, Skips

# --------------------------------------------------------------------------- vocab


def test_vocab_build_order_min_freq_max_size():
    seqs = [["b", "a", "c"], ["a", "b", "d"], ["a", "e", "b", "c"]]
    # counts: a=3, b=3, c=2, d=1, e=1
    v = Vocab.build(seqs)
    assert v.tokens == [PAD, UNK, BOS, EOS, "a", "b", "c", "d", "e"]
    assert (v.pad_id, v.unk_id, v.bos_id, v.eos_id) == (0, 1, 2, 3)
    assert Vocab.build(seqs, min_freq=2).tokens[4:] == ["a", "b", "c"]
    v2 = Vocab.build(seqs, max_size=2)
    assert v2.tokens[4:] == ["a", "b"] and len(v2) == 6


def test_vocab_specials_not_repeated_and_unk():
    v = Vocab(["x", UNK, "y", "x"])
    assert v.tokens == [PAD, UNK, BOS, EOS, "x", "y"]
    assert "x" in v and "zzz" not in v
    assert v.index("zzz") == v.unk_id == 1
    assert v.encode(["x", "zzz"], add_bos=True, add_eos=True) == [2, 4, 1, 3]
    no_unk = Vocab(["x"], specials=(PAD,))
    assert no_unk.unk_id is None and no_unk.bos_id is None
    with pytest.raises(KeyError):
        no_unk.index("zzz")


def test_vocab_decode_strips_specials_and_stops_at_eos():
    v = Vocab(["a", "b"])
    ids = [v.bos_id, 4, v.unk_id, 5, v.eos_id, 4, v.pad_id]
    assert v.decode(ids) == ["a", UNK, "b"]
    assert v.decode(ids, strip_specials=False) == [BOS, "a", UNK, "b", EOS, "a", PAD]


def test_vocab_dict_and_file_round_trip(tmp_path):
    v = Vocab.build([["héllo", "world", "héllo"]], specials=(PAD, UNK))
    d = v.to_dict()
    assert d == json.loads(json.dumps(d))
    assert d["specials"] == [PAD, UNK]
    assert Vocab.from_dict(d) == v
    path = tmp_path / "vocab.json"
    v.save(path)
    w = Vocab.load(path)
    assert w.tokens == v.tokens and w.specials == v.specials
    assert w.index("héllo") == v.index("héllo") == 2


# ---------------------------------------------------------------------- tokenizers


def test_word_tokenizer():
    tok = WordTokenizer(lowercase=True)
    assert tok.encode("Show me\tflights  to Boston ") == ["show", "me", "flights", "to", "boston"]
    assert tok.decode(["a", "b"]) == "a b"
    again = tokenizer_from_dict(tok.to_dict())
    assert isinstance(again, WordTokenizer) and again.lowercase


def test_word_tokenizer_splits_punctuation_like_sacrebleu_13a():
    tok = WordTokenizer(split_punct=True)
    text = "Two young, White males (in hard-hats) are near the man's house."
    toks = tok.encode(text)
    assert toks == ["Two", "young", ",", "White", "males", "(", "in", "hard-hats", ")", "are", "near",
                    "the", "man's", "house", "."]
    assert tok.decode(toks) == text
    again = tokenizer_from_dict(tok.to_dict())
    assert again.split_punct and again.encode("a.b") == ["a", ".", "b"]
    assert WordTokenizer().encode(text)[1] == "young,"  # the default splits on whitespace only


def test_char_tokenizer_round_trip():
    tok = CharTokenizer()
    text = "hi there, ça va"
    pieces = tok.encode(text)
    assert pieces[:4] == ["h", "i", "▁", "t"]
    assert tok.decode(pieces) == text
    again = tokenizer_from_dict(tok.to_dict())
    assert isinstance(again, CharTokenizer) and again.encode(text) == pieces


def test_build_tokenizer_errors():
    assert isinstance(build_tokenizer("word"), WordTokenizer)
    with pytest.raises(SeqkitError, match="valid kinds: char, sentencepiece, word"):
        build_tokenizer("bpe")
    with pytest.raises(SeqkitError, match="model_file"):
        build_tokenizer("sentencepiece")


def _sentences(n=50, seed=0):
    rng = random.Random(seed)
    words = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "to", "park", "quickly", "slowly"]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(3, 8))) for _ in range(n)]


def test_sentencepiece_train_round_trip(tmp_path):
    texts = _sentences()
    tok = SentencePieceTokenizer.train(texts, model_prefix=tmp_path / "sp", vocab_size=40)
    assert (tmp_path / "sp.model").is_file()
    for text in texts[:10]:
        pieces = tok.encode(text)
        assert all(isinstance(p, str) for p in pieces)
        assert tok.decode(pieces) == text
    d = tok.to_dict()
    assert d["kind"] == "sentencepiece" and isinstance(d["model_proto"], bytes)
    again = tokenizer_from_dict(d)
    assert all(again.encode(t) == tok.encode(t) for t in texts)
    loaded = build_tokenizer("sentencepiece", model_file=tmp_path / "sp.model")
    assert loaded.encode(texts[0]) == tok.encode(texts[0])
    # determinism: the same corpus and options give the same model
    tok2 = SentencePieceTokenizer.train(texts, model_prefix=tmp_path / "sp2", vocab_size=40)
    assert tok2.pieces() == tok.pieces()


def test_sentencepiece_train_from_files(tmp_path):
    f = tmp_path / "corpus.txt"
    f.write_text("\n".join(_sentences(seed=1)) + "\n", encoding="utf-8")
    tok = SentencePieceTokenizer.train(files=[str(f)], model_prefix=tmp_path / "m", vocab_size=30,
                                       model_type="bpe")
    assert tok.decode(tok.encode("the cat sat")) == "the cat sat"


# ------------------------------------------------------------------------- readers


def _write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


def _atis(tmp_path, seq_in, seq_out, label, newline="\n"):
    d = tmp_path
    a = _write(d / "seq.in", newline.join(seq_in) + newline)
    b = _write(d / "seq.out", newline.join(seq_out) + newline)
    c = _write(d / "label", newline.join(label) + newline)
    return a, b, c


def test_read_tagging_happy_path(tmp_path):
    a, b, c = _atis(
        tmp_path,
        ["show flights to boston ", "list airlines"],  # SNIPS-style trailing space
        ["O O O B-toloc.city_name ", "O O"],
        ["atis_flight", "atis_airline"],
    )
    ex = read_tagging(a, b, c)
    assert ex == [
        TaggedExample(["show", "flights", "to", "boston"], ["O", "O", "O", "B-toloc.city_name"], "atis_flight", 1),
        TaggedExample(["list", "airlines"], ["O", "O"], "atis_airline", 2),
    ]
    only_in = read_tagging(a)
    assert only_in[1].tags is None and only_in[1].intent is None


def test_read_tagging_crlf_same_as_lf(tmp_path):
    rows = (["a b", "c"], ["O B-x", "O"], ["i1", "i2"])
    lf = read_tagging(*_atis(tmp_path, *rows))
    crlf_dir = tmp_path / "crlf"
    crlf_dir.mkdir()
    crlf = read_tagging(*_atis(crlf_dir, *rows, newline="\r\n"))
    assert lf == crlf
    assert read_lines(crlf_dir / "label") == ["i1", "i2"]


def test_read_tagging_count_mismatch_names_file_and_line(tmp_path):
    a, b, c = _atis(tmp_path, ["a b", "a b c d e f"], ["O O", "O O O O O"], ["x", "y"])
    with pytest.raises(DataError) as e:
        read_tagging(a, b, c)
    assert str(e.value).startswith(f"{b}:2: 5 tags for 6 tokens")
    assert e.value.path == str(b) and e.value.line == 2


def test_read_tagging_line_count_mismatch(tmp_path):
    a, b, c = _atis(tmp_path, ["a", "b", "c"], ["O", "O"], ["x", "y", "z"])
    with pytest.raises(DataError) as e:
        read_tagging(a, b, c)
    msg = str(e.value)
    assert str(a) in msg and str(b) in msg and "3 lines" in msg and "has 2" in msg


def test_read_tagging_empty_line_skipped_and_counted(tmp_path):
    a, b, c = _atis(tmp_path, ["a", "", "c"], ["O", "", "O"], ["x", "", "z"])
    skips = Skips()
    ex = read_tagging(a, b, c, skips=skips)
    assert [e.line for e in ex] == [1, 3]
    assert skips.items == [(str(a), 2, "empty line")]
    with pytest.raises(DataError, match="empty line"):
        read_tagging(a, b, c)
    # empty in one file only is always an error
    a2, b2, c2 = _atis(tmp_path, ["a", "b"], ["O", ""], ["x", "y"])
    with pytest.raises(DataError) as e:
        read_tagging(a2, b2, c2, skips=Skips())
    assert e.value.line == 2 and e.value.path == str(b2)


def test_non_utf8_error_names_line(tmp_path):
    p = _write(tmp_path / "seq.in", b"fine line\nok\nbad \xff\xfe here\nlast\n")
    with pytest.raises(DataError) as e:
        read_tagging(p)
    assert e.value.line == 3 and e.value.path == str(p)
    assert str(e.value).startswith(f"{p}:3: not valid UTF-8")


def test_read_lines_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_lines(tmp_path / "nope.txt")


def test_read_tsv_classification(tmp_path):
    p = _write(tmp_path / "train.tsv", "sentence\tlabel\nit 's great \t1\nawful\t0\n")
    assert read_tsv_classification(p) == [("it 's great", "1", 2), ("awful", "0", 3)]
    bad = _write(tmp_path / "bad.tsv", "sentence\tlabel\ngood\t1\nno label here\n")
    with pytest.raises(DataError) as e:
        read_tsv_classification(bad)
    assert e.value.line == 3 and "expected 2 tab-separated columns, found 1" in str(e.value)
    with pytest.raises(DataError, match=r"no column 'text' in header.*\['sentence', 'label'\]"):
        read_tsv_classification(p, text_column="text")
    noh = _write(tmp_path / "noh.tsv", "good\t1\n\nbad\t0\n")
    skips = Skips()
    assert read_tsv_classification(noh, header=False, skips=skips) == [("good", "1", 1), ("bad", "0", 3)]
    assert len(skips) == 1


def test_read_lm_stream(tmp_path):
    p = _write(tmp_path / "ptb.txt", " the cat <unk> \n\n sat down \n")
    assert read_lm_stream(p) == ["the", "cat", "<unk>", EOS, "sat", "down", EOS]
    assert read_lm_stream(p, add_eos=False) == ["the", "cat", "<unk>", "sat", "down"]


def test_read_parallel(tmp_path):
    src = _write(tmp_path / "train.de", "Hallo Welt\n\nDanke\n")
    tgt = _write(tmp_path / "train.en", "hello world\nempty source\nthanks\n")
    skips = Skips()
    assert read_parallel(src, tgt, skips=skips) == [("Hallo Welt", "hello world", 1), ("Danke", "thanks", 3)]
    assert skips.items == [(str(src), 2, "empty source or target")]
    with pytest.raises(DataError, match="empty source or target"):
        read_parallel(src, tgt)
    short = _write(tmp_path / "short.en", "hello world\n")
    with pytest.raises(DataError) as e:
        read_parallel(src, short)
    assert str(src) in str(e.value) and str(short) in str(e.value) and "3 lines" in str(e.value)


# ------------------------------------------------------------------------ batching


def test_pad_sequences_lists():
    padded, lengths = pad_sequences([[1, 2, 3], [4], []], pad_value=9)
    assert padded.dtype == torch.long
    assert padded.tolist() == [[1, 2, 3], [4, 9, 9], [9, 9, 9]]
    assert lengths.tolist() == [3, 1, 0] and lengths.dtype == torch.long


def test_pad_sequences_feature_tensors():
    a, b = torch.randn(4, 3), torch.randn(2, 3)
    padded, lengths = pad_sequences([a, b], pad_value=0.0, dtype=torch.float)
    assert padded.shape == (2, 4, 3) and lengths.tolist() == [4, 2]
    assert torch.equal(padded[0], a) and torch.equal(padded[1, :2], b)
    assert torch.all(padded[1, 2:] == 0)
    # float features are not truncated when dtype is left at its default
    p2, _ = pad_sequences([a, b])
    assert p2.dtype == torch.float32 and torch.equal(p2, padded)
    with pytest.raises(ValueError, match="trailing shape"):
        pad_sequences([a, torch.randn(2, 5)], dtype=torch.float)


def test_lengths_to_mask():
    m = lengths_to_mask(torch.tensor([3, 1, 0]))
    assert m.dtype == torch.bool
    assert m.tolist() == [[True, True, True], [True, False, False], [False, False, False]]
    assert lengths_to_mask(torch.tensor([2]), max_len=4).tolist() == [[True, True, False, False]]


def _lengths(n=200, seed=0):
    rng = random.Random(seed)
    return [rng.randint(1, 30) for _ in range(n)] + [100, 75]  # two oversize items


def test_bucket_sampler_covers_every_index_once_and_respects_cap():
    lengths = _lengths()
    s = BucketBatchSampler(lengths, max_tokens=64, max_sentences=8, seed=3)
    for epoch in range(3):
        s.set_epoch(epoch)
        batches = list(s)
        assert len(batches) == len(s)
        flat = sorted(i for b in batches for i in b)
        assert flat == list(range(len(lengths)))
        for b in batches:
            assert len(b) <= 8
            cost = max(lengths[i] for i in b) * len(b)
            assert cost <= 64 or len(b) == 1


def test_bucket_sampler_deterministic_and_epoch_dependent():
    lengths = _lengths()
    a = BucketBatchSampler(lengths, max_tokens=64, seed=7)
    b = BucketBatchSampler(lengths, max_tokens=64, seed=7)
    assert a.batches(0) == b.batches(0)
    assert a.batches(0) != a.batches(1)
    assert a.batches(0) != BucketBatchSampler(lengths, max_tokens=64, seed=8).batches(0)
    assert len(a.batches(0)) == len(a.batches(1))
    fixed = BucketBatchSampler(lengths, max_tokens=64, shuffle=False)
    assert fixed.batches(0) == fixed.batches(5)
    order = [i for bt in fixed.batches(0) for i in bt]
    assert order == sorted(range(len(lengths)), key=lambda i: (lengths[i], i))


def test_bucket_sampler_set_start_skips_exactly():
    s = BucketBatchSampler(_lengths(), max_tokens=64, seed=1)
    s.set_epoch(2)
    full = list(s)
    s.set_start(5)
    assert list(s) == full[5:]
    assert len(s) == len(full)
    s.set_epoch(3)
    assert s.start == 0 and len(list(s)) == len(full)


def test_bucket_sampler_two_replicas():
    lengths = _lengths(n=101)
    ranks = [BucketBatchSampler(lengths, max_tokens=50, seed=0, num_replicas=2, rank=r) for r in (0, 1)]
    n_global = len(ranks[0].batches(0))
    assert n_global % 2 == 1, "test wants an odd batch count to exercise padding"
    per_rank = [list(r) for r in ranks]
    assert len(per_rank[0]) == len(per_rank[1]) == len(ranks[0]) == len(ranks[1]) == (n_global + 1) // 2
    covered = {i for batches in per_rank for b in batches for i in b}
    assert covered == set(range(len(lengths)))


def test_bucket_sampler_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    s = BucketBatchSampler(_lengths(), max_tokens=64, seed=0)
    for epoch in range(2):
        s.set_epoch(epoch)
        list(s)
    assert torch.equal(before, torch.get_rng_state())


def test_bucket_sampler_with_dataloader():
    data = [torch.arange(n) for n in _lengths(n=40)]
    s = BucketBatchSampler([len(x) for x in data], max_tokens=80, seed=0)
    loader = torch.utils.data.DataLoader(data, batch_sampler=s, collate_fn=lambda xs: pad_sequences(xs))
    seen = 0
    for padded, lengths in loader:
        assert padded.shape[0] == lengths.shape[0]
        seen += lengths.shape[0]
    assert seen == len(data)
