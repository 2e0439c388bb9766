#!/usr/bin/env bash
# `make demo`: plan the shipped example search (later: run it end to end).
set -euo pipefail
export TUNEDP_HOME="${TUNEDP_HOME:-$PWD/.tunedp}"
T=.venv/bin/tunedp
if [ ! -e "$TUNEDP_HOME/ledgers/digits.sqlite" ]; then
  $T budget init --dataset digits --epsilon 10 --delta 1e-5
fi
$T plan --config search_spaces/example.yaml
$T budget show --dataset digits
