#!/usr/bin/env bash
# Creates ./.venv (once) and installs ctrkit with its test extras into it. Sourced by compare.sh and test.sh.
# torch is installed first as an explicit step, pinned to a CPU build where one is available
# (override with CTRKIT_TORCH_SPEC, e.g. CTRKIT_TORCH_SPEC="torch" to take pip's default build),
# so that a dependency never pulls a multi-GB CUDA build by accident.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CTRKIT_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment $VENV" >&2
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip >&2 || true
fi
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  echo "[setup] installing ${CTRKIT_TORCH_SPEC:-torch==2.13.0} (CPU build)" >&2
  "$VENV/bin/python" -m pip install -q "${CTRKIT_TORCH_SPEC:-torch==2.13.0}" >&2
fi
STAMP="$VENV/.ctrkit-installed"
if [ ! -f "$STAMP" ] || [ "$ROOT/pyproject.toml" -nt "$STAMP" ]; then
  echo "[setup] installing ctrkit and its test/plot extras" >&2
  "$VENV/bin/python" -m pip install -q -e "$ROOT[dev]" >&2
  touch "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
