#!/usr/bin/env bash
# Creates ./.venv (once) and installs ctrkit with its test extras into it. Sourced by compare.sh and test.sh.
# torch is installed first as an explicit step, pinned to a CPU build where one is available
# (override with CTRKIT_TORCH_SPEC, e.g. CTRKIT_TORCH_SPEC="torch" to take pip's default build),
# so that a dependency never pulls a multi-GB CUDA build by accident.
# TorchRec (sharded embedding tables, docs/sharding.md) is installed too with CTRKIT_TORCHREC=1 (the test command
# sets it) or when this script is run as `bash scripts/setup.sh --torchrec`.
set -euo pipefail
if [ "${BASH_SOURCE[0]}" = "$0" ] && [ "${1:-}" = "--torchrec" ]; then CTRKIT_TORCHREC=1; fi
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
# TorchRec's own metadata asks for `fbgemm-gpu`, whose build on the package index is CUDA-only and does not load on
# a CPU torch; so its dependencies come from the extra (with the CPU build fbgemm-gpu-cpu, pinned to the version
# that loads with torch 2.13) and torchrec itself without dependencies. A failure leaves ctrkit usable: the
# sharding tests then skip, saying why.
TR_STAMP="$VENV/.ctrkit-torchrec"
if [ "${CTRKIT_TORCHREC:-0}" = "1" ] && { [ ! -f "$TR_STAMP" ] || [ "$ROOT/pyproject.toml" -nt "$TR_STAMP" ]; }; then
  echo "[setup] installing TorchRec (ctrkit[torchrec]: torchrec==1.9.2 with fbgemm-gpu-cpu==1.8.0)" >&2
  if "$VENV/bin/python" -m pip install -q -e "$ROOT[torchrec]" >&2 \
      && "$VENV/bin/python" -m pip install -q --no-deps "torchrec==1.9.2" >&2 \
      && "$VENV/bin/python" -c "import torchrec" >/dev/null 2>&1; then
    touch "$TR_STAMP"
  else
    echo "[setup] WARNING: TorchRec could not be installed or does not import; embedding_backend='torchrec' is" \
         "unavailable and its tests will skip." >&2
  fi
fi
export PATH="$VENV/bin:$PATH"
