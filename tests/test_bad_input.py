"""Bad input: one clear line, a non-zero exit, no traceback, no file that looks complete."""

import errno
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import av
import pytest
from media import damage_mp4_table, make_video, probe, remux, swap_ts_chunks

ROOT = Path(__file__).resolve().parent.parent


def leftovers(folder):
    return sorted(path.name for path in folder.iterdir() if ".part" in path.name)


def expect_error(run_cli, *args, says):
    code, out, err = run_cli(*args)
    assert code != 0
    assert err.startswith("streamer: error:") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for text in says:
        assert text in err, err
    return err


def test_missing_file(tmp_path, run_cli):
    expect_error(run_cli, "process", tmp_path / "nope.mp4", says=["nope.mp4", "no such file"])
    assert list(tmp_path.iterdir()) == []


def test_not_a_video(tmp_path, run_cli):
    text = tmp_path / "notes.mp4"
    text.write_text("hello, not a video\n" * 50)
    expect_error(run_cli, "process", text, "--model", "identity", says=["notes.mp4", "not a readable video"])
    assert leftovers(tmp_path) == [] and not (tmp_path / "notes_overlay.mp4").exists()


def test_audio_only_file_has_no_video(tmp_path, run_cli):
    path = tmp_path / "sound.m4a"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=48000)
        frame = av.AudioFrame(format="fltp", layout="stereo", samples=1024)
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        frame.sample_rate, frame.pts = 48000, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    expect_error(run_cli, "process", path, "--model", "identity", says=["no video stream"])


def test_zero_frames(tmp_path, run_cli):
    path = tmp_path / "empty.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()
    assert path.stat().st_size > 0
    expect_error(run_cli, "process", path, "--model", "identity", says=["no video frames"])
    assert leftovers(tmp_path) == []


def test_truncated_file_keeps_decoded_frames_with_a_warning(tmp_path, run_cli):
    source = make_video(tmp_path / "whole.mkv", frames=60, width=128, height=96)
    data = source.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    code, out, err = run_cli("process", cut, "-o", tmp_path / "out.mp4", "--model", "identity")
    assert code == 0, err
    frames = probe(tmp_path / "out.mp4")["frames"]
    assert 5 < frames < 60
    assert f"{frames} frames in" in err


def test_unknown_model_and_effect(tmp_path, run_cli):
    source = make_video(tmp_path / "in.mp4", frames=3)
    expect_error(run_cli, "process", source, "--model", "resnet", says=["unknown model 'resnet'", "unet"])
    expect_error(run_cli, "process", source, "--effect", "blur", says=["unknown effect 'blur'", "overlay"])
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.mp4"]


def test_output_folder_missing(tmp_path, run_cli):
    source = make_video(tmp_path / "in.mp4", frames=3)
    expect_error(run_cli, "process", source, "-o", tmp_path / "no" / "out.mp4", says=["does not exist"])


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_output_folder_not_writable(tmp_path, run_cli):
    source = make_video(tmp_path / "in.mp4", frames=3)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    expect_error(run_cli, "process", source, "-o", locked / "out.mp4", says=["not writable"])


def test_write_failure_leaves_nothing(tmp_path, run_cli):
    source = make_video(tmp_path / "in.mp4", frames=3)
    expect_error(run_cli, "process", source, "-o", "/proc/out.mp4", "--model", "identity", says=["/proc/out.mp4"])
    assert not os.path.exists("/proc/out.mp4")


def test_existing_output_needs_y(tmp_path, run_cli):
    source = make_video(tmp_path / "in.mp4", frames=3)
    output = tmp_path / "out.mp4"
    output.write_bytes(b"keep me")
    expect_error(run_cli, "process", source, "-o", output, "--model", "identity", says=["already exists", "-y"])
    assert output.read_bytes() == b"keep me"
    code, _, err = run_cli("process", source, "-o", output, "--model", "identity", "-y", "-q")
    assert code == 0, err
    assert probe(output)["frames"] == 3


# --- damaged, odd and hostile inputs -------------------------------------------------------------------------


def test_faststart_file_cut_inside_its_header(tmp_path, run_cli):
    whole = remux(make_video(tmp_path / "in.mp4", frames=24), tmp_path / "fs.mp4", {"movflags": "+faststart"})
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[:300])
    expect_error(run_cli, "process", cut, "--model", "identity", says=["cut.mp4"])
    assert leftovers(tmp_path) == []


def test_symlink_loop(tmp_path, run_cli):
    (tmp_path / "a.mp4").symlink_to("b.mp4")
    (tmp_path / "b.mp4").symlink_to("a.mp4")
    expect_error(run_cli, "process", tmp_path / "a.mp4", "--model", "identity", says=["symbolic link loop"])


def test_devices_are_not_files(run_cli):
    expect_error(run_cli, "process", "/dev/zero", "-o", "/tmp/never.mp4", says=["/dev/zero", "device"])


