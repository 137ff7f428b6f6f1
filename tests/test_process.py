"""`streamer process` end to end on generated videos: timing, geometry, audio, pixels."""

import json
import os
from fractions import Fraction

import numpy as np
import pytest
from media import make_video, probe

LEFT_HALF = "tests.models:left_half"


def test_keeps_count_rate_timestamps_rotation_and_audio(tmp_path, run_cli):
    source = make_video(tmp_path / "in.mp4", frames=25, rate=Fraction(30000, 1001), audio="aac", rotation=90)
    code, out, err = run_cli("process", source, "--model", "identity", "--json")
    assert code == 0, err
    summary = json.loads(out)
    output = tmp_path / "in_overlay.mp4"
    assert summary["output"] == str(output) and summary["frames"] == 25 and summary["audio"] == "copied"
    before, after = probe(source), probe(output)
    assert after["frames"] == 25
    assert after["rate"] == Fraction(30000, 1001)
    assert after["times"] == pytest.approx(before["times"], abs=1e-6)
    assert after["size"] == (64, 48) and after["rotation"] == 90 and after["pix_fmt"] == "yuv420p"
    assert after["audio_codec"] == "aac"
    assert after["audio_seconds"] == pytest.approx(before["audio_seconds"], abs=0.03)


def test_odd_size_and_pcm_audio_reencoded_to_aac(tmp_path, run_cli):
    source = make_video(tmp_path / "odd.mkv", frames=10, width=63, height=47, audio="pcm_s16le")
    output = tmp_path / "odd.mp4"
    code, out, err = run_cli("process", source, "-o", output, "--model", "identity", "--json")
    assert code == 0, err
    assert json.loads(out)["audio"] == "re-encoded"
    after = probe(output)
    assert after["frames"] == 10 and after["size"] == (63, 47)
    assert after["audio_codec"] == "aac" and after["audio_seconds"] == pytest.approx(10 / 30, abs=0.05)


def test_other_container_by_extension(tmp_path, run_cli):
    source = make_video(tmp_path / "in.mp4", frames=8)
    code, _, err = run_cli("process", source, "-o", tmp_path / "out.mkv", "--model", "identity", "-q")
    assert code == 0, err
    after = probe(tmp_path / "out.mkv")
    assert after["format"].startswith("matroska") and after["frames"] == 8


def test_overlay_changes_pixels_only_where_the_mask_is(tmp_path, run_cli):
    source = make_video(tmp_path / "in.mp4", frames=6, width=64, height=48)
    output = tmp_path / "out.mkv"
    code, _, err = run_cli(
        "process",
        source,
        "-o",
        output,
        "--model",
        LEFT_HALF,
        "--color",
        "0,255,0",
        "--alpha",
        "0.5",
        "--codec",
        "libx264",
        "--pix-fmt",
        "yuv444p",
        "--crf",
        "0",
        "-q",
    )
    assert code == 0, err
    before, after = probe(source)["images"], probe(output)["images"]
    assert len(after) == 6
    for original, rendered in zip(before, after):
        left, right = slice(2, 30), slice(34, 62)  # away from the mask edge
        expected = original[:, left].astype(float) * 0.5 + np.array([0, 255, 0]) * 0.5
        assert np.abs(rendered[:, left] - expected).max() <= 3
        assert np.abs(rendered[:, right].astype(int) - original[:, right]).max() <= 3


def test_frames_stay_in_order_with_batches(tmp_path, run_cli):
    source = make_video(tmp_path / "in.mp4", frames=23)
    output = tmp_path / "out.mp4"
    code, _, err = run_cli("process", source, "-o", output, "--model", "identity", "--batch", "4", "-q")
    assert code == 0, err
    before, after = probe(source)["images"], probe(output)["images"]
    left_means = [image[:, :20].mean() for image in after]
    assert np.allclose(left_means, [image[:, :20].mean() for image in before], atol=3)


def test_batches_finishing_out_of_order_are_written_in_order(tmp_path, run_cli):
    from tests.models import UNEVEN

    source = make_video(tmp_path / "in.mp4", frames=24)
    output = tmp_path / "out.mp4"
    code, _, err = run_cli(
        "process",
        source,
        "-o",
        output,
        "--model",
        "tests.models:uneven",
        "--batch",
        "3",
        "--parallel-batches",
        "2",
        "-q",
    )
    assert code == 0, err
    assert UNEVEN[-1].finished != sorted(UNEVEN[-1].finished)  # the model really finished batches out of order
    before, after = probe(source)["images"], probe(output)["images"]
    assert len(after) == 24
    left_means = [image[:, :20].mean() for image in after]  # brightness encodes the frame index
    assert np.allclose(left_means, [image[:, :20].mean() for image in before], atol=3)


def test_parallel_batches_must_be_positive(tmp_path, run_cli):
    source = make_video(tmp_path / "in.mp4", frames=2)
    code, _, err = run_cli("process", source, "--model", "identity", "--parallel-batches", "0")
    assert code == 2 and "--parallel-batches 0: must be at least 1" in err


def test_summary_line_and_quiet(tmp_path, run_cli):
    source = make_video(tmp_path / "in.mp4", frames=5)
    code, out, err = run_cli("process", source, "--model", "identity", "--effect", "splash")
    assert code == 0
    assert "5 frames in" in err and "fps" in err and "in_splash.mp4" in err
    code, out, err = run_cli("process", source, "--model", "identity", "--effect", "splash", "-y", "-q")
    assert code == 0 and out == "" and err == ""


def test_a_live_input_leaves_a_core_to_decoding_and_encoding(tmp_path, run_cli, monkeypatch):
    """A live input's model gets every core but one unless --threads says otherwise; a file's gets the default."""
    source = make_video(tmp_path / "in.mp4", frames=6, width=80, height=48)
    model = ("--model", "tests.models:threads_asked", "-q", "-y")
    monkeypatch.setenv("STREAMER_TEST_THREADS", str(max(1, len(os.sched_getaffinity(0)) - 1)))
    code, _, err = run_cli("process", source, "-o", tmp_path / "live.mp4", "--live", *model)
    assert code == 0, err
    assert probe(tmp_path / "live.mp4")["frames"] == 6
    monkeypatch.setenv("STREAMER_TEST_THREADS", "3")
    code, _, err = run_cli("process", source, "-o", tmp_path / "live.mp4", "--live", "--threads", "3", *model)
    assert code == 0, err
    monkeypatch.setenv("STREAMER_TEST_THREADS", "None")
    code, _, err = run_cli("process", source, "-o", tmp_path / "file.mp4", *model)
    assert code == 0, err


def test_a_model_is_warmed_up_for_the_input_size_before_its_first_frame(tmp_path, run_cli):
    source = make_video(tmp_path / "in.mp4", frames=6, width=80, height=48)
    code, _, err = run_cli("process", source, "-o", tmp_path / "out.mp4", "--model", "tests.models:warmed_up", "-q")
    assert code == 0, err
    assert probe(tmp_path / "out.mp4")["frames"] == 6
