#!/usr/bin/env bash
# The main job on the embedded default: set up .venv, train the joint slot-filling + intent
# model on the shipped toy corpus, evaluate on its held-out dev part, try a prediction.
# Writes exp/toy_slots/{best.pt,last.pt,dev.hyp.seq.out,dev.hyp.label,dev_metrics.json,learning_curve.png}.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
seqkit train recipes/slot_filling/toy/config.yaml --fresh
echo "--- dev slot F1 (seqkit score f1) on the predictions file:"
seqkit score f1 --ref recipes/slot_filling/toy/data/dev.seq.out --hyp exp/toy_slots/dev.hyp.seq.out | head -n 3
echo "--- predict from stdin:"
echo "show me flights from boston to denver next tuesday" | seqkit predict recipes/slot_filling/toy/config.yaml
