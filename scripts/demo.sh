#!/usr/bin/env bash
# `make demo`: a real private search on the digits workload, end to end, on local Ray:
# plan -> charge the ledger -> trials -> best configuration + privacy report (+ MLflow run).
set -euo pipefail
export TUNEDP_HOME="${TUNEDP_HOME:-$PWD/.tunedp}"
export RAY_USAGE_STATS_ENABLED=0 RAY_AUTH_MODE=disabled
T=.venv/bin/tunedp
CONFIG=search_spaces/example.yaml
LEDGER="$TUNEDP_HOME/ledgers/digits.sqlite"

if [ ! -e "$LEDGER" ]; then
  $T budget init --dataset digits --epsilon 10 --delta 1e-5
fi
# The demo may be run many times; a real ledger is never reset, but an exhausted
# *demo* ledger is set aside (kept, renamed) so the demo keeps working.
if [ "$($T plan --config "$CONFIG" --json | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["admissible"])')" = "False" ]; then
  aside="$LEDGER.exhausted-$(date +%Y%m%d%H%M%S)"
  echo "demo ledger is spent; keeping it as $aside and opening a fresh demo ledger"
  mv "$LEDGER" "$aside"
  $T budget init --dataset digits --epsilon 10 --delta 1e-5
fi

$T plan --config "$CONFIG"
$T search --config "$CONFIG" --output "runs/demo-$(date +%Y%m%d-%H%M%S)"
$T budget show --dataset digits
