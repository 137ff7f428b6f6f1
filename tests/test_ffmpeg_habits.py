"""What ffmpeg users reach for: trimming, skipping frames, scaling, pipes, codecs that follow the container,
rate control and --version."""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import av
import pytest
from media import frame_image, make_video, probe, remux

ROOT = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'tests'}", TF_CPP_MIN_LOG_LEVEL="2")


def level(image) -> float:
    """A frame's left-half brightness: media.frame_image writes its index there."""
    return float(image[:, : image.shape[1] // 4].mean())


def shows(image, index: int) -> bool:
    return abs(level(image) - level(frame_image(index, 64, 48))) < 4


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    # 90 frames at 30 fps (3 s) with a tone; frame brightness repeats every 200/37 frames, so frames 0..5 are unique
    return make_video(tmp_path_factory.mktemp("habits") / "in.mp4", frames=90, width=64, height=48, audio="aac")


def run(run_cli, source, output, *args):
    code, out, err = run_cli("process", source, "-o", output, "-y", "--model", "identity", "--json", *args)
    assert code == 0, err
    return json.loads(out), probe(output)


def test_start_and_duration_cut_video_and_audio(tmp_path, run_cli, source):
    summary, written = run(run_cli, source, tmp_path / "cut.mp4", "--start", "1", "--duration", "0:01.5")
    assert summary["frames"] == written["frames"] == 45
    assert written["times"][0] == 0.0 and written["times"][-1] == pytest.approx(44 / 30, abs=1e-3)
    assert shows(written["images"][0], 30) and shows(written["images"][1], 31)  # 1 s in: frame 30 first
    assert written["audio_seconds"] == pytest.approx(1.5, abs=0.05)
    assert summary["warning"] is None


def test_start_in_a_transport_stream_counts_from_its_first_frame(tmp_path, run_cli):
    """MPEG-TS starts at 1.4 s and has one keyframe here: --start counts from its start and still finds frame 30."""
    source = make_video(tmp_path / "in.ts", frames=90, audio="aac")
    summary, written = run(run_cli, source, tmp_path / "cut.mkv", "--start", "1", "--duration", "1")
    assert summary["frames"] == written["frames"] == 30 and written["times"][0] == 0.0
    assert shows(written["images"][0], 30) and summary["audio"] == "copied"


def test_start_past_the_end_is_an_error(tmp_path, run_cli, source):
    code, _, err = run_cli("process", source, "-o", tmp_path / "o.mp4", "--model", "identity", "--start", "9")
    assert code == 2 and "no video frames" in err and "--start 9" in err


@pytest.mark.parametrize("option", [("--stride", "3"), ("--max-fps", "10")])
def test_stride_and_max_fps_skip_frames_and_keep_timestamps(tmp_path, run_cli, source, option):
    summary, written = run(run_cli, source, tmp_path / "few.mp4", *option)
    assert summary["frames"] == written["frames"] == 30
    assert all(shows(image, 3 * i) for i, image in enumerate(written["images"][:5]))
    assert written["times"] == pytest.approx([i / 10 for i in range(30)], abs=1e-3)
    assert written["audio_seconds"] == pytest.approx(3.0, abs=0.05)


def test_max_fps_keeps_that_many_frames_a_second(tmp_path, run_cli, source):
    summary, written = run(run_cli, source, tmp_path / "12.mp4", "--max-fps", "12")
    assert summary["frames"] == written["frames"] == 36  # 3 s at 12 a second, not every 3rd frame (10 a second)
    assert all(b - a >= 1 / 12 - 0.02 for a, b in zip(written["times"], written["times"][1:]))


@pytest.mark.parametrize(("scale", "size"), [("32x20", (32, 20)), ("40:-2", (40, 30)), ("-2:24", (32, 24))])
def test_scale(tmp_path, run_cli, source, scale, size):
    summary, written = run(run_cli, source, tmp_path / "small.mp4", f"--scale={scale}", "--duration", "0.5")
    assert written["size"] == size and written["frames"] == summary["frames"] == 15


def test_bad_trim_and_scale_values(tmp_path, run_cli, source):
    for args, says in (
        (("--start", "abc"), "--start abc: give seconds"),
        (("--duration", "0"), "--duration 0: must be positive"),
        (("--stride", "0"), "--stride 0: must be at least 1"),
        (("--scale=-2:-2",), "--scale -2:-2"),
        (("--bitrate", "fast"), "--bitrate fast: give bits per second"),
        (("--format", "nonsense"), "--format nonsense: no such container"),
    ):
        code, _, err = run_cli("process", source, "-o", tmp_path / "o.mp4", "--model", "identity", *args)
        assert code == 2 and says in err and err.count("\n") == 1, err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("name", "codec", "pix_fmt"),
    [("o.webm", "vp9", "yuv420p"), ("o.gif", "gif", None), ("o.mkv", "h264", "yuv420p"), ("o.mp4", "h264", "yuv420p")],
)
def test_codec_follows_the_container(tmp_path, run_cli, name, codec, pix_fmt):
    source = make_video(tmp_path / "in.mp4", frames=10, audio="aac")
    summary, written = run(run_cli, source, tmp_path / name)
    with av.open(str(tmp_path / name)) as container:
        assert container.streams.video[0].codec_context.name == codec
    assert written["frames"] == 10
    if pix_fmt:
        assert written["pix_fmt"] == pix_fmt
    if name == "o.webm":
        assert written["audio_codec"] == "opus" and summary["audio"] == "re-encoded"


def test_bitrate_maxrate_bufsize(tmp_path, run_cli):
    source = make_video(tmp_path / "in.mp4", frames=60, width=128, height=96)
    run(run_cli, source, tmp_path / "low.mp4", "--bitrate", "40k", "--maxrate", "60k", "--bufsize", "120k")
    run(run_cli, source, tmp_path / "high.mp4", "--bitrate", "2M")
    low, high = (tmp_path / "low.mp4").stat().st_size, (tmp_path / "high.mp4").stat().st_size
    assert low < high
    with av.open(str(tmp_path / "low.mp4")) as container:
        rate = container.streams.video[0].bit_rate
    assert rate < 120_000


def pipe(args, stdin, tmpdir=None, limit=None, quiet=True):
    command = [sys.executable, "-m", "streamer", "process", *args, "--model", "identity", *(["-q"] if quiet else [])]
    env = dict(ENV)
    if tmpdir is not None:
        tmpdir.mkdir()
        env["TMPDIR"] = str(tmpdir)
    if limit is not None:
        env["STREAMER_SPOOL_LIMIT"] = str(limit)
    return subprocess.Popen(command, env=env, cwd=ROOT, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_stdin_and_stdout_in_a_shell_pipe(tmp_path):
    """cat in.ts | streamer - -o - (mpegts, fragmented mp4); streamer - < in.ts -o - | streamer - -o out.mp4."""
    source = make_video(tmp_path / "in.ts", frames=30, audio="aac")
    data = source.read_bytes()
    jobs = {
        container: pipe(["-", "-o", "-", "--format", container], subprocess.PIPE) for container in ("mpegts", "mp4")
    }
    with open(source, "rb") as stdin:  # a file on stdin (seekable); matroska on stdout, into a pipe
        first = pipe(["-", "-o", "-", "--format", "matroska", "--stride", "2"], stdin)
    second = pipe(["-", "-o", str(tmp_path / "chained.mp4"), "-y"], first.stdout)
    first.stdout.close()
    results = {}
    feeders = [
        threading.Thread(target=lambda c=c, j=j: results.__setitem__(c, j.communicate(data, timeout=60)))
        for c, j in jobs.items()
    ]
    for feeder in feeders:
        feeder.start()
    for feeder in feeders:
        feeder.join(70)
    for container, job in jobs.items():
        out, err = results[container]
        assert job.returncode == 0, (container, err.decode())
        path = tmp_path / f"out.{container}"
        path.write_bytes(out)
        written = probe(path)
        assert written["frames"] == 30 and written["audio_codec"] == "aac", container
        assert all(b > a for a, b in zip(written["times"], written["times"][1:]))
        assert written["format"].split(",")[0] == {"mpegts": "mpegts", "mp4": "mov"}[container]
    _, err = second.communicate(timeout=60)
    assert first.wait(10) == 0 and second.returncode == 0, err.decode()
    chained = probe(tmp_path / "chained.mp4")
    assert chained["frames"] == 15 and chained["audio_codec"] == "aac"
    assert chained["times"][1] - chained["times"][0] == pytest.approx(2 / 30, abs=1e-3)


def test_stdout_needs_a_format_and_no_json(run_cli, source):
    code, _, err = run_cli("process", source, "-o", "-", "--model", "identity")
    assert code == 2 and "needs --format" in err
    code, _, err = run_cli("process", source, "-o", "-", "--format", "matroska", "--json", "--model", "identity")
    assert code == 2 and "--json" in err


def test_version(run_cli, capsys):
    with pytest.raises(SystemExit) as exit:
        run_cli("--version")
    out = capsys.readouterr().out
    assert exit.value.code == 0 and out.startswith("streamer ") and "FFmpeg" in out


def test_mp4_with_its_index_at_the_end_through_a_pipe(tmp_path):
    """cat clip.mp4 | streamer process - -o - --format mpegts, for an MP4 whose moov comes after its mdat (as
    cameras write them): spooled to a temporary file, stated in one line, and every frame comes out."""
    source = make_video(tmp_path / "camera.mp4", frames=40, width=96, height=54, audio="aac")
    data = source.read_bytes()
    assert 0 < data.find(b"mdat") < data.find(b"moov")  # the index at the end
    job = pipe(["-", "-o", "-", "--format", "mpegts"], subprocess.PIPE, tmpdir=tmp_path / "spool", quiet=False)
    out, err = job.communicate(data, timeout=90)
    assert job.returncode == 0, err.decode()
    assert "index at the end" in err.decode() and "+faststart" in err.decode()
    (tmp_path / "out.ts").write_bytes(out)
    written = probe(tmp_path / "out.ts")
    assert written["frames"] == 40 and written["audio_codec"] == "aac"
    assert all(shows(image, index) for index, image in enumerate(written["images"][:6]))
    assert list((tmp_path / "spool").iterdir()) == []  # the spooled copy is gone


def test_a_spooled_pipe_is_bounded(tmp_path):
    source = make_video(tmp_path / "camera.mp4", frames=40, width=96, height=54)
    job = pipe(["-", "-o", "-", "--format", "mpegts"], subprocess.PIPE, limit=1000)
    _, err = job.communicate(source.read_bytes(), timeout=60)
    assert job.returncode == 2 and "STREAMER_SPOOL_LIMIT=1000" in err.decode()
    assert "index first" in err.decode() and "-movflags +faststart" in err.decode()


@pytest.mark.parametrize("layout", ["faststart", "fragmented", "end"])
def test_where_an_mp4_keeps_its_index(tmp_path, layout):
    from streamer.spool import index_at_end

    path = make_video(tmp_path / "in.mp4", frames=5)
    if layout != "end":
        flags = {"faststart": "+faststart", "fragmented": "+frag_keyframe+empty_moov"}[layout]
        path = remux(path, tmp_path / f"{layout}.mp4", {"movflags": flags})
    data = path.read_bytes()
    assert index_at_end(data) is (layout == "end")
    assert index_at_end(data[:20]) is None  # too little to tell
    assert index_at_end(b"\x47\x40\x11\x10" * 47) is False  # MPEG-TS
    assert index_at_end(make_video(tmp_path / "in.mkv", frames=2).read_bytes()) is False


@pytest.mark.parametrize("start,first", [("1.01", 26), ("1", 25), ("0:01.5", 38)])
def test_start_between_frames_still_starts_the_output_at_0(tmp_path, run_cli, start, first):
    """25 fps: --start 1.01 falls between frames 25 (1.00 s) and 26 (1.04 s); the output begins with frame 26 at
    0, as documented (not at 0.03), and its audio starts with it."""
    source = make_video(tmp_path / "in.mp4", frames=75, rate=25, audio="aac")
    summary, written = run(run_cli, source, tmp_path / "cut.mp4", "--start", start)
    assert written["times"][0] == 0.0 and shows(written["images"][0], first)
    assert written["times"][1] == pytest.approx(0.04, abs=1e-3)
    assert summary["frames"] == written["frames"] == 75 - first
    with av.open(str(tmp_path / "cut.mp4")) as container:
        audio = container.streams.audio[0]
        packets = [p for p in container.demux(audio) if p.pts is not None]
        begins = float(packets[0].pts * packets[0].time_base)
    assert 0.0 <= begins < 0.03  # within one AAC frame of the first picture, never before it
