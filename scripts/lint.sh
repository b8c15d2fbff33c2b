#!/usr/bin/env bash
# The code habits CI keeps: ruff (lint + import order), mypy on ctrkit/, import-linter (the layering contract in
# pyproject.toml). Sets up ./.venv on first use, like test.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"
echo "[lint] ruff" >&2
ruff check ctrkit tests benchmarks examples scripts
echo "[lint] mypy ctrkit" >&2
mypy
echo "[lint] import-linter" >&2
lint-imports --no-cache
