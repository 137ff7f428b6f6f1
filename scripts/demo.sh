#!/usr/bin/env bash
# Sets up the environment, renders a synthetic drive and segments its road with the demo U-Net.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p demo
.venv/bin/streamer sample road -o demo/road.mp4 --seconds 10 -y
.venv/bin/streamer process demo/road.mp4 -o demo/road_overlay.mp4 -y
cat <<'NEXT'
open demo/road_overlay.mp4 to see the road overlay. Next, with `streamer` on the PATH:
  . .venv/bin/activate    # (or call .venv/bin/streamer)
  streamer sample shapes -o demo/shapes.mp4 -y --seconds 4
  streamer process demo/shapes.mp4 -o demo/shapes_instances.mp4 -y --model maskrcnn --effect instances
Your own footage needs your own weights: streamer process VIDEO --model maskrcnn --weights mask_rcnn_coco.h5
NEXT
