"""A seeded corpus of damaged, odd and hostile inputs: every case ends within its bound, without a traceback,
with one clear line, a warning when the input was cut short, and a playable output when it exits 0."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from media import fuzz_corpus, make_video, probe, remux, run_case

ROOT = Path(__file__).resolve().parent.parent
BOUND = 10.0  # seconds any one case may take (reads time out after 1 s)

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    cases = fuzz_corpus(folder / "corpus", seed=2024)
    results = []
    for number, case in enumerate(cases):
        output = folder / f"out{number}.mkv"
        results.append((case, run_case(case, output), output))
    return results


def test_corpus_is_large_and_varied(outcomes):
    kinds = {case.kind for case, _, _ in outcomes}
    assert len(outcomes) >= 250
    assert {"truncated", "flipped", "header", "timestamps", "nonvideo", "empty", "path", "whole"} <= kinds


def test_no_traceback_and_no_hang(outcomes):
    for case, outcome, _ in outcomes:
        assert outcome.traceback is None, f"{case.name}:\n{outcome.traceback}"
        assert "Traceback" not in outcome.stderr, case.name
        assert outcome.code in (0, 2), (case.name, outcome.code, outcome.stderr)
        assert outcome.seconds < BOUND, (case.name, outcome.seconds)


def test_failures_say_one_clear_line(outcomes):
    for case, outcome, output in outcomes:
        if outcome.code == 0:
            continue
        lines = outcome.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("streamer: error: "), (case.name, outcome.stderr)
        assert "free space" not in lines[0] and "check the server" not in lines[0], (case.name, lines[0])
        assert not output.exists()
        assert not [path for path in output.parent.iterdir() if ".part" in path.name], case.name


def test_what_exits_0_plays(outcomes):
    for case, outcome, output in outcomes:
        if outcome.code != 0:
            continue
        written = probe(output)
        assert written["frames"] == outcome.summary["frames"] > 0, case.name
        assert all(b > a for a, b in zip(written["times"], written["times"][1:])), case.name


def test_whole_and_retimed_inputs_are_written(outcomes):
    for case, outcome, _ in outcomes:
        if case.kind == "whole":
            assert outcome.code == 0 and outcome.summary["frames"] == case.whole, case.name
            assert outcome.summary["warning"] is None, (case.name, outcome.summary)
        if case.kind == "timestamps":  # FFmpeg transcodes these: so do we, repairing the timestamps
            assert outcome.code == 0, (case.name, outcome.stderr)


def test_truncation_is_warned(outcomes):
    truncated = [(case, outcome) for case, outcome, _ in outcomes if case.kind == "truncated" and outcome.code == 0]
    assert len(truncated) >= 20
    for case, outcome in truncated:
        if outcome.summary["frames"] < case.whole:
            assert outcome.summary["warning"], case.name
            warned = [line for line in outcome.stderr.splitlines() if line.startswith("streamer: warning:")]
            assert len(warned) == 1, (case.name, outcome.stderr)


# A handful through the real command: a cut file, a symlink loop, a FIFO with no writer, a truncated file
# that plays. Started together, so their start-up overlaps.


def test_through_the_command_line(tmp_path):
    whole = remux(make_video(tmp_path / "in.mp4", frames=30), tmp_path / "fs.mp4", {"movflags": "+faststart"})
    (tmp_path / "cut.mp4").write_bytes(whole.read_bytes()[:400])
    (tmp_path / "loop.mp4").symlink_to("loop.mp4")
    os.mkfifo(tmp_path / "fifo.ts")
    long = make_video(tmp_path / "long.mkv", frames=60)
    (tmp_path / "half.mkv").write_bytes(long.read_bytes()[: long.stat().st_size // 2])
    runs = {
        "cut": (["cut.mp4"], 2, "cut.mp4"),
        "loop": (["loop.mp4"], 2, "symbolic link loop"),
        "fifo": (["fifo.ts", "--timeout", "1"], 2, "no data after 1 s"),
        "half": (["half.mkv", "--json"], 0, "streamer: warning:"),
    }
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'tests'}")
    jobs = {}
    started = time.monotonic()
    for name, (args, _, _) in runs.items():
        command = [sys.executable, "-m", "streamer", "process", *args, "-o", f"out-{name}.mkv", "--model", "identity"]
        jobs[name] = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for name, job in jobs.items():
        try:
            out, err = job.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            job.send_signal(signal.SIGKILL)
            raise AssertionError(f"{name}: hung") from None
        _, code, says = runs[name]
        err = err.decode()
        assert job.returncode == code, (name, err)
        assert "Traceback" not in err and says in err, (name, err)
        if code:
            assert err.count("\n") == 1, (name, err)
    assert json.loads(out)["warning"]
    assert time.monotonic() - started < 60
    assert not [path for path in tmp_path.iterdir() if ".part" in path.name]
