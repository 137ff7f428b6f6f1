"""Quiet logs: TensorFlow's C++ start-up lines hidden (kept with -v), progress lines off a terminal,
mistyped options with a suggestion, options checked against the model before it loads."""

import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from media import make_video

ROOT = Path(__file__).resolve().parent.parent
NATIVE = re.compile(r"absl::InitializeLog|^[IWE]\d{4} \d\d:\d\d:|oneDNN|cudart|cuInit", re.M)

FAKE_TF = """
import os, sys
from streamer.progress import native_logs_hidden
with native_logs_hidden():
    os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
    os.write(2, b"I0000 00:00:1795986375.907816    3556 port.cc:153] oneDNN custom operations are on.\\n")
    os.write(2, b"E0000 00:00:1795986384.070177    3556 cuda_platform.cc:52] failed call to cuInit: 303\\n")
    print("a line of our own", file=sys.stderr, flush=True)
    os.write(2, b"a partial progress redraw\\r")
print("after", file=sys.stderr)
"""


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={**os.environ, **env},
    )


def test_native_lines_are_filtered_and_kept_with_verbose():
    quiet = run_python(FAKE_TF)
    assert quiet.returncode == 0, quiet.stderr
    assert not NATIVE.search(quiet.stderr), quiet.stderr
    assert "a line of our own\n" in quiet.stderr and "a partial progress redraw" in quiet.stderr
    assert quiet.stderr.endswith("after\n")
    verbose = run_python(FAKE_TF, STREAMER_VERBOSE="1")
    assert len(NATIVE.findall(verbose.stderr)) >= 3


