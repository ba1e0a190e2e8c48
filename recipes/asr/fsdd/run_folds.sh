#!/usr/bin/env bash
# Leave-one-speaker-out on the four shared FSDD speakers: train one model per held-out speaker
# and print its digit accuracy (sentence accuracy: each utterance is one digit) and WER.
# Usage: bash recipes/asr/fsdd/run_folds.sh [config] [extra key=value overrides ...]
set -euo pipefail
cd "$(dirname "$0")/../../.."
cfg=${1:-recipes/asr/fsdd/config.yaml}
shift || true
for spk in george jackson nicolas yweweler; do
    seqkit train "$cfg" --fresh data.train=data/fsdd/heldout_$spk/train.jsonl \
        data.dev=data/fsdd/heldout_$spk/dev.jsonl train.output_dir=exp/asr_fsdd_$spk train.progress=false "$@" \
        > exp/asr_fsdd_$spk.log 2>&1
    python - "$spk" <<'PY'
import json, sys
spk = sys.argv[1]
m = json.load(open(f"exp/asr_fsdd_{spk}/dev_metrics.json"))
print(f"{spk}: digit accuracy {m['sentence_accuracy']:.4f}  WER {m['wer']:.4f}  ({m['utterances']} utterances, {m['method']})")
PY
done
