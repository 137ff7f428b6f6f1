"""Loopback RTSP through tests/rtsp_relay.py: a PyAV publisher (RECORD) and PyAV readers (PLAY)."""

from __future__ import annotations

import importlib.util
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import av
import pytest
from rtsp_fixtures import RtspRelay, publish

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(scope="module")
def relay():
    server = RtspRelay().start()
    yield server
    assert server.stop() == 0, server.stderr()


class Publisher(threading.Thread):
    """publish(...) in the background; .sent has its per-frame send times once joined."""

    def __init__(self, url: str, frames: int, width: int = 320, height: int = 240, **options):
        super().__init__(daemon=True)
        self.arguments = (url, frames, width, height, 30)
        self.options, self.sent, self.error = options, None, None
        self.start()

    def run(self) -> None:
        try:
            self.sent = publish(*self.arguments, **self.options)
        except Exception as error:  # reported by finish()
            self.error = error

    def finish(self, timeout: float = 10.0) -> list[float]:
        self.join(timeout)
        assert not self.is_alive(), "publisher hangs"
        assert self.error is None, self.error
        return self.sent


def open_reader(url: str, transport: str = "tcp", within: float = 5.0) -> av.container.InputContainer:
    """Opens url for reading, retrying while the relay says nobody publishes there (404) yet."""
    deadline = time.monotonic() + within
    while True:
        try:
            container = av.open(
                url,
                timeout=(3, 3),
                options={
                    "rtsp_transport": transport,
                    "timeout": "2000000",  # socket timeout, microseconds
                    "analyzeduration": "0",
                    "probesize": "32",
                },
            )  # the SDP says it all: start at once
            container.streams.video[0].thread_type = "SLICE"  # frame threads would hold frames back
            return container
        except av.error.FFmpegError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def read(container: av.container.InputContainer, limit: int = 10_000) -> list[tuple[float, float]]:
    """(receive time, left-half level) of each decoded video frame until the stream ends or drops."""
    frames = []
    try:
        for frame in container.decode(video=0):
            received = time.monotonic()
            image = frame.to_ndarray(format="rgb24")
            frames.append((received, float(image[:, : image.shape[1] // 4, 0].mean())))
            if len(frames) >= limit:
                break
    except av.error.FFmpegError:
        pass  # the relay dropped the stream: same as its end
    finally:
        container.close()
    return frames


def indices(levels: list[float], count: int) -> list[int | None]:
    """Reads left-half levels as frame_image indices, each 1 to 3 after the previous one, else None.

    Index i has level (37 i) % 200 + 30, give or take 1 after coding, and indices that close in level
    are at least 27 apart; so the first frame is taken as the index that the next frames follow best.
    """

    def matches(level: float, index: int) -> bool:
        return index < count and abs((index * 37) % 200 + 30 - level) <= 1.5

    previous = max(range(count), key=lambda first: sum(matches(level, first + k) for k, level in enumerate(levels)))
    result = [previous] if levels else []
    for level in levels[1:]:
        result.append(next((i for i in range(previous + 1, previous + 4) if matches(level, i)), None))
        previous = result[-1] if result[-1] is not None else previous + 1
    return result


def test_reader_gets_published_frames_in_order(relay):
    publisher = Publisher(relay.url("cam"), 60)
    frames = read(open_reader(relay.url("cam")))
    publisher.finish()
    order = indices([level for _, level in frames], 60)
    print(f"reader got frames {order}")
    assert len(order) >= 40 and None not in order, order


def test_several_paths_and_udp(relay):
    def receive(path: str, transport: str) -> tuple[list[str], tuple[int, int], int]:
        reader = open_reader(relay.url(path), transport)
        first = next(reader.decode(video=0))  # the size as decoded: a header read at once may not have it yet
        return [stream.type for stream in reader.streams], (first.width, first.height), 1 + len(read(reader))

    publishers = [Publisher(relay.url("cam2"), 45, 320, 240, audio=True), Publisher(relay.url("out"), 45, 160, 120)]
    with ThreadPoolExecutor() as pool:
        cam, out = pool.map(receive, ["cam2", "out"], ["udp", "tcp"])
    for publisher in publishers:
        publisher.finish()
    assert cam[:2] == (["video", "audio"], (320, 240)) and out[:2] == (["video"], (160, 120))
    assert cam[2] >= 25 and out[2] >= 25, (cam, out)


def test_reader_reconnects_after_publisher_restart(relay):
    url = relay.url("restart")
    first = Publisher(url, 45)
    before = read(open_reader(url))  # until the relay drops the stream, as the publisher stops
    dropped = time.monotonic()
    stopped = first.finish()[-1]
    second = Publisher(url, 45)
    after = read(open_reader(url))
    second.finish()
    print(f"stream dropped {dropped - stopped:.2f} s after the last frame; {len(before)} + {len(after)} frames")
    assert dropped - stopped < 1.5
    assert len(before) >= 20 and len(after) >= 20, (len(before), len(after))
    assert None not in indices([level for _, level in after], 45)


def test_latency_720p(relay):
    publisher = Publisher(relay.url("hd"), 60, 1280, 720)
    frames = read(open_reader(relay.url("hd")))
    sent = publisher.finish()
    order = indices([level for _, level in frames], 60)
    assert len(frames) >= 30 and None not in order
    latencies = [(received - sent[index]) * 1000 for (received, _), index in zip(frames, order)][5:]
    print(
        f"\nRTSP loopback latency at 1280x720 (encode, publish, relay, decode): median "
        f"{statistics.median(latencies):.0f} ms, min {min(latencies):.0f} ms, max {max(latencies):.0f} ms "
        f"over {len(latencies)} frames"
    )
    assert statistics.median(latencies) < 500


@pytest.mark.skipif(importlib.util.find_spec("gi") is not None, reason="this python has gi")
def test_missing_gstreamer_is_reported():
    with pytest.raises(RuntimeError, match="gir1.2-gst-rtsp-server-1.0"):
        RtspRelay(python=sys.executable).start()
