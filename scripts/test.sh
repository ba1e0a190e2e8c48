#!/usr/bin/env bash
# Set up .venv if needed and run the test suite (what CI runs, via .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
exec python -m pytest "$@"
