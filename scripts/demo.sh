#!/usr/bin/env bash
# Set up (idempotent), then play the seed's story on the embedded default (scripts/demo_story.sh).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# The demo needs only the project's venv, not the Gradient CLIs used by the compatibility tests.
DATAKEEP_SKIP_TOOLS="${DATAKEEP_SKIP_TOOLS:-1}" bash scripts/setup.sh

export PATH="$ROOT/.venv/bin:$PATH"
exec bash scripts/demo_story.sh "$@"
