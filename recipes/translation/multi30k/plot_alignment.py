"""Plot attention alignments (source x target heatmaps) of a trained translation model.

Usage (from the repository root, after training ``config.yaml``)::

    python recipes/translation/multi30k/plot_alignment.py recipes/translation/multi30k/config.yaml \
        --rows 1 17 --out recipes/translation/multi30k/alignment.png
    python recipes/translation/multi30k/plot_alignment.py CONFIG --text "Ein Hund rennt." ...

``--rows`` are 1-based lines of the config's dev source file; ``--text`` gives source sentences
directly.  Each sentence is decoded with ``decode.beam_size`` and its 1-best output is then
teacher-forced to read the attention weights: one panel per sentence, source pieces on the x
axis, output pieces (and ``</s>``) on the y axis, as JoeyNMT's attention plots.  The
translations are printed.  Config overrides (``key.sub=value``) may follow the options.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from seqkit.config import load_config  # noqa: E402
from seqkit.errors import SeqkitError  # noqa: E402
from seqkit.nn.copy import extended_to_tokens  # noqa: E402
from seqkit.tasks.base import load_for_inference  # noqa: E402


def plot(panels: list[tuple[list[str], list[str], object, str]], out: Path) -> None:
    """``panels``: (source pieces, output pieces, weights (len(out), len(src)), title)."""
    fig, axes = plt.subplots(1, len(panels), squeeze=False,
                             figsize=(sum(max(3.0, 0.42 * len(p[0]) + 1.2) for p in panels),
                                      max(3.0, 0.36 * max(len(p[1]) for p in panels) + 1.4)))
    for ax, (src, tgt, w, title) in zip(axes[0], panels):
        ax.imshow(w.numpy(), cmap="Greys", vmin=0.0, vmax=1.0, aspect="equal")
        ax.set_xticks(range(len(src)), src, rotation=90, fontsize=8)
        ax.set_yticks(range(len(tgt)), tgt, fontsize=8)
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("config")
    p.add_argument("overrides", nargs="*", metavar="key.sub=value")
    p.add_argument("--rows", type=int, nargs="*", default=[], help="1-based dev lines")
    p.add_argument("--text", nargs="*", default=[], help="source sentences")
    p.add_argument("--ckpt", help="checkpoint (default: OUTPUT_DIR/best.pt)")
    p.add_argument("--out", default="alignment.png")
    args, extra = p.parse_known_args(argv)
    args.overrides += [e for e in extra if "=" in e]
    try:
        cfg = load_config(args.config, args.overrides)
        task, model = load_for_inference(cfg, args.ckpt)
        texts = list(args.text)
        if args.rows:
            dev = task._read(cfg.data.dev, "data.dev", None)
            for r in args.rows:
                if not 1 <= r <= len(dev):
                    raise SeqkitError(f"--rows: {r} is not a line of {cfg.data.dev}.{cfg.data.src_lang} "
                                      f"(1..{len(dev)})")
                texts.append(dev[r - 1][0])
        if not texts:
            raise SeqkitError("nothing to plot: give --rows and/or --text")
        items = [task.encode(t) for t in texts]
        results = task.translate(model, items, cfg.decode.beam_size, return_attention=True)
    except SeqkitError as e:
        print(f"plot_alignment: error: {e}", file=sys.stderr)
        return 2
    panels = []
    for text, item, res in zip(texts, items, results):
        best = res[0]
        if cfg.model.copy != "none":
            oovs = task.collate([{"src": item["src"]}])["oovs"][0]
            out_pieces = extended_to_tokens(best["tokens"], task.tgt_vocab, oovs, strip_specials=False)
        else:
            out_pieces = task.tgt_vocab.decode(best["tokens"], strip_specials=False)
        panels.append((item["src"], [*out_pieces, "</s>"], best["attention"], best["text"]))
        print(f"{text}\t{best['text']}\t{best['score']:.3f}")
    plot(panels, Path(args.out))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
