"""Commands that need no model start without TensorFlow: each runs for real in a fresh interpreter, which then
reports the modules it imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from redis_fixtures import free_port

ROOT = Path(__file__).resolve().parent.parent
MODEL_MODULES = ("tensorflow", "keras", "torch", "tf_keras", "openvino", "onnxruntime")
FRAME_MODULES = ("numpy", "cv2", "av", "PIL")  # what touching frames needs; a command on jobs only does not

# Runs `streamer ARGV` in this interpreter; with a URL, asks for it once the command serves it, then
# interrupts the command (Ctrl-C). Prints the exit code, the model modules and the frame modules imported, as JSON.
RUNNER = """
import json, os, signal, sys, threading, time, urllib.request

argv, url = json.loads(sys.argv[1]), sys.argv[2]
answered = []

def ask():
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                answered.append(response.status)
                break
        except OSError:
            time.sleep(0.1)
    os.kill(os.getpid(), signal.SIGINT)

if url:
    threading.Thread(target=ask, daemon=True).start()
from streamer.cli import main

code = main(argv)
print(json.dumps({
    "code": code,
    "answered": answered,
    "modules": [m for m in MODULES if m in sys.modules],
    "frame_modules": [m for m in FRAMES if m in sys.modules],
}))
"""


def run(argv: list[str], url: str = "", cwd: Path | None = None) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    script = f"MODULES = {MODEL_MODULES!r}\nFRAMES = {FRAME_MODULES!r}\n" + RUNNER
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(argv), url],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd or ROOT,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_commands_without_a_model_do_not_import_tensorflow(redis_server, tmp_path):
    url = redis_server.url
    submitted = run(["submit", str(tmp_path / "in.mp4"), "-o", str(tmp_path / "out.mp4"), "--redis", url])
    assert submitted["code"] == 0 and submitted["modules"] == [] and submitted["frame_modules"] == []
    status = run(["status", "--json", "--redis", url])
    assert status["code"] == 0 and status["modules"] == [] and status["frame_modules"] == []
    port = free_port()
    served = run(["serve", "--port", str(port), "--no-auth", "--redis", url], url=f"http://127.0.0.1:{port}/api/status")
    assert served["answered"] == [200] and served["modules"] == [] and served["frame_modules"] == []
    sample = run(["sample", "road", "-o", str(tmp_path / "road.mp4"), "--seconds", "0.2", "--size", "64x48", "-q"])
    assert sample["code"] == 0 and sample["modules"] == [] and (tmp_path / "road.mp4").stat().st_size > 0


@pytest.mark.parametrize(
    "argv", [["--help"], ["status", "--help"], ["-v", "--log-format", "json", "serve", "--help"], ["cancel", "-h"]]
)
def test_help_lists_every_command_as_the_full_parser_does(argv, capsys):
    """Only the command named is built in full; the others keep their line in --help."""
    from streamer.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser(argv).parse_args(argv)
    lazy = capsys.readouterr().out
    with pytest.raises(SystemExit):
        build_parser().parse_args(argv)
    assert lazy == capsys.readouterr().out


def test_command_is_found_after_global_options():
    from streamer.cli import command_of

    assert command_of(["--log-format", "json", "-v", "status", "x"]) == "status"
    assert command_of(["--log-level", "debug", "process", "status.mp4"]) == "process"
    assert command_of(["--version"]) == ""
    assert command_of(["proces", "x"]) is None