def test_a_real_run_prints_no_tensorflow_lines(tmp_path):
    source = make_video(tmp_path / "in.mp4", frames=4)
    done = subprocess.run(
        [sys.executable, "-m", "streamer", "process", str(source), "-o", str(tmp_path / "o.mp4"), "-q"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env={key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr


def test_progress_lines_when_stderr_is_not_a_terminal(tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv("STREAMER_PROGRESS_EVERY", "0.2")
    source = make_video(tmp_path / "in.mp4", frames=30)
    # one model call at a time: 15 calls of at least 50 ms, so the job outlasts several 0.2 s progress steps
    slow = ["--model", "tests.models:slow", "--batch", "2", "--parallel-batches", "1"]
    code, _, err = run_cli("process", source, "-o", tmp_path / "o.mp4", *slow)
    assert code == 0, err
    lines = re.findall(r"^streamer: processing: (\d+)/30 frames, ([\d.]+) fps(, ETA \d+:\d\d)?$", err, re.M)
    assert len(lines) >= 2, err
    assert [int(done) for done, *_ in lines] == sorted(int(done) for done, *_ in lines)
    assert any(eta for *_, eta in lines)
    monkeypatch.setenv("STREAMER_PROGRESS_EVERY", "0")  # every step's line, however short
    code, _, err = run_cli(
        "process", source, "-o", tmp_path / "j.mp4", "--model", "tests.models:slow", "--log-format", "json", "-y"
    )
    assert code == 0, err
    entries = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert len(entries) == len(err.splitlines())  # every line on stderr is a JSON object
    phases = [entry["phase"] for entry in entries if "phase" in entry]
    assert phases == ["opening input", "loading model tests.models:slow", "warming up", "processing"]
    counts = [entry for entry in entries if "frames" in entry and "phase" not in entry and "total_s" not in entry]
    assert counts and all(entry["message"] == "processing" and "fps" in entry for entry in counts)
    (closing,) = [entry for entry in entries if "total_s" in entry]  # the summary, as JSON
    assert closing["frames"] == 30 and closing["output"] == str(tmp_path / "j.mp4")
    assert closing["total_s"] >= closing["seconds"] + closing["load_s"] - 0.01
    code, _, err = run_cli("process", source, "-o", tmp_path / "q.mp4", "--model", "tests.models:slow", "-q")
    assert code == 0 and err == ""


def test_a_mistyped_option_shows_the_command_usage_and_the_closest_name(tmp_path, run_cli, capsys):
    with pytest.raises(SystemExit) as stopped:
        run_cli("process", tmp_path / "in.mp4", "--detectoins", "d.jsonl")
    err = capsys.readouterr().err
    assert stopped.value.code == 2
    assert "usage: streamer process" in err
    assert "--detectoins: did you mean --detections?" in err


def test_verbosity_and_log_format_after_the_command(tmp_path, run_cli):
    source = make_video(tmp_path / "in.mp4", frames=2)
    code, _, err = run_cli("process", source, "-o", tmp_path / "o.mp4", "--model", "tests.models:left_half", "-q", "-v")
    assert code == 0, err
    assert logging.getLogger().level == logging.INFO
    code, _, err = run_cli("process", source, "--effect", "instances", "--log-format", "json", "--log-level", "error")
    assert code == 2
    assert json.loads(err.strip().splitlines()[-1])["level"] == "error"
    assert logging.getLogger().level == logging.ERROR


def test_options_the_model_cannot_serve_are_refused_before_it_loads(tmp_path, run_cli):
    source = make_video(tmp_path / "in.mp4", frames=2)
    started = time.monotonic()
    code, _, err = run_cli("process", source, "--model", "unet", "--effect", "instances")
    assert code == 2 and "--effect instances: model 'unet' finds no instances" in err
    code, _, err = run_cli("process", source, "--model", "unet", "--classes", "car")
    assert code == 2 and "--classes car: not classes of this model; it has road" in err
    code, _, err = run_cli("process", source, "--model", "maskrcnn", "--classes", "balloon")
    assert code == 2 and "--classes balloon: not classes of this model; it has square, circle, triangle" in err
    assert time.monotonic() - started < 5  # no model was loaded


def test_the_summary_tells_loading_from_processing(tmp_path, run_cli, monkeypatch):
    """A model that takes 1 s to load: the summary gives processing time and wall time apart, --json has load_s,
    total_s and the output's absolute path, and its progress still goes to stderr."""
    monkeypatch.setenv("STREAMER_PROGRESS_EVERY", "0.2")
    monkeypatch.chdir(tmp_path)
    source = make_video(tmp_path / "in.mp4", frames=20)
    model = ("--model", "tests.models:slow_to_load")
    code, out, err = run_cli("process", source, "-o", "out.mp4", *model, "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["output"] == str(tmp_path / "out.mp4") and summary["frames"] == 20
    assert summary["load_s"] >= 1.0 and summary["seconds"] < summary["load_s"]
    assert summary["total_s"] == pytest.approx(summary["load_s"] + summary["seconds"], abs=0.01)
    assert "streamer: loading model tests.models:slow_to_load" in err  # a step of 1 s is named
    code, _, err = run_cli("process", source, "-o", "text.mp4", *model)
    assert code == 0, err
    line = err.strip().splitlines()[-1]
    found = re.match(r"20 frames in ([\d.]+) s \([\d.]+ fps\) → (\S+); ([\d.]+) s in all, of which ([\d.]+) s", line)
    assert found, line
    assert found[2] == str(tmp_path / "text.mp4") and float(found[4]) >= 1.0 > float(found[1])


def test_the_eta_counts_from_the_first_frames_not_from_the_start(capsys):
    from streamer.progress import ProgressBar

    with ProgressBar("processing", every=0) as bar:
        bar.phase("loading model")
        bar(0, 100)
        time.sleep(0.6)  # the model loads: no frames, no ETA
        bar.phase("processing")
        bar(0, 100)
        time.sleep(0.1)
        bar(20, 100)
        time.sleep(0.1)
        bar(40, 100)
    lines = capsys.readouterr().err.splitlines()
    assert lines[:2] == ["streamer: loading model", "streamer: processing"]
    etas = [int(m[1]) * 60 + int(m[2]) for m in (re.search(r"ETA (\d+):(\d\d)", line) for line in lines) if m]
    assert etas and max(etas) <= 1  # 200 fps once the frames flow: under a second left, not minutes
