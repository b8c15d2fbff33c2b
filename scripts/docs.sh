#!/usr/bin/env bash
# Build the documentation site into ./site/ with MkDocs in strict mode: a broken link, a missing page or a
# docstring griffe cannot read fails the build. Sets up ./.venv first (like test.sh). Extra arguments go to
# `mkdocs build` (e.g. --site-dir /tmp/site). `mkdocs serve` (after this) previews it with live reload.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"
exec mkdocs build --strict "$@"
