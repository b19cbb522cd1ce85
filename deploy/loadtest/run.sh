#!/usr/bin/env bash
# Runs the ImageTrust ghz load tests against a gateway.
#   deploy/loadtest/run.sh [-H host:port] [config ...]        (default: every *.json/*.toml here)
# Generates the binary request data first (deploy/loadtest/data/, from imagetrust/samples or
# IMAGES="a.jpg b.jpg"). Needs ghz (https://ghz.sh) on PATH; where it cannot be installed,
# USE_PYTHON=1 runs the same configs with the Python equivalent (bench/bench_loadgen.py).
# Against a cluster: kubectl -n imagetrust port-forward svc/gateway 50051 (one pod only:
# port-forward pins one connection), or run ghz in-cluster against gateway:50051.
set -euo pipefail
cd "$(dirname "$0")/../.."
HOST=""
if [ "${1:-}" = "-H" ]; then HOST="$2"; shift 2; fi
PYTHON="${PYTHON:-.venv/bin/python}"
configs=("$@")
[ ${#configs[@]} -gt 0 ] || configs=(deploy/loadtest/*.json deploy/loadtest/*.toml)

# shellcheck disable=SC2086 # IMAGES is a list of paths on purpose
"$PYTHON" deploy/loadtest/make_data.py ${IMAGES:-} --out deploy/loadtest/data

mkdir -p deploy/loadtest/results
for config in "${configs[@]}"; do
  name="$(basename "${config%.*}")"
  echo "== $name"
  if [ "${USE_PYTHON:-0}" = "1" ]; then
    "$PYTHON" -m bench.bench_loadgen --ghz-config "$config" ${HOST:+--target "$HOST"} | tee "deploy/loadtest/results/$name.txt"
  else
    if ! command -v ghz >/dev/null 2>&1; then
      echo "ghz not found: install it (https://ghz.sh/docs/install) or set USE_PYTHON=1" >&2
      exit 1
    fi
    ghz --config "$config" ${HOST:+"$HOST"} | tee "deploy/loadtest/results/$name.txt"
  fi
done
