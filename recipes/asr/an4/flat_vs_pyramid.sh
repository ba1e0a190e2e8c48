#!/usr/bin/env bash
# Flat 4-layer BiLSTM vs pyramidal BiLSTM (Listen-Attend-Spell listener) on AN4 at the same
# training budget: CTC only, 10 ms log-mel frames into the encoder (no frame stacking), no speed
# perturbation, 20 epochs, 1 thread each.  Both run at once (one per core) and write
# exp/an4_cmp_{flat,pyramid}/ (dev_metrics.json, metrics.jsonl with each epoch's train seconds).
# Usage: bash recipes/asr/an4/flat_vs_pyramid.sh [extra key=value overrides ...]
set -euo pipefail
cd "$(dirname "$0")/../../.."
common=(model.front=none model.ctc_weight=1.0 decode.method=ctc_greedy "data.speed_perturb=[1.0]"
        train.epochs=20 train.max_tokens=2500 train.num_threads=1 train.progress=false train.max_minutes=null)
export OMP_NUM_THREADS=1
seqkit train recipes/asr/an4/config.yaml --fresh "${common[@]}" model.encoder=blstm model.enc_layers=4 \
    train.output_dir=exp/an4_cmp_flat "$@" > exp/an4_cmp_flat.log 2>&1 &
flat=$!
seqkit train recipes/asr/an4/config.yaml --fresh "${common[@]}" model.encoder=pyramidal model.enc_layers=4 \
    model.reductions=2 train.output_dir=exp/an4_cmp_pyramid "$@" > exp/an4_cmp_pyramid.log 2>&1
wait $flat
python - <<'PY'
import json, statistics
for name in ("flat", "pyramid"):
    rows = [json.loads(line) for line in open(f"exp/an4_cmp_{name}/metrics.jsonl")]
    per_epoch = {}
    for r in rows:
        if r["kind"] == "train":
            per_epoch[r["epoch"]] = per_epoch.get(r["epoch"], 0.0) + r["sec"]
    dev = [r for r in rows if r["kind"] == "dev"]
    m = json.load(open(f"exp/an4_cmp_{name}/dev_metrics.json"))
    print(f"{name}: median train s/epoch {statistics.median(per_epoch.values()):.1f} over {len(per_epoch)} epochs, "
          f"total {sum(per_epoch.values()):.0f} s; best dev greedy WER {min(r['wer'] for r in dev):.4f}; "
          f"final ({m['method']}) WER {m['wer']:.4f} CER {m['cer']:.4f}")
PY
