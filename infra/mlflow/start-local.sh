#!/usr/bin/env bash
# A local MLflow tracking server for one machine: sqlite store, artifacts in a local
# folder, bound to 127.0.0.1. For several writers use compose.yaml (README.md says why).
set -euo pipefail

usage() {
    cat <<'EOF'
usage: infra/mlflow/start-local.sh [--host HOST] [--port PORT] [--store DIR] [-- MLFLOW_SERVER_OPTIONS...]

Starts `mlflow server` in the foreground (Ctrl-C or SIGTERM stops it):
  backend   sqlite:///DIR/mlflow.db
  artifacts DIR/artifacts, served through the server (--serve-artifacts)
  lean      --workers 1, MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false (~0.5 GB, ~5 s to start)

options (environment variable in brackets):
  --host HOST   interface to bind [DAPT_MLFLOW_HOST, default 127.0.0.1]
  --port PORT   port [DAPT_MLFLOW_PORT, default 5000]
  --store DIR   database and artifacts [DAPT_MLFLOW_STORE, default ./mlflow-server]
  --            everything after it goes to `mlflow server` unchanged

mlflow is taken from $DAPT_VENV/bin/mlflow (default: the repository's .venv), else PATH.

examples:
  infra/mlflow/start-local.sh
  infra/mlflow/start-local.sh --port 5001 --store /data/mlflow
  infra/mlflow/start-local.sh -- --expose-prometheus /tmp/mlflow-metrics
EOF
}

die() {
    echo "start-local.sh: error: $*" >&2
    exit 2
}

host=${DAPT_MLFLOW_HOST:-127.0.0.1}
port=${DAPT_MLFLOW_PORT:-5000}
store=${DAPT_MLFLOW_STORE:-./mlflow-server}
while [ $# -gt 0 ]; do
    case $1 in
        --host | --port | --store)
            [ $# -ge 2 ] || die "$1 needs a value"
            case $1 in
                --host) host=$2 ;;
                --port) port=$2 ;;
                --store) store=$2 ;;
            esac
            shift 2
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        --)
            shift
            break
            ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
[[ $port =~ ^[0-9]+$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] || die "--port must be 1..65535, got '$port'"

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
venv=${DAPT_VENV:-$repo/.venv}
if [ -x "$venv/bin/mlflow" ]; then
    mlflow=$venv/bin/mlflow
elif mlflow=$(command -v mlflow); then
    :
else
    die "mlflow not found in $venv/bin or on PATH (run 'make install' or set DAPT_VENV)"
fi

mkdir -p "$store/artifacts"
# sqlite URIs need an absolute path; the server may also be started from another folder later.
store=$(cd "$store" && pwd)

if [ "$host" != 127.0.0.1 ] && [ "$host" != localhost ]; then
    echo "start-local.sh: warning: binding $host exposes an unauthenticated server beyond this machine" >&2
fi
cat <<EOF
MLflow tracking server on http://$host:$port (store: $store)
use it with:
  export MLFLOW_TRACKING_URI=http://$host:$port
EOF

# exec: the server becomes this process, so Ctrl-C and SIGTERM reach it (and mlflow
# forwards them to its uvicorn worker) instead of stopping a wrapper shell only.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
exec "$mlflow" server \
    --host "$host" --port "$port" --workers 1 \
    --backend-store-uri "sqlite:///$store/mlflow.db" \
    --artifacts-destination "$store/artifacts" --serve-artifacts \
    "$@"
