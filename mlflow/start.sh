#!/usr/bin/env bash
# Start the MLflow dashboard on this folder's sqlite store (what `make mlflow` runs).
# Usage: bash mlflow/start.sh [--port P] [--host H]   (defaults: 127.0.0.1:5000)
# Same server as `tunedp ui`. Ctrl-C stops it. $TUNEDP_MLFLOW_DIR moves the store.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
store="$(realpath -m "${TUNEDP_MLFLOW_DIR:-$here}")"
host="127.0.0.1"
port="5000"
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    --host) host="$2"; shift 2 ;;
    *) echo "error: unknown argument $1 (use --port P, --host H)" >&2; exit 2 ;;
  esac
done

python="$repo/.venv/bin/python"
[ -x "$python" ] || python="$(command -v python3)"

mkdir -p "$store/artifacts"
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
echo "MLflow dashboard: http://$host:$port  (store $store/mlflow.db; Ctrl-C stops it)"
# The server (and the uvicorn worker it starts) runs in its own session, so
# Ctrl-C reaches only this script, which stops the whole group with SIGTERM:
# uvicorn then shuts down cleanly instead of dying mid-request.
setsid "$python" -m mlflow server \
  --backend-store-uri "sqlite:///$store/mlflow.db" \
  --default-artifact-root "$store/artifacts" \
  --host "$host" --port "$port" --workers 1 &
server=$!
stop() {
  kill -TERM -- "-$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  echo "MLflow dashboard stopped"
}
trap 'stop; exit 0' INT TERM
wait "$server"
