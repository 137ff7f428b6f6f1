"""The muxer: puts rendered frames back in order and writes each index exactly once.

Audio packets from the source wait here until the video has reached their time, so the
container receives both streams roughly interleaved and its own buffer stays small.
"""

from __future__ import annotations

import collections
import threading

import av

from streamer.errors import StreamerError
from streamer.frames import Rendered
from streamer.protocols import Sink


class Muxer:
    """Reorder buffer in front of a sink."""

    def __init__(self, sink: Sink, capacity: int = 256, detections=None, in_order=None):
        """`detections`: a DetectionsWriter that gets each frame's detections in frame order.
        `in_order`: a step applied to each frame in frame order before it is written (tracking:
        `streamer.tracking.TrackedRender`)."""
        self.sink = sink
        self.detections = detections
        self.in_order = in_order
        self.capacity = capacity
        self.next_index = 0
        self.duplicates = 0
        self._waiting: dict[int, Rendered] = {}
        self._audio: collections.deque[av.Packet] = collections.deque()
        self._audio_lock = threading.Lock()

    def add_audio(self, packet: av.Packet) -> None:
        """Queue an audio packet (any thread); it is written once video passes its time."""
        with self._audio_lock:
            self._audio.append(packet)

    def push(self, rendered: Rendered) -> int:
        """Accept a rendered frame; write every frame now in order. Returns frames written."""
        index = rendered.index
        if index < self.next_index or index in self._waiting:
            self.duplicates += 1
            return 0
        if index != self.next_index and len(self._waiting) >= self.capacity:
            raise StreamerError(
                f"reorder buffer full: waiting for frame {self.next_index} with {len(self._waiting)} later "
                "frames held; a worker lost it"
            )
        self._waiting[index] = rendered
        written = 0
        while self.next_index in self._waiting:
            frame = self._waiting.pop(self.next_index)
            if self.in_order is not None:
                frame = self.in_order(frame)
            self.sink.write(frame.picture(), frame.pts, frame.time_base)  # the decoded picture if untouched
            if self.detections is not None:
                self.detections.write(frame.index, frame.pts, frame.time_base, frame.prediction)
            self._write_audio(until=frame.seconds)
            self.next_index += 1
            written += 1
        return written

    def finish(self) -> None:
        """Write the audio that is left (after the last frame's time)."""
        self._write_audio(until=float("inf"))

    def _write_audio(self, until: float) -> None:
        with self._audio_lock:
            while self._audio and _seconds(self._audio[0]) <= until:
                self.sink.write_audio(self._audio.popleft())


def _seconds(packet: av.Packet) -> float:
    ts = packet.pts if packet.pts is not None else packet.dts
    return float(ts * packet.time_base)