def test_fifo_without_a_writer_fails_within_the_timeout(tmp_path, run_cli):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    started = time.monotonic()
    expect_error(
        run_cli,
        "process",
        fifo,
        "-o",
        tmp_path / "out.mkv",
        "--model",
        "identity",
        "--timeout",
        "1",
        says=["pipe.mp4", "no data after 1 s"],
    )
    assert time.monotonic() - started < 5


def test_fifo_with_a_writer_is_read(tmp_path, run_cli):
    source = make_video(tmp_path / "in.ts", frames=15)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    def write():
        with open(fifo, "wb") as pipe:
            pipe.write(source.read_bytes())

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    code, _, err = run_cli("process", fifo, "-o", tmp_path / "out.mkv", "--model", "identity", "--timeout", "5")
    writer.join(5)
    assert code == 0, err
    assert probe(tmp_path / "out.mkv")["frames"] == 15


def test_bogus_pixel_format_codec_and_containers(tmp_path, run_cli):
    source = make_video(tmp_path / "in.mp4", frames=3)
    common = ("--model", "identity", "-y")
    expect_error(
        run_cli,
        "process",
        source,
        "-o",
        tmp_path / "o.mp4",
        "--pix-fmt",
        "bogus",
        *common,
        says=["--pix-fmt bogus: not a pixel format"],
    )
    err = expect_error(
        run_cli,
        "process",
        source,
        "-o",
        tmp_path / "o.mp4",
        "--codec",
        "mpeg4",
        "--pix-fmt",
        "yuv444p",
        *common,
        says=["mpeg4 cannot encode --pix-fmt yuv444p", "yuv420p"],
    )
    assert "libx264" not in err and "free space" not in err
    expect_error(
        run_cli,
        "process",
        source,
        "-o",
        tmp_path / "o.webm",
        "--codec",
        "libx264",
        *common,
        says=["o.webm", "cannot hold libx264", "libvpx-vp9"],
    )
    expect_error(
        run_cli,
        "process",
        source,
        "-o",
        tmp_path / "o.jpg",
        *common,
        says=["o.jpg", "still-image format, not a video container"],
    )
    expect_error(
        run_cli,
        "process",
        source,
        "-o",
        tmp_path / "o.mp4",
        "--codec",
        "nope",
        *common,
        says=["--codec nope: no such video encoder"],
    )
    expect_error(
        run_cli,
        "process",
        source,
        "-o",
        tmp_path / "o.gif",
        "--codec",
        "libx264",
        *common,
        says=["o.gif", "cannot hold libx264", "gif"],
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.mp4"]


@pytest.mark.parametrize("container", ["mkv", "faststart.mp4", "ts"])
def test_truncated_file_that_plays_is_warned_about(tmp_path, run_cli, container):
    suffix = container.rsplit(".", 1)[-1]
    source = make_video(tmp_path / f"whole.{suffix}", frames=60, width=64, height=48, audio="aac")
    if container.startswith("faststart"):
        source = remux(source, tmp_path / f"fs.{suffix}", {"movflags": "+faststart"})
    cut = tmp_path / f"cut.{suffix}"
    data = source.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3 + 5])
    code, out, err = run_cli("process", cut, "-o", tmp_path / "out.mp4", "--model", "identity", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert 0 < summary["frames"] < 60 and probe(tmp_path / "out.mp4")["frames"] == summary["frames"]
    assert summary["warning"] and ("ends" in summary["warning"] or "of the 60 frames" in summary["warning"])
    warnings = [line for line in err.splitlines() if "warning" in line.lower()]
    assert len(warnings) == 1 and warnings[0].startswith("streamer: warning:"), err


def test_whole_files_are_not_warned_about(tmp_path, run_cli):
    for name, audio in (("a.mkv", "aac"), ("b.mp4", "aac"), ("c.ts", None), ("d.mov", "pcm_s16le")):
        source = make_video(tmp_path / name, frames=20, audio=audio)
        code, out, err = run_cli("process", source, "-o", tmp_path / f"out-{name}.mkv", "--model", "identity", "--json")
        assert code == 0 and json.loads(out)["warning"] is None and "warning" not in err.lower(), (name, err)


@pytest.mark.parametrize("damage", ["stts", "ctts", "ts-swap"])
def test_damaged_timestamps_are_repaired_and_written(tmp_path, run_cli, damage):
    if damage == "ts-swap":
        source = make_video(tmp_path / "in.ts", frames=60, audio="aac")
        bad = tmp_path / "bad.ts"
        bad.write_bytes(swap_ts_chunks(source.read_bytes(), random.Random(3), packets=20))
    else:
        source = make_video(tmp_path / "in.mp4", frames=40, audio="aac")
        bad = tmp_path / "bad.mp4"
        bad.write_bytes(damage_mp4_table(source.read_bytes(), damage.encode(), 0 if damage == "stts" else -4096))
    output = tmp_path / "out.mp4"
    code, out, err = run_cli("process", bad, "-o", output, "--model", "identity", "--json")
    assert code == 0, err
    assert "free space" not in err and "Traceback" not in err
    written = probe(output)
    assert written["frames"] == json.loads(out)["frames"] > 5
    assert all(b > a for a, b in zip(written["times"], written["times"][1:]))  # strictly increasing


def test_output_folder_turning_unwritable_leaves_no_complete_temp_file(tmp_path, run_cli, monkeypatch):
    """Publishing fails with EACCES (the folder turned read-only mid-job) and so does removing the temp file."""
    source = make_video(tmp_path / "in.mp4", frames=20)
    real_unlink = Path.unlink

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    def unlink(path, *args, **kwargs):
        if ".part" in path.name:
            refuse()
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr("streamer.publish.os.replace", refuse)
    monkeypatch.setattr(Path, "unlink", unlink)
    err = expect_error(
        run_cli,
        "process",
        source,
        "-o",
        tmp_path / "out.mp4",
        "--model",
        "identity",
        says=["out.mp4", "cannot publish", "Permission denied"],
    )
    assert not (tmp_path / "out.mp4").exists()
    assert all(path.stat().st_size == 0 for path in tmp_path.iterdir() if ".part" in path.name)
    monkeypatch.undo()
    for path in tmp_path.iterdir():
        if ".part" in path.name:
            path.unlink()
    assert "Traceback" not in err


def test_write_error_is_blamed_on_the_disk_only_for_os_errors(tmp_path, run_cli, monkeypatch):
    source = make_video(tmp_path / "in.mp4", frames=10)
    import streamer.sink

    def full(self, image, pts, time_base):
        self._guarded(lambda: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device")))

    monkeypatch.setattr(streamer.sink.VideoSink, "write", full)
    expect_error(
        run_cli,
        "process",
        source,
        "-o",
        tmp_path / "out.mp4",
        "--model",
        "identity",
        says=["No space left on device", "check free space"],
    )
    assert leftovers(tmp_path) == []


def test_double_ctrl_c_leaves_no_temp_file(tmp_path):
    source = make_video(tmp_path / "long.mp4", frames=300)
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'tests'}")
    command = [
        sys.executable,
        "-m",
        "streamer",
        "process",
        str(source),
        "-o",
        str(tmp_path / "out.mkv"),
        "--model",
        "tests.models:slow",
        "--batch",
        "2",
    ]
    job = subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not leftovers(tmp_path):
        time.sleep(0.05)
    time.sleep(0.5)
    job.send_signal(signal.SIGINT)
    time.sleep(0.05)
    job.send_signal(signal.SIGINT)
    _, err = job.communicate(timeout=60)
    assert job.returncode == 130, err
    assert "Traceback" not in err
    assert leftovers(tmp_path) == []


def test_stream_down_at_start_gives_up_after_give_up(tmp_path, run_cli):
    from redis_fixtures import free_port

    url = f"rtsp://127.0.0.1:{free_port()}/camera"
    started = time.monotonic()
    code, _, err = run_cli(
        "process", url, "-o", tmp_path / "out.mkv", "--model", "identity", "--timeout", "1", "--give-up", "2.5"
    )
    assert code == 2 and 2 <= time.monotonic() - started < 8, err
    # one line while it waits, one when it gives up (and the step it is in, once it has taken 2 s)
    warning, error = [line for line in err.splitlines() if line != "streamer: opening input"]
    assert warning.startswith("streamer: WARNING:") and "not up yet" in warning
    assert error.startswith("streamer: error:") and "cannot open the stream" in error and "gave up after" in error
    assert list(tmp_path.iterdir()) == []


def frames_out(port: int) -> float:
    """streamer_frames_out_total from a job's /metrics (0 while it is not serving)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return 0
    lines = [line for line in text.splitlines() if line.startswith("streamer_frames_out_total ")]
    return float(lines[0].split()[1]) if lines else 0


@pytest.mark.timeout(90)
def test_camera_down_at_start_is_waited_for(tmp_path):
    from redis_fixtures import free_port
    from rtsp_fixtures import RtspRelay, publish

    output = tmp_path / "out.mkv"
    port = free_port()
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'tests'}")
    with RtspRelay() as relay:
        url = relay.url("late")
        command = [sys.executable, "-m", "streamer", "process", url, "-o", str(output), "--model", "identity",
                   "--timeout", "2", "--give-up", "60", "--max-backoff", "0.5", "--metrics-port", str(port),
                   "--json"]  # fmt: skip
        job = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        stop = threading.Event()
        camera = threading.Thread(target=publish, args=(url, 1800, 64, 48), kwargs={"stop_event": stop})
        try:
            time.sleep(3)  # the camera boots: the job keeps retrying meanwhile
            assert job.poll() is None
            camera.start()
            deadline = time.monotonic() + 45
            while time.monotonic() < deadline and frames_out(port) < 20:
                time.sleep(0.2)
        finally:
            stop.set()
            if camera.is_alive():
                camera.join(10)
            job.send_signal(signal.SIGINT)
            out, err = job.communicate(timeout=30)
    assert job.returncode == 0, err
    assert "not up yet" in err and "Traceback" not in err
    frames = json.loads(out)["frames"]
    assert 20 <= frames and probe(output)["frames"] == frames
