#!/usr/bin/env bash
# Sets up the environment and runs the whole test suite: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
exec .venv/bin/pytest -q "$@"
