"""Ctrl-C mid-job: the output is finalized as a valid shorter video, and the message says so."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from media import make_video, probe

ROOT = Path(__file__).resolve().parent.parent


def test_ctrl_c_keeps_a_valid_partial_video(tmp_path):
    source = make_video(tmp_path / "long.mp4", frames=400)
    output = tmp_path / "out.mp4"
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'tests'}")
    job = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamer",
            "process",
            str(source),
            "-o",
            str(output),
            "--model",
            "tests.models:slow",
            "--batch",
            "2",
        ],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 60
    while time.time() < deadline and not any(".part" in path.name for path in tmp_path.iterdir()):
        time.sleep(0.1)
    time.sleep(1.5)
    job.send_signal(signal.SIGINT)
    _, err = job.communicate(timeout=60)
    assert job.returncode == 130, err
    partial = tmp_path / "out.partial.mp4"
    assert f"kept a valid shorter video at {partial}" in err
    assert not output.exists()
    frames = probe(partial)["frames"]
    assert 0 < frames < 400
    assert f"interrupted after {frames} frames" in err
