"""Tests for seqkit.metrics and the ``seqkit score`` subcommand.

Scores from the CLI are compared with sacrebleu / jiwer / seqeval called directly.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import jiwer
import pytest
import sacrebleu
from seqeval.metrics import classification_report

from seqkit.cli import score as score_cli
from seqkit.errors import DataError, SeqkitError
from seqkit.metrics import (
    accuracy,
    bleu,
    cer,
    chrf,
    perplexity,
    read_text_lines,
    slot_f1,
    wer,
)

HYPS = [
    "the cat sat on the mat",
    "a quick brown fox jumps over the lazy dog",
    "hello there general kenobi",
    "it is raining cats and dogs today",
]
REFS = [
    "the cat is on the mat",
    "the quick brown fox jumped over the lazy dog",
    "hello there general kenobi",
    "it rains cats and dogs",
]
REFS2 = [
    "there is a cat on the mat",
    "a fast brown fox jumps over the lazy dog",
    "hello there , general kenobi",
    "it is pouring cats and dogs today",
]


def run_cli(argv: list[str]) -> int:
    """The same wiring as seqkit/cli/main.py: add_parser(sub), then args.func(args)."""
    parser = argparse.ArgumentParser(prog="seqkit")
    sub = parser.add_subparsers(dest="command", required=True)
    score_cli.add_parser(sub)
    args = parser.parse_args(argv)
    return args.func(args)


def write(path: Path, lines: list[str], newline: str = "\n") -> Path:
    path.write_bytes("".join(line + newline for line in lines).encode("utf-8"))
    return path


def cli_json(capsys, argv: list[str]) -> dict:
    assert run_cli([*argv, "--json"]) == 0
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) == 1  # exactly one JSON object
    return json.loads(out)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    return {
        "hyp": str(write(tmp_path / "hyp.txt", HYPS)),
        "ref": str(write(tmp_path / "ref.txt", REFS)),
        "ref2": str(write(tmp_path / "ref2.txt", REFS2)),
    }


# ------------------------------------------------------------------ BLEU / chrF


def test_bleu_one_reference_matches_sacrebleu(capsys, files):
    got = cli_json(capsys, ["score", "bleu", "--ref", files["ref"], "--hyp", files["hyp"]])
    expected = sacrebleu.corpus_bleu(HYPS, [REFS])
    assert got["metric"] == "bleu"
    assert got["score"] == pytest.approx(expected.score)
    assert 0 < got["score"] < 100
    assert got["counts"] == list(expected.counts) and got["totals"] == list(expected.totals)
    assert got["bp"] == pytest.approx(expected.bp)
    assert got["sys_len"] == expected.sys_len and got["ref_len"] == expected.ref_len
    assert got["signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")


def test_bleu_two_references_matches_sacrebleu(capsys, files):
    got = cli_json(
        capsys,
        ["score", "bleu", "--ref", files["ref"], "--ref", files["ref2"], "--hyp", files["hyp"]],
    )
    expected = sacrebleu.corpus_bleu(HYPS, [REFS, REFS2])
    assert got["score"] == pytest.approx(expected.score)
    assert got["score"] > sacrebleu.corpus_bleu(HYPS, [REFS]).score  # more refs, more matches
    assert got["nrefs"] == 2 and "nrefs:2" in got["signature"]


def test_bleu_tokenize_and_lowercase(capsys, tmp_path):
    hyp = write(tmp_path / "h.txt", ["The Cat sat."])
    ref = write(tmp_path / "r.txt", ["the cat sat ."])
    argv = ["score", "bleu", "--ref", str(ref), "--hyp", str(hyp), "--tokenize", "none", "--lowercase"]
    got = cli_json(capsys, argv)
    expected = sacrebleu.corpus_bleu(["The Cat sat."], [["the cat sat ."]], tokenize="none", lowercase=True)
    assert got["score"] == pytest.approx(expected.score)
    assert "case:lc" in got["signature"] and "tok:none" in got["signature"]
    with pytest.raises(SeqkitError, match="unknown BLEU tokenizer 'bogus'"):
        run_cli(["score", "bleu", "--ref", str(ref), "--hyp", str(hyp), "--tokenize", "bogus"])


def test_bleu_report_prints_signature(capsys, files):
    assert run_cli(["score", "bleu", "--ref", files["ref"], "--hyp", files["hyp"]]) == 0
    out = capsys.readouterr().out
    expected = sacrebleu.corpus_bleu(HYPS, [REFS])
    assert out.startswith(f"BLEU = {expected.score:.2f} ")
    assert "signature: nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:" in out


def test_chrf_matches_sacrebleu(capsys, files):
    got = cli_json(capsys, ["score", "chrf", "--ref", files["ref"], "--hyp", files["hyp"]])
    assert got["score"] == pytest.approx(sacrebleu.corpus_chrf(HYPS, [REFS]).score)
    assert got["name"] == "chrF2" and "nw:0" in got["signature"]
    plus = cli_json(
        capsys,
        ["score", "chrf", "--ref", files["ref"], "--ref", files["ref2"], "--hyp", files["hyp"],
         "--word-order", "2"],
    )
    assert plus["score"] == pytest.approx(sacrebleu.corpus_chrf(HYPS, [REFS, REFS2], word_order=2).score)
    assert plus["name"] == "chrF2++"
    assert run_cli(["score", "chrf", "--ref", files["ref"], "--hyp", files["hyp"]]) == 0
    assert "signature: nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:" in capsys.readouterr().out


def test_bleu_function_rejects_a_bare_stream_and_short_reference():
    with pytest.raises(TypeError, match="reference streams"):
        bleu(HYPS, REFS)
    with pytest.raises(DataError, match="reference 2 has 3 lines but hypothesis has 4 lines"):
        bleu(HYPS, [REFS, REFS2[:3]])
    with pytest.raises(DataError, match="hypothesis is empty"):
        chrf([], [REFS])


# ------------------------------------------------------------------ WER / CER


def test_wer_matches_jiwer(capsys, files):
    got = cli_json(capsys, ["score", "wer", "--ref", files["ref"], "--hyp", files["hyp"]])
    out = jiwer.process_words(REFS, HYPS)
    assert got["score"] == pytest.approx(out.wer)
    assert (got["substitutions"], got["deletions"], got["insertions"], got["hits"]) == (
        out.substitutions, out.deletions, out.insertions, out.hits
    )
    assert got["ref_words"] == sum(len(r.split()) for r in REFS)
    assert got["empty_refs"] == 0
    # worst: sorted by errors (desc), the perfect line 3 is not listed
    errors = [jiwer.process_words(r, h) for r, h in zip(REFS, HYPS)]
    per_line = [o.substitutions + o.deletions + o.insertions for o in errors]
    assert [w["errors"] for w in got["worst"]] == sorted((e for e in per_line if e), reverse=True)
    assert 2 not in [w["index"] for w in got["worst"]]


def test_cer_matches_jiwer(capsys, files):
    got = cli_json(capsys, ["score", "cer", "--ref", files["ref"], "--hyp", files["hyp"]])
    out = jiwer.process_characters(REFS, HYPS)
    assert got["score"] == pytest.approx(out.cer)
    assert (got["substitutions"], got["deletions"], got["insertions"], got["hits"]) == (
        out.substitutions, out.deletions, out.insertions, out.hits
    )
    assert got["ref_chars"] == sum(len(r) for r in REFS)


def test_wer_worst_alignment_hand_checked(capsys, tmp_path):
    ref = write(tmp_path / "ref.txt", ["a b c d", "same words here"])
    hyp = write(tmp_path / "hyp.txt", ["a x c", "same words here"])
    got = cli_json(capsys, ["score", "wer", "--ref", str(ref), "--hyp", str(hyp)])
    assert got["score"] == pytest.approx(2 / 7)
    assert (got["substitutions"], got["deletions"], got["insertions"], got["hits"]) == (1, 1, 0, 5)
    assert len(got["worst"]) == 1
    w = got["worst"][0]
    assert (w["index"], w["errors"], w["substitutions"], w["deletions"]) == (0, 2, 1, 1)
    assert (w["ref"], w["hyp"]) == ("a b c d", "a x c")
    assert w["alignment"] == "REF: a b c d\nHYP: a x c *\n       S   D"

    assert run_cli(["score", "wer", "--ref", str(ref), "--hyp", str(hyp)]) == 0
    out = capsys.readouterr().out
    assert "S = 1 D = 1 I = 0" in out
    assert "line 1: 2 error(s)" in out and "HYP: a x c *" in out


def test_alignment_pads_columns_and_marks_insertions():
    got = wer(["the cat sat"], ["the big cats sat"])
    assert got["worst"][0]["alignment"] == (
        "REF: the *** cat  sat\n"
        "HYP: the big cats sat\n"
        "         I   S"
    )
    c = cer(["abcd"], ["abxd"])
    assert c["score"] == pytest.approx(0.25)
    assert c["worst"][0]["alignment"] == "REF: abcd\nHYP: abxd\n       S"


def test_worst_limit(files):
    assert len(wer(REFS, HYPS, worst=1)["worst"]) == 1
    assert wer(REFS, HYPS, worst=0)["worst"] == []


def test_empty_reference_lines_count_insertions():
    refs = ["a b c", "", "d e"]
    hyps = ["a b c", "x y", "d"]
    got = wer(refs, hyps)
    # sclite convention: the two hypothesis words on the empty reference line are insertions
    assert (got["insertions"], got["deletions"], got["ref_words"]) == (2, 1, 5)
    assert got["score"] == pytest.approx(3 / 5)
    assert got["empty_refs"] == 1
    assert got["worst"][0]["index"] == 1 and got["worst"][0]["alignment"].startswith("REF: * *\n")
    assert cer(refs, hyps)["insertions"] == 3  # "x y": three characters
    with pytest.raises(DataError, match="every reference line is empty"):
        wer(["", "  "], ["a", ""])


def test_empty_reference_lines_agree_with_jiwer4():
    refs, hyps = ["a b c", "", "d e"], ["a b x", "x y", ""]
    try:
        expected = jiwer.process_words(refs, hyps)
    except ValueError:
        pytest.skip("this jiwer rejects empty references")
    assert wer(refs, hyps)["score"] == pytest.approx(expected.wer)


# ------------------------------------------------------------------ slot F1 / accuracy

TAG_REFS = [
    "O B-fromloc I-fromloc O B-toloc",
    "B-date O O",
    "O B-toloc I-toloc O B-date",
    "O O",
]
TAG_HYPS = [
    "O B-fromloc I-fromloc O B-toloc",
    "O O O",
    "O B-toloc O O B-date",
    "B-airline O",
]


@pytest.mark.filterwarnings("ignore:.*ill-defined")  # seqeval, called directly below
def test_f1_matches_seqeval(capsys, tmp_path):
    ref = write(tmp_path / "ref.tags", TAG_REFS)
    hyp = write(tmp_path / "hyp.tags", TAG_HYPS)
    got = cli_json(capsys, ["score", "f1", "--ref", str(ref), "--hyp", str(hyp)])
    report = classification_report(
        [r.split() for r in TAG_REFS], [h.split() for h in TAG_HYPS], output_dict=True
    )
    assert got["score"] == pytest.approx(report["micro avg"]["f1-score"])
    # 5 reference slots, 5 predicted, 3 exact matches (toloc on line 3 is cut short)
    assert got["precision"] == pytest.approx(3 / 5) and got["recall"] == pytest.approx(3 / 5)
    assert got["score"] == pytest.approx(0.6) and got["support"] == 5
    assert sorted(got["per_label"]) == ["airline", "date", "fromloc", "toloc"]
    for label, v in got["per_label"].items():
        assert v["precision"] == pytest.approx(report[label]["precision"])
        assert v["recall"] == pytest.approx(report[label]["recall"])
        assert v["f1"] == pytest.approx(report[label]["f1-score"])
        assert v["support"] == report[label]["support"]
    assert got["per_label"]["toloc"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}

    assert run_cli(["score", "f1", "--ref", str(ref), "--hyp", str(hyp)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("slot F1 = 0.6000 precision = 0.6000 recall = 0.6000")
    rows = [line.split()[0] for line in out[3:]]
    assert rows == ["airline", "date", "fromloc", "toloc"]
    assert out[-1].split() == ["toloc", "0.5000", "0.5000", "0.5000", "2"]


def test_tag_count_mismatch_names_line(tmp_path):
    ref = write(tmp_path / "ref.txt", ["O O", "O B-a I-a O O O", "O"])
    hyp = write(tmp_path / "hyp.txt", ["O O", "O B-a I-a O O", "O"])
    with pytest.raises(DataError) as err:
        run_cli(["score", "f1", "--ref", str(ref), "--hyp", str(hyp)])
    assert str(err.value) == f"{hyp}:2: 5 tags but the reference ({ref}:2) has 6"
    assert err.value.line == 2 and err.value.path == str(hyp)


def test_accuracy(capsys, tmp_path):
    ref = write(tmp_path / "ref.txt", ["flight", "airfare", "flight", "ground_service"])
    hyp = write(tmp_path / "hyp.txt", ["flight", "flight", "flight ", "ground_service"])
    got = cli_json(capsys, ["score", "acc", "--ref", str(ref), "--hyp", str(hyp)])
    assert (got["score"], got["correct"], got["total"]) == (0.75, 3, 4)
    assert run_cli(["score", "acc", "--ref", str(ref), "--hyp", str(hyp)]) == 0
    assert capsys.readouterr().out.strip() == "accuracy = 0.7500 (3/4 correct)"


def test_perplexity():
    got = perplexity(math.log(20) * 10, 10)
    assert got["score"] == pytest.approx(20.0)
    assert got["nll_per_token"] == pytest.approx(math.log(20)) and got["tokens"] == 10
    with pytest.raises(DataError, match="at least one token"):
        perplexity(1.0, 0)


# ------------------------------------------------------------------ input errors


@pytest.mark.parametrize("metric", ["bleu", "chrf", "wer", "cer", "f1", "acc"])
def test_line_count_mismatch_names_both_files(tmp_path, metric):
    ref = write(tmp_path / "ref.txt", [f"w{i} x" for i in range(10)])
    hyp = write(tmp_path / "hyp.txt", [f"w{i} x" for i in range(9)])
    with pytest.raises(DataError) as err:
        run_cli(["score", metric, "--ref", str(ref), "--hyp", str(hyp)])
    assert str(err.value) == f"{ref}:10: line counts differ: {ref} has 10 lines but {hyp} has 9 lines"


def test_functions_check_lengths_and_emptiness():
    for fn in (wer, cer, accuracy):
        with pytest.raises(DataError, match="reference has 2 lines but hypothesis has 1 line$"):
            fn(["a", "b"], ["a"])
        with pytest.raises(DataError, match="reference is empty"):
            fn([], [])
    with pytest.raises(DataError, match="reference has 1 line but hypothesis has 2 lines"):
        slot_f1([["O"]], [["O"], ["O"]])


def test_empty_file(tmp_path, files):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(DataError) as err:
        run_cli(["score", "wer", "--ref", files["ref"], "--hyp", str(empty)])
    assert str(err.value) == f"{empty}: file is empty"
    with pytest.raises(DataError, match="no such file"):
        read_text_lines(tmp_path / "missing.txt")


def test_non_utf8_names_line(tmp_path, files):
    bad = tmp_path / "bad.txt"
    bad.write_bytes("caf\u00e9 ok\n".encode() + b"ok line\nbad \xff byte\nlast\n")
    with pytest.raises(DataError) as err:
        run_cli(["score", "bleu", "--ref", files["ref"], "--hyp", str(bad)])
    assert err.value.path == str(bad) and err.value.line == 3
    assert str(err.value).startswith(f"{bad}:3: not valid UTF-8")


def test_crlf_scores_like_lf(capsys, tmp_path, files):
    ref_crlf = write(tmp_path / "ref_crlf.txt", REFS, newline="\r\n")
    hyp_crlf = write(tmp_path / "hyp_crlf.txt", HYPS, newline="\r\n")
    assert read_text_lines(ref_crlf) == REFS
    for metric in ("bleu", "chrf", "wer", "cer", "acc"):
        lf = cli_json(capsys, ["score", metric, "--ref", files["ref"], "--hyp", files["hyp"]])
        crlf = cli_json(capsys, ["score", metric, "--ref", str(ref_crlf), "--hyp", str(hyp_crlf)])
        assert crlf == lf
    tags_lf = write(tmp_path / "t.txt", TAG_REFS)
    tags_crlf = write(tmp_path / "t_crlf.txt", TAG_HYPS, newline="\r\n")
    tags_hyp_lf = write(tmp_path / "th.txt", TAG_HYPS)
    assert cli_json(capsys, ["score", "f1", "--ref", str(tags_lf), "--hyp", str(tags_crlf)]) == cli_json(
        capsys, ["score", "f1", "--ref", str(tags_lf), "--hyp", str(tags_hyp_lf)]
    )


def test_read_text_lines_final_newline_and_bom(tmp_path):
    p = tmp_path / "x.txt"
    p.write_bytes(b"\xef\xbb\xbfone\ntwo")
    assert read_text_lines(p) == ["one", "two"]
    p.write_bytes(b"one\n\nthree\n")
    assert read_text_lines(p) == ["one", "", "three"]
