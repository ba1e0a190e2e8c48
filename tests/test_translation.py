"""Translation: Multi30k data_prep, the seq2seq task end to end on a toy corpus (train, evaluate
with BLEU/chrF signatures, predict from stdin), beam n-best ordering, and a pointer-generator
that copies source words its vocabulary does not have."""

from __future__ import annotations

import gzip
import importlib.util
import json
import random

import pytest
import torch

from data_prep import multi30k as prep
from seqkit.cli.main import main as seqkit_main
from seqkit.config import load_config
from seqkit.errors import ConfigError
from seqkit.tasks.base import load_for_inference

from .conftest import ROOT
from .test_sentiment_recipes import _Stdin

RECIPE = ROOT / "recipes" / "translation" / "multi30k"
WORDS = "haus katze hund baum auto rot blau gross klein schnell".split()
ENGLISH = dict(zip(WORDS, "house cat dog tree car red blue big small fast".split()))


def toy_corpus(n: int, seed: int) -> list[tuple[str, str]]:
    """German-ish source, English-ish target: a word-by-word dictionary, order kept."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        src = [rng.choice(WORDS) for _ in range(rng.randint(2, 5))]
        pairs.append((" ".join(src), " ".join(ENGLISH[w] for w in src)))
    return pairs


def write_split(folder, split, pairs, gz=False):
    folder.mkdir(parents=True, exist_ok=True)
    for k, lang in enumerate(("de", "en")):
        text = "".join(p[k] + "\n" for p in pairs).encode()
        if gz:
            (folder / f"{split}.{lang}.gz").write_bytes(gzip.compress(text))
        else:
            (folder / f"{split}.{lang}").write_bytes(text)


def test_data_prep_reads_plain_and_gzip_and_names_bad_lines(tmp_path):
    raw = tmp_path / "raw"
    write_split(raw, "train", [("ein  Haus ", "a house"), ("zwei Hunde", "two dogs")], gz=True)
    write_split(raw, "val", [("ein Hund", "a dog")])
    assert prep.main(["--src", str(raw), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "train.de").read_text() == "ein Haus\nzwei Hunde\n"
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["train"]["pairs"] == 2 and stats["val"]["words_en"] == 2
    (raw / "val.en").write_text("a dog\n\n")
    (raw / "val.de").write_text("ein Hund\nzwei\n")
    with pytest.raises(Exception, match=r"val\.en:2: empty sentence"):
        prep.prepare(tmp_path / "out2", raw)
    (raw / "val.en").write_text("a dog\n")
    assert prep.main(["--src", str(raw), "--out", str(tmp_path / "out3")]) == 2  # line counts differ


def test_data_prep_download_path_uses_the_pinned_urls(tmp_path):
    seen = []

    def fetch(url, timeout):
        seen.append(url)
        lang = url.split(".")[-2]
        return gzip.compress(b"hallo welt\n" if lang == "de" else b"hello world\n")

    assert prep.main(["--out", str(tmp_path / "o")], fetch=fetch) == 0
    assert all(prep.COMMIT in u and u.endswith(".gz") for u in seen) and len(seen) == 4


def overrides(tmp_path, *extra):
    return [
        f"data.train={tmp_path / 'data' / 'train'}",
        f"data.dev={tmp_path / 'data' / 'val'}",
        f"train.output_dir={tmp_path / 'exp'}",
        "train.num_threads=1", "train.progress=false", "train.tensorboard=false",
        *extra,
    ]


def test_recipe_config_trains_evaluates_and_predicts_on_a_toy_corpus(tmp_path, capsys, monkeypatch):
    write_split(tmp_path / "data", "train", toy_corpus(200, 0))
    write_split(tmp_path / "data", "val", toy_corpus(20, 1))
    ov = overrides(tmp_path, "data.sp_vocab_size=40", "model.emb_dim=32", "model.enc_hidden=32",
                   "model.dec_hidden=32", "train.epochs=2", "train.max_minutes=null", "decode.beam_size=3")
    capsys.readouterr()
    assert seqkit_main(["train", str(RECIPE / "config.yaml"), "--fresh", *ov]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["sentences"] == 20 and metrics["beam"] == 3
    assert metrics["sentences_per_second"] > 0 and metrics["threads"] == 1
    assert 0.0 <= metrics["bleu"] <= 100.0 and metrics["ppl"] > 1.0
    assert metrics["bleu_signature"].startswith("nrefs:1|") and "nc:6" in metrics["chrf_signature"]
    assert len((tmp_path / "exp" / "dev.hyp").read_text().splitlines()) == 20
    assert len(list((tmp_path / "exp").glob("ckpt_step*.pt"))) == 2  # one per epoch, <= 5 kept
    avg = tmp_path / "avg.pt"
    assert seqkit_main(["average", str(tmp_path / "exp"), "--last", "2", "--out", str(avg)]) == 0
    assert seqkit_main(["evaluate", str(RECIPE / "config.yaml"), *ov, "--ckpt", str(avg)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["sentences"] == 20
    monkeypatch.setattr("sys.stdin", _Stdin("haus katze\n\nrot auto\n"))
    assert seqkit_main(["predict", str(RECIPE / "config.yaml"), *ov]) == 0
    out = capsys.readouterr().out.split("\n")
    assert len(out) == 4 and out[1] == "" and out[0] and out[2]


def test_word_level_model_learns_the_toy_dictionary_and_nbest_is_ordered(tmp_path, capsys, monkeypatch):
    write_split(tmp_path / "data", "train", toy_corpus(400, 0))
    write_split(tmp_path / "data", "val", toy_corpus(20, 1))
    ov = overrides(tmp_path, "data.tokenizer=word", "model.emb_dim=32", "model.enc_hidden=32",
                   "model.dec_hidden=32", "model.dropout=0.0", "model.label_smoothing=0.0",
                   "train.epochs=20", "train.max_minutes=null", "train.max_tokens=200", "train.lr=0.01",
                   "train.warmup_steps=0")
    capsys.readouterr()
    assert seqkit_main(["train", str(RECIPE / "config.yaml"), "--fresh", *ov]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["bleu"] > 60.0, metrics  # 85.3 when written (repeated words are the errors)
    cfg = load_config(RECIPE / "config.yaml", ov)
    task, model = load_for_inference(cfg)
    res = task.translate(model, [task.encode("katze hund baum")], beam=4, nbest=4, return_attention=True)[0]
    assert res[0]["text"] == "cat dog tree"
    scores = [r["score"] for r in res]
    assert len(res) == 4 and scores == sorted(scores, reverse=True)
    monkeypatch.setattr("sys.stdin", _Stdin("katze hund baum\n"))
    assert seqkit_main(["predict", str(RECIPE / "config.yaml"), *ov, "decode.beam_size=4", "decode.nbest=3"]) == 0
    lines = capsys.readouterr().out.strip().split("\n")
    assert len(lines) == 3 and lines[0].startswith("0 ||| cat dog tree ||| ")
    assert [float(x.split(" ||| ")[2]) for x in lines] == sorted((float(x.split(" ||| ")[2]) for x in lines), reverse=True)
    assert seqkit_main(["predict", str(RECIPE / "config.yaml"), *ov, "decode.beam_size=4", "decode.nbest=9"]) == 2
    assert "key 'decode.nbest' (9) exceeds decode.beam_size (4)" in capsys.readouterr().err
    att = res[0]["attention"]  # (3 words + EOS, 3 source words): a diagonal alignment
    assert att.shape == (4, 3) and torch.equal(att[:3].argmax(-1), torch.arange(3))
    spec = importlib.util.spec_from_file_location("plot_alignment", RECIPE / "plot_alignment.py")
    plot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plot)
    png = tmp_path / "align.png"
    assert plot.main([str(RECIPE / "config.yaml"), *ov, "--rows", "1", "--text", "katze hund baum",
                      "--out", str(png)]) == 0
    assert png.stat().st_size > 1000
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("katze hund baum\tcat dog tree\t")


@pytest.mark.parametrize("copy", ["pointer_generator", "copynet"])
def test_copy_models_reproduce_source_words_outside_the_vocabulary(tmp_path, capsys, copy):
    """Identity task with a 6-word vocabulary: the other words can only be produced by copying."""
    rng = random.Random(0)
    names = [f"name{i}" for i in range(40)]

    def pairs(n):
        out = []
        for _ in range(n):
            s = " ".join(rng.choice(WORDS[:6] if rng.random() < 0.5 else names) for _ in range(rng.randint(2, 4)))
            out.append((s, s))
        return out

    write_split(tmp_path / "data", "train", pairs(400))
    write_split(tmp_path / "data", "val", [("haus name7 katze", "haus name7 katze"), ("name39 name3", "name39 name3")])
    ov = overrides(tmp_path, "data.tokenizer=word", "data.max_vocab=6", f"model.copy={copy}",
                   "model.emb_dim=32", "model.enc_hidden=32", "model.dec_hidden=32", "model.dropout=0.0",
                   "train.early_stopping.metric=chrf",  # BLEU is 0 on two 2-3 word sentences
                   "train.epochs=20", "train.max_minutes=null", "train.max_tokens=200", "train.lr=0.01",
                   "train.warmup_steps=0")
    capsys.readouterr()
    assert seqkit_main(["train", str(RECIPE / "config.yaml"), "--fresh", *ov]) == 0
    cfg = load_config(RECIPE / "config.yaml", ov)
    task, model = load_for_inference(cfg)
    assert "name7" not in task.tgt_vocab and "haus" in task.tgt_vocab
    out = task.translate(model, [task.encode("haus name7 katze"), task.encode("name39 name3")], beam=3)
    assert [o[0]["text"] for o in out] == ["haus name7 katze", "name39 name3"]
    m = task.evaluate(model)  # the val refs hold 3 words outside the vocabulary, all copied
    assert (m["ref_oov_tokens"], m["ref_oov_recall"], m["unk_rate"]) == (3, 1.0, 0.0)
    assert (m["ref_oov_in_src"], m["ref_oov_in_src_recall"]) == (3, 1.0)
    # without copying, the same words could only come out as <unk>: 2 of 4 tokens (search results
    # hold no BOS/EOS); of the two reference words outside the vocabulary one is in the source
    # and neither is in the output
    v = task.tgt_vocab
    got = task._unknown_words([{"tokens": [v.unk_id, v.index("haus"), v.unk_id, v.index("katze")], "text": "x"}],
                              [task.encode("name7 katze", "name7 haus name8")])
    assert got == {"unk_rate": 0.5, "ref_oov_tokens": 2, "ref_oov_recall": 0.0,
                   "ref_oov_in_src": 1, "ref_oov_in_src_recall": 0.0}


def test_copy_without_a_joint_vocabulary_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="model.copy.*joint_vocab"):
        from seqkit.tasks.translation import TranslationTask

        TranslationTask(load_config(RECIPE / "config.yaml", ["model.copy=copynet", "data.joint_vocab=false"]))


def test_unknown_decode_key_names_the_key():
    with pytest.raises(ConfigError, match="decode.beam"):
        load_config(RECIPE / "config.yaml", ["decode.beam=3"])


def test_copy_word_config_builds_a_capped_word_vocabulary(tmp_path):
    """The shipped copy-experiment config: punctuation split off, joint vocabulary cut at max_vocab."""
    write_split(tmp_path / "data", "train", [("ein Hund, zwei Katzen.", "a dog, two cats."), ("Anna (5)", "Anna (5)")])
    write_split(tmp_path / "data", "val", [("ein Hund.", "a dog.")])
    cfg = load_config(RECIPE / "copy_word.yaml", overrides(tmp_path, "data.max_vocab=6"))
    from seqkit.tasks.translation import TranslationTask

    task = TranslationTask(cfg)
    task.build_state()
    assert cfg.model.copy == "pointer_generator" and task.src_vocab is task.tgt_vocab
    assert task.src_tok.encode("zwei Katzen.") == ["zwei", "Katzen", "."]
    assert len(task.tgt_vocab) == 4 + 6 and {",", ".", "(", ")"} <= set(task.tgt_vocab.tokens)


def test_punct_breakdown_splits_bleu_by_final_punctuation(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("punct_breakdown", RECIPE / "punct_breakdown.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    (tmp_path / "src").write_text("ein Hund.\nzwei Katzen\n")
    (tmp_path / "ref").write_text("a big brown dog runs .\ntwo cats\n")
    (tmp_path / "hyp").write_text("a big brown dog runs .\ntwo cats cats cats cats cats cats cats\n")
    args = ["--src", str(tmp_path / "src"), "--ref", str(tmp_path / "ref"), "--hyp", str(tmp_path / "hyp")]
    capsys.readouterr()
    assert mod.main(args) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.strip().splitlines()[1:]]
    assert [(r[0], r[1], r[3]) for r in rows] == [("no final punctuation", "1", "1"), ("final punctuation", "1", "0")]
    assert float(rows[1][2]) == 100.0 and float(rows[0][2]) < 100.0
    (tmp_path / "hyp").write_text("a dog .\n")
    assert mod.main(args) == 2 and "line counts differ" in capsys.readouterr().err
