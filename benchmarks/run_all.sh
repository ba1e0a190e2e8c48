#!/usr/bin/env bash
# Run every benchmark with its default settings, one after the other (results: benchmarks/README.md).
# Needs the prepared data (data/multi30k, data/an4) and the recipe checkpoints named in each
# section of benchmarks/README.md; the peer benchmarks create their venvs under .bench_venvs/.
# Not timed as a whole (nmt_peers.py alone takes ~30 min on 2 cores).  Usage: bash benchmarks/run_all.sh [LOGDIR]
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
LOG="${1:-exp/bench_logs}"
mkdir -p "$LOG"
status=0
for b in dense_speed encoder_speed beam_speed ctc_decode_speed ctc_peers nmt_peers asr_peers machine_limit step_ablation kernel_speed cost_growth bf16 \
         ddp_equivalence soak kill_resume; do
  echo "== $b ($(date +%T))"
  if python "benchmarks/$b.py" > "$LOG/$b.log" 2>&1; then
    tail -n 15 "$LOG/$b.log"
  else
    echo "!! $b failed (exit $?); see $LOG/$b.log"; status=1
  fi
done
exit $status
