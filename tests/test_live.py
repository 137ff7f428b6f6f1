"""Live-mode behaviour and the live outputs, on generated videos and loopback servers."""

import functools
import http.server
import json
import threading
import time

import pytest
from media import make_video, probe
from redis_fixtures import free_port

SLOW = "tests.models:slow"


def left_brightness(images):
    return [float(image[:, :8].mean()) for image in images]


def test_hls_output_parses_and_its_segments_decode(tmp_path, run_cli):
    source = make_video(tmp_path / "in.mp4", frames=90, width=96, height=64)
    (tmp_path / "hls").mkdir()
    playlist = tmp_path / "hls" / "index.m3u8"
    code, _, err = run_cli(
        "process", source, "-o", playlist, "--model", "identity", "--hls-time", "1", "--hls-list-size", "0", "-q"
    )
    assert code == 0, err
    lines = playlist.read_text().splitlines()
    assert lines[0] == "#EXTM3U" and "#EXT-X-ENDLIST" in lines
    segments = [line for line in lines if line and not line.startswith("#")]
    durations = [float(line.split(":")[1].rstrip(",")) for line in lines if line.startswith("#EXTINF")]
    assert len(segments) == len(durations) >= 2 and sum(durations) == pytest.approx(3.0, abs=0.1)
    decoded = sum(probe(tmp_path / "hls" / name)["frames"] for name in segments)
    assert decoded == 90
    assert probe(playlist)["frames"] == 90


def test_several_outputs_at_once(tmp_path, run_cli):
    source = make_video(tmp_path / "in.mp4", frames=20, audio="aac")
    code, out, err = run_cli(
        "process", source, "-o", tmp_path / "a.mp4", "-o", tmp_path / "b.mkv", "--model", "identity", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["output"] == f"{tmp_path / 'a.mp4'}, {tmp_path / 'b.mkv'}"
    first, second = probe(tmp_path / "a.mp4"), probe(tmp_path / "b.mkv")
    assert first["frames"] == second["frames"] == 20
    assert first["audio_codec"] == second["audio_codec"] == "aac"
    assert left_brightness(first["images"]) == pytest.approx(left_brightness(second["images"]), abs=2)


def test_recording_split_by_time(tmp_path, run_cli):
    source = make_video(tmp_path / "in.mp4", frames=75)  # 2.5 s at 30 fps
    code, _, err = run_cli(
        "process", source, "-o", tmp_path / "rec.mp4", "--segment", "1s", "--model", "identity", "-q"
    )
    assert code == 0, err
    parts = sorted(tmp_path.glob("rec-*.mp4"), key=lambda path: path.stat().st_mtime_ns)
    assert len(parts) == 3
    assert all(part.name[4:19].replace("-", "").isdigit() for part in parts)  # rec-YYYYmmdd-HHMMSS...
    counts = [probe(part)["frames"] for part in parts]
    assert counts == [30, 30, 15]


def matched_indices(output_images, input_images):
    """Input index of each output frame, matched in order (frames are dropped, never reordered)."""
    wanted, found, start = left_brightness(input_images), [], 0
    for value in left_brightness(output_images):
        index = next(i for i in range(start, len(wanted)) if abs(wanted[i] - value) <= 3)
        found.append(index)
        start = index + 1
    return found


@pytest.mark.parametrize("policy", ["oldest", "newest"])
def test_live_mode_drops_frames_when_behind(tmp_path, run_cli, policy):
    source = make_video(tmp_path / "in.mp4", frames=90)  # 3 s at 30 fps; the model manages 20 fps
    output = tmp_path / "out.mp4"
    code, out, err = run_cli(
        "process",
        source,
        "-o",
        output,
        "--model",
        SLOW,
        "--batch",
        "1",
        "--parallel-batches",
        "1",
        "--live",
        "--drop",
        policy,
        "--alpha",
        "0",
        "--json",
    )  # alpha 0: frames pass unchanged
    assert code == 0, err
    summary = json.loads(out)
    after = probe(output)
    assert summary["dropped"] > 10
    assert after["frames"] == summary["frames"] == 90 - summary["dropped"]
    assert all(b > a for a, b in zip(after["times"], after["times"][1:]))  # monotonic, real-time stamps
    assert after["times"][-1] == pytest.approx(3.0, abs=0.6)
    kept = matched_indices(after["images"], probe(source)["images"])
    assert kept[0] == 0
    if policy == "oldest":
        assert kept[-1] == 89  # the freshest frame is never the one dropped
    assert 0 < summary["latency_p50"] <= summary["latency_p95"] < 1.0


def test_unreachable_stream_fails_within_its_timeout(tmp_path, run_cli):
    url = f"rtsp://127.0.0.1:{free_port()}/nothing"
    started = time.time()
    code, _, err = run_cli(
        "process", url, "-o", tmp_path / "out.mp4", "--model", "identity", "--timeout", "2", "--give-up", "3"
    )
    assert code == 2 and "cannot open the stream" in err and url in err
    assert time.time() - started < 10
    assert list(tmp_path.iterdir()) == []


def test_progressive_http_input(tmp_path, run_cli):
    served = tmp_path / "www"
    served.mkdir()
    source = make_video(served / "in.mp4", frames=24)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/in.mp4"
        code, out, err = run_cli("process", url, "-o", tmp_path / "out.mp4", "--model", "identity", "--json")
    finally:
        server.shutdown()
    assert code == 0, err
    assert "live" not in json.loads(out)
    after = probe(tmp_path / "out.mp4")
    assert after["frames"] == 24 and after["times"] == pytest.approx(probe(source)["times"])


def test_a_live_model_is_built_for_one_frame_per_call(tmp_path, run_cli, monkeypatch):
    """Live inputs hand the model one frame per call: it must be built for batches of one, not pad every frame
    to a full batch (four times the work at --batch 4)."""
    import streamer.build

    built, calls = [], []
    real = streamer.build.load_model

    def recording(config):
        built.append(config.batch_size)
        model = real(config)
        predict = model.predict

        def counted(frames):
            calls.append(len(frames))
            return predict(frames)

        model.predict = counted
        return model

    monkeypatch.setattr(streamer.build, "load_model", recording)
    source = make_video(tmp_path / "in.mp4", frames=20)
    code, _, err = run_cli("process", source, "-o", tmp_path / "out.mp4", "--model", SLOW, "--batch", "4", "--live")
    assert code == 0, err
    assert built == [1] and calls and set(calls) == {1}
