"""Plot the attention-pooling weights of a trained classifier over the tokens of a few sentences.

Usage (from the repository root, after training ``config.yaml``)::

    python recipes/sentiment/sst2/plot_attention.py recipes/sentiment/sst2/config.yaml \
        --rows 2 239 347 384 540 111 113 --out recipes/sentiment/sst2/attention.png
    python recipes/sentiment/sst2/plot_attention.py CONFIG --text "a gorgeous , witty film ." ...

``--rows`` are 1-based data rows of the config's dev file (header excluded); ``--text`` gives
sentences directly.  Each sentence is one row of the figure: its tokens (as the model sees
them: words or sentencepiece pieces) shaded by their attention weight, with the gold label
(for dev rows), the prediction and its probability.  Needs a model with
``model.pooling: attention``.  Config overrides (``key.sub=value``) may follow the options.
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
import torch  # noqa: E402

from seqkit.config import load_config  # noqa: E402
from seqkit.errors import SeqkitError  # noqa: E402
from seqkit.tasks.base import load_for_inference  # noqa: E402


def plot(results: list[dict], golds: list[str | None], out: Path, title: str) -> None:
    width = max(len(r["tokens"]) for r in results)
    fig, axes = plt.subplots(
        len(results), 1, figsize=(max(6.0, 0.8 * width), 0.95 * len(results) + 0.6), squeeze=False
    )
    for ax, res, gold in zip(axes[:, 0], results, golds):
        w = torch.tensor(res["attention"])
        ax.imshow(w.unsqueeze(0).numpy(), cmap="Reds", vmin=0.0, vmax=float(w.max()), aspect="auto")
        top = float(w.max())
        for j, tok in enumerate(res["tokens"]):
            color = "white" if float(w[j]) > 0.6 * top else "black"
            size = 8 if len(tok) < 9 else 6.5
            ax.text(j, 0, tok, ha="center", va="center", fontsize=size, color=color)
        ax.set_xlim(-0.5, width - 0.5)
        ax.set_xticks([])
        ax.set_yticks([])
        mark = "" if gold is None else (" ✓" if gold == res["label"] else f" ✗ (gold {gold})")
        ax.set_title(f"predicted {res['label']} p={res['prob']:.3f}{mark}", fontsize=8, loc="left")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("config")
    p.add_argument("overrides", nargs="*", metavar="key.sub=value")
    p.add_argument("--rows", type=int, nargs="*", default=[], help="1-based dev rows")
    p.add_argument("--text", nargs="*", default=[], help="sentences to plot")
    p.add_argument("--ckpt", help="checkpoint (default: OUTPUT_DIR/best.pt)")
    p.add_argument("--out", default="attention.png")
    args, extra = p.parse_known_args(argv)
    args.overrides += [e for e in extra if "=" in e]
    try:
        cfg = load_config(args.config, args.overrides)
        task, model = load_for_inference(cfg, args.ckpt)
        texts, golds = list(args.text), [None] * len(args.text)
        if args.rows:
            dev = task._read(cfg.data.dev, "data.dev")
            for r in args.rows:
                if not 1 <= r <= len(dev):
                    raise SeqkitError(f"--rows: {r} is not a row of {cfg.data.dev} (1..{len(dev)})")
                texts.append(dev[r - 1][0])
                golds.append(dev[r - 1][1])
        if not texts:
            raise SeqkitError("nothing to plot: give --rows and/or --text")
        with torch.inference_mode():
            results = task.explain(model, texts)
        if results[0]["attention"] is None:
            raise SeqkitError(f"{args.config}: the model has no attention pooling (model.pooling)")
        plot(results, golds, Path(args.out), f"attention pooling weights ({args.config})")
    except SeqkitError as e:
        print(f"plot_attention: error: {e}", file=sys.stderr)
        return 2
    for res, gold in zip(results, golds):
        top = sorted(zip(res["attention"], res["tokens"]), reverse=True)[:3]
        print(
            f"{res['label']}\t{res['prob']:.3f}\tgold={gold}\ttop: "
            + ", ".join(f"{t} {a:.2f}" for a, t in top)
            + "\t"
            + " ".join(res["tokens"])
        )
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
