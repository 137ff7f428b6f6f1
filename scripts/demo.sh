#!/usr/bin/env bash
# Sets up the environment, renders a synthetic drive and segments its road with the demo U-Net.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p demo
.venv/bin/streamer sample road -o demo/road.mp4 --seconds 10 -y
.venv/bin/streamer process demo/road.mp4 -o demo/road_overlay.mp4 -y
echo "open demo/road_overlay.mp4 to see the road overlay"
