"""The muxer: a reorder buffer that writes each frame index once, in order, with audio interleaved."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pytest

from streamer.errors import StreamerError
from streamer.frames import Rendered
from streamer.muxer import Muxer
from streamer.prediction import Prediction

TB = Fraction(1, 10)  # frame n is at n / 10 s


@dataclass
class Packet:
    """What the muxer reads of an audio packet."""

    pts: int | None
    time_base: Fraction
    dts: int | None = None

    @property
    def seconds(self) -> float:
        return float((self.pts if self.pts is not None else self.dts) * self.time_base)


class FakeSink:
    """Records every call in order: ("video", pts, image) and ("audio", packet)."""

    def __init__(self):
        self.calls: list[tuple] = []
        self.frames = 0
        self.audio = None
        self.audio_copied = False

    def write(self, image, pts, time_base):
        self.calls.append(("video", pts, time_base, image))
        self.frames += 1

    def write_audio(self, packet):
        self.calls.append(("audio", packet))

    def video(self):
        return [call for call in self.calls if call[0] == "video"]


class FakeDetections:
    def __init__(self):
        self.lines: list[tuple] = []

    def write(self, index, pts, time_base, detections):
        self.lines.append((index, pts, time_base, detections))


def rendered(index: int, detections: dict | None = None) -> Rendered:
    image = np.full((4, 6, 3), index, np.uint8)
    return Rendered(index, index, TB, image, detections)


def test_out_of_order_frames_are_written_in_index_order_exactly_once():
    sink = FakeSink()
    muxer = Muxer(sink)
    frames = {i: rendered(i) for i in range(8)}
    written = [muxer.push(frames[i]) for i in (3, 1, 0, 2, 6, 4, 7, 5)]

    assert written == [0, 0, 2, 2, 0, 1, 0, 3]
    video = sink.video()
    assert [pts for _, pts, _, _ in video] == list(range(8))
    assert all(time_base == TB for _, _, time_base, _ in video)
    # each call carries that frame's own image object, not a copy of a neighbour's
    assert [image for *_, image in video] == [frames[i].image for i in range(8)]
    assert all(image is frames[i].image for i, (*_, image) in enumerate(video))
    assert muxer.next_index == 8
    assert muxer.duplicates == 0


def test_nothing_is_written_until_the_next_index_arrives():
    sink = FakeSink()
    muxer = Muxer(sink)
    for i in (5, 4, 3, 2, 1):
        assert muxer.push(rendered(i)) == 0
    assert sink.calls == []
    assert muxer.push(rendered(0)) == 6
    assert [pts for _, pts, _, _ in sink.video()] == [0, 1, 2, 3, 4, 5]


def test_duplicates_are_counted_and_not_written():
    sink = FakeSink()
    muxer = Muxer(sink)
    muxer.push(rendered(0))
    assert muxer.push(rendered(0)) == 0  # already written
    muxer.push(rendered(2))
    assert muxer.push(rendered(2)) == 0  # still waiting in the buffer
    muxer.push(rendered(1))
    assert muxer.push(rendered(1)) == 0

    assert muxer.duplicates == 3
    assert [pts for _, pts, _, _ in sink.video()] == [0, 1, 2]


def test_overflowing_buffer_names_the_missing_frame():
    sink = FakeSink()
    muxer = Muxer(sink, capacity=3)
    for i in (1, 2, 3):
        muxer.push(rendered(i))
    with pytest.raises(StreamerError, match=r"\bframe 0\b"):
        muxer.push(rendered(4))
    assert sink.calls == []


def test_overflow_names_the_frame_missing_at_that_point():
    muxer = Muxer(FakeSink(), capacity=2)
    muxer.push(rendered(0))
    muxer.push(rendered(1))
    muxer.push(rendered(3))
    muxer.push(rendered(4))
    with pytest.raises(StreamerError, match=r"\bframe 2\b"):
        muxer.push(rendered(5))


def test_awaited_frame_arriving_into_a_full_buffer_is_written():
    sink = FakeSink()
    muxer = Muxer(sink, capacity=3)
    for i in (1, 2, 3):
        muxer.push(rendered(i))
    assert muxer.push(rendered(0)) == 4
    assert [pts for _, pts, _, _ in sink.video()] == [0, 1, 2, 3]


def test_audio_is_written_once_video_passes_its_time_and_the_rest_on_finish():
    sink = FakeSink()
    muxer = Muxer(sink)
    audio_tb = Fraction(1, 1000)
    early, middle, late = Packet(50, audio_tb), Packet(250, audio_tb), Packet(900, audio_tb)
    at_frame = Packet(None, audio_tb, dts=300)  # no pts: its dts places it, exactly at frame 3
    for packet in (early, middle, at_frame, late):
        muxer.add_audio(packet)

    for i in (2, 0, 1, 4, 3):
        muxer.push(rendered(i))
    assert sink.calls[-1][0] == "video"  # the packet at 0.9 s waits for video to reach it

    order = [("audio", call[1].seconds) if call[0] == "audio" else ("video", call[1]) for call in sink.calls]
    assert order == [
        ("video", 0),
        ("video", 1),
        ("audio", 0.05),
        ("video", 2),
        ("video", 3),
        ("audio", 0.25),
        ("audio", 0.3),
        ("video", 4),
    ]

    muxer.finish()
    assert sink.calls[-1] == ("audio", late)
    audio = [call[1] for call in sink.calls if call[0] == "audio"]
    assert audio == [early, middle, at_frame, late]  # each packet once, in order
    muxer.finish()
    assert len([call for call in sink.calls if call[0] == "audio"]) == 4


def test_audio_added_after_video_passed_its_time_goes_out_with_the_next_frame():
    sink = FakeSink()
    muxer = Muxer(sink)
    muxer.push(rendered(0))
    muxer.push(rendered(1))
    packet = Packet(5, Fraction(1, 100))  # 0.05 s, already behind the video
    muxer.add_audio(packet)
    assert sink.calls[-1][0] == "video"
    muxer.push(rendered(2))
    assert sink.calls[-1] == ("audio", packet)


def test_detections_are_written_in_frame_order():
    sink, writer = FakeSink(), FakeDetections()
    muxer = Muxer(sink, detections=writer)
    found = {i: Prediction(class_ids=np.array([i]), scores=np.array([0.5])) for i in range(5)}
    found[2] = None  # a frame pushed without a prediction
    for i in (4, 2, 0, 3, 1):
        muxer.push(rendered(i, found[i]))
    muxer.push(rendered(3, Prediction(class_ids=np.array([99]))))  # a duplicate's is not written either

    assert writer.lines == [(i, i, TB, found[i]) for i in range(5)]
