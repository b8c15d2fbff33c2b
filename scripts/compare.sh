#!/usr/bin/env bash
# The main job: set up (first run only), then compare Single-Task / Shared-Bottom / OMoE / MMoE (and every
# other registered multi-task model) on the bundled Census-Income data. Extra arguments go to `ctrkit compare`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
exec ctrkit compare "$@"
