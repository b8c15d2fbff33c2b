#!/usr/bin/env bash
# Set up (first run only), build the docs site in strict mode (a broken reference fails here; skip with
# CTRKIT_SKIP_DOCS=1), then run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
export CTRKIT_TORCHREC="${CTRKIT_TORCHREC:-1}"   # the sharded-tables tests need TorchRec
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"
if [ "${CTRKIT_SKIP_DOCS:-0}" != "1" ]; then
  echo "[test] mkdocs build --strict" >&2
  mkdocs build --strict --quiet
  export CTRKIT_DOCS_BUILT=1   # tests/test_docs.py then does not build the site a second time
fi
exec python -m pytest -q -p no:cacheprovider "$@"
