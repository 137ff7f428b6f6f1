#!/usr/bin/env bash
# Sets up the environment and runs the whole test suite: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
echo "test: about 15 minutes on 2 cores; setup first installs missing Debian packages (redis-server, GStreamer's RTSP server, chromium) with apt-get" >&2
bash scripts/setup.sh test
exec .venv/bin/pytest -q "$@"
