"""The video sink: frames in at their timestamps, a playable file out, or nothing at all."""

from fractions import Fraction

import av
import numpy as np
import pytest
from media import frame_image, probe

from streamer.errors import StreamerError
from streamer.sink import VideoSink

RATE = Fraction(30)
TIME_BASE = Fraction(1, 90000)
PTS = [0, 3000, 6000, 12000, 15000, 27000, 30000]  # uneven gaps: timestamps are kept, not renumbered


def names(folder):
    return sorted(path.name for path in folder.iterdir())


def write(sink, count, width, height):
    for index, pts in enumerate(PTS[:count]):
        sink.write(frame_image(index, width, height), pts, TIME_BASE)


def read_back(path):
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
        return [float(frame.pts * frame.time_base) for frame in frames], [(f.width, f.height) for f in frames], frames


@pytest.mark.parametrize("width, height", [(64, 48), (65, 49)])
def test_frames_read_back_with_their_timestamps_and_size(tmp_path, width, height):
    target = tmp_path / "out.mp4"
    sink = VideoSink(target, width, height, RATE, TIME_BASE)
    write(sink, len(PTS), width, height)
    assert sink.frames == len(PTS) and not target.exists()
    assert sink.close() == target
    times, sizes, frames = read_back(target)
    assert times == pytest.approx([float(pts * TIME_BASE) for pts in PTS], abs=1e-3)
    assert sizes == [(width, height)] * len(PTS)
    brightness = [int(np.median(frame.to_ndarray(format="rgb24")[:, : width // 2])) for frame in frames]
    assert brightness == pytest.approx([(index * 37) % 200 + 30 for index in range(len(PTS))], abs=4)
    assert names(tmp_path) == ["out.mp4"]


def test_abort_leaves_nothing(tmp_path):
    sink = VideoSink(tmp_path / "out.mp4", 64, 48, RATE, TIME_BASE)
    write(sink, 3, 64, 48)
    assert len(names(tmp_path)) == 1  # the temporary file
    sink.abort()
    assert names(tmp_path) == []


def test_close_partial_keeps_a_playable_partial_file(tmp_path):
    sink = VideoSink(tmp_path / "out.mkv", 64, 48, RATE, TIME_BASE)
    write(sink, 4, 64, 48)
    kept = sink.close_partial()
    assert kept == tmp_path / "out.partial.mkv" and names(tmp_path) == ["out.partial.mkv"]
    assert probe(kept)["frames"] == 4


def test_close_partial_without_frames_leaves_nothing(tmp_path):
    sink = VideoSink(tmp_path / "out.mp4", 64, 48, RATE, TIME_BASE)
    assert sink.close_partial() is None
    assert names(tmp_path) == []


@pytest.mark.parametrize("folder", ["missing", "/proc"])
def test_an_unwritable_folder_is_a_clear_error(tmp_path, folder):
    target = tmp_path / folder / "out.mp4" if folder == "missing" else f"{folder}/out.mp4"
    with pytest.raises(
        StreamerError,
        match=r"out\.mp4: cannot write in .*check that the folder exists and is "
        "writable",
    ):
        VideoSink(target, 64, 48, RATE, TIME_BASE)
    assert names(tmp_path) == []


def test_a_bucket_target_is_uploaded_on_close_and_never_partly(s3, tmp_path):
    sink = VideoSink("s3://videos/out/a.mp4", 64, 48, RATE, TIME_BASE, storage=s3.storage)
    write(sink, 5, 64, 48)
    assert not s3.exists("videos/out/a.mp4")
    assert sink.close() == "s3://videos/out/a.mp4"
    s3.get_file("videos/out/a.mp4", str(tmp_path / "down.mp4"))
    assert probe(tmp_path / "down.mp4")["frames"] == 5

    sink = VideoSink("s3://videos/out/b", 64, 48, RATE, TIME_BASE, format="mp4", storage=s3.storage)
    write(sink, 5, 64, 48)
    assert sink.close_partial() is None  # half a job is not published to a bucket
    s3.invalidate_cache()
    assert s3.find("videos/out") == ["videos/out/a.mp4"]
