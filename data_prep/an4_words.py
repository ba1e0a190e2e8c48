"""Cut AN4 utterances into word segments by CTC forced alignment (for audio word2vec).

Usage::

    python data_prep/an4_words.py --config recipes/asr/an4/config.yaml --ckpt exp/asr_an4/best.pt \\
        --manifest data/an4/train.jsonl --out data/an4_words/train.jsonl

The ASR checkpoint must have a CTC head over characters (any ``task: asr`` model with
``ctc_weight > 0`` and ``data.units: char``).  For every utterance its transcript is aligned to
the model's CTC posteriors (:func:`seqkit.search.ctc_word_segments`); each word becomes one
manifest line: ``id`` = ``<utterance>_<k>``, the utterance's ``path`` and ``speaker``,
``start``/``end`` in seconds, ``duration``, ``text`` = the word, plus ``utterance``, ``word_index``
and ``align_score`` (the mean frame log-posterior of its labels, a confidence).  Segments
are widened by ``--pad`` seconds on each side (clipped to the utterance), since the CTC
spikes of a word are narrower than its audio.  Utterances that cannot be aligned (fewer
encoder frames than labels plus repeats) are skipped, counted and listed, never dropped
silently.  A summary goes to ``OUT``'s ``.stats.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make data_prep and seqkit importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from seqkit.config import load_config  # noqa: E402
from seqkit.data.manifest import Utterance, read_manifest, write_manifest  # noqa: E402
from seqkit.errors import SeqkitError, Skips  # noqa: E402
from seqkit.search import ctc_word_segments  # noqa: E402
from seqkit.tasks.base import load_for_inference  # noqa: E402


def segment(config: str, ckpt: str, manifest: str, out: str, pad: float = 0.05, batch_size: int = 16,
            threads: int = 1) -> dict:
    cfg = load_config(config, [f"train.num_threads={threads}"])
    task, model = load_for_inference(cfg, ckpt)
    if cfg.task != "asr" or model.ctc is None or task.sp is not None:
        raise SeqkitError(f"{ckpt}: needs an asr checkpoint with a CTC head over characters")
    if " " not in task.vocab:
        raise SeqkitError(f"{ckpt}: the vocabulary has no space unit to split words at")
    delim = task.vocab.index(" ")
    utts = read_manifest(manifest, allow_outside=True)
    items = task._items(utts, 1.0, Path(manifest).stem, None, manifest)
    frame_seconds = task.feature_options.hop_ms / 1000 * model.reduction  # one encoder frame
    skips = Skips()
    segments: list[Utterance] = []
    with torch.inference_mode():
        for start in range(0, len(items), batch_size):
            idx = list(range(start, min(start + batch_size, len(items))))
            batch = task.collate([{"feats": items[i]["feats"]} for i in idx])
            enc, enc_lengths = model.encode(batch["feats"], batch["feat_lengths"])
            lp = model.ctc_log_probs(enc, enc_lengths)  # (B, T', V)
            for j, i in enumerate(idx):
                u = utts[i]
                frames = int(enc_lengths[j])
                try:
                    words = ctc_word_segments(lp[j, :frames], items[i]["targets"], blank=model.ctc.blank,
                                              delimiter=delim, frame_seconds=frame_seconds)
                except ValueError as e:
                    skips.add(manifest, i + 1, f"{u.id}: {e}")
                    continue
                texts = task._norm(u.text).split()
                if len(words) != len(texts):
                    skips.add(manifest, i + 1, f"{u.id}: {len(words)} aligned words for {len(texts)}")
                    continue
                for w, text in zip(words, texts):
                    s = max(0.0, w.start - pad)
                    e = min(u.duration, w.end + pad)
                    segments.append(Utterance(f"{u.id}_{w.index}", u.path, round(e - s, 4), text, u.speaker,
                                              round(s, 4), round(e, 4),
                                              {"utterance": u.id, "word_index": w.index,
                                               "align_score": round(w.score, 4)}))
    write_manifest(out, segments)
    stats = {"utterances": len(utts), "aligned": len(utts) - len(skips), "skipped": len(skips),
             "skipped_items": [f"{p}:{n}: {r}" for p, n, r in skips.items], "segments": len(segments),
             "words": len({s.text for s in segments}), "speakers": len({s.speaker for s in segments}),
             "pad_seconds": pad, "checkpoint": str(ckpt)}
    Path(f"{out}.stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    if len(skips):
        print(f"{manifest}: {skips.summary()}", file=sys.stderr)
    return stats


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="data_prep/an4_words.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="the ASR recipe config of the checkpoint")
    p.add_argument("--ckpt", required=True, help="ASR checkpoint with a character CTC head")
    p.add_argument("--manifest", required=True, help="utterance manifest (data/an4/train.jsonl)")
    p.add_argument("--out", required=True, help="word-segment manifest to write")
    p.add_argument("--pad", type=float, default=0.05, help="seconds added on each side (default 0.05)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    try:
        st = segment(args.config, args.ckpt, args.manifest, args.out, args.pad, threads=args.threads)
    except SeqkitError as e:
        print(f"data_prep: error: {e}", file=sys.stderr)
        return 2
    print(f"{args.out}: {st['segments']} word segments ({st['words']} words, {st['speakers']} speakers) from "
          f"{st['aligned']} of {st['utterances']} utterances; {st['skipped']} skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
