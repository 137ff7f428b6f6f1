"""Bad input: one clear line, a non-zero exit, no traceback, no file that looks complete."""

import os

import av
import pytest
from media import make_video, probe


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
