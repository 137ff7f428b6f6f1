#!/usr/bin/env bash
# Sets up .venv with the package: `bash scripts/setup.sh` for running it (the package with its models
# extra; no system packages, no root), `bash scripts/setup.sh test` for the tests too (Debian packages
# and the test extra). Versions follow deploy/requirements.lock, as in the images. Whatever is already
# satisfied is skipped: Debian packages that are installed, a venv installed from this very pyproject.toml
# and lock.
set -euo pipefail
cd "$(dirname "$0")/.."
want="${1:-run}"
if [ "$want" = test ]; then
  # redis-server for the distributed tests, GStreamer's RTSP server for the live tests,
  # chromium for the status page test, procps (ps) for the test that no password shows in it.
  debs="redis-server python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp gstreamer1.0-plugins-good
        gstreamer1.0-plugins-bad chromium procps"
  missing=$(for deb in $debs; do dpkg-query -W -f='${Status}' "$deb" 2>/dev/null | grep -q "ok installed" || echo "$deb"; done)
  if [ -n "$missing" ]; then
    if command -v apt-get >/dev/null 2>&1; then
      sudo_cmd=""
      [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
      echo "setup: installing Debian packages for the tests with apt-get${sudo_cmd:+ (through sudo)}: $(echo $missing)" >&2
      $sudo_cmd apt-get update -qq
      # shellcheck disable=SC2086
      DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq $missing >/dev/null
    else
      echo "setup: install these Debian packages for the tests: $missing" >&2
    fi
  fi
  extras="[test]"
else
  extras="[models]"
fi
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=".venv/.installed-$want"
digest=$(cat pyproject.toml deploy/requirements.lock | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -c deploy/requirements.lock -e ".$extras"
  echo "$digest" > "$stamp"
fi
