#!/usr/bin/env bash
# Set up (first run only), then run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"
exec python -m pytest -q -p no:cacheprovider "$@"
