"""The three seams of a pipeline, as Protocols: where frames come from, how they reach the render
stage and come back, and where the rendered video goes. Data flows one way:
Source → Transport (→ RenderStage) → Muxer → Sink."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import av
import numpy as np

from streamer.frames import Frame, Rendered
from streamer.source import VideoInfo


class Source(Protocol):
    """Decoded frames (and audio packets to copy) of one input."""

    info: VideoInfo
    audio: av.audio.stream.AudioStream | None
    damage: str | None  # why decoding ended early, if it did

    def items(self) -> Iterator[Frame | av.Packet]: ...

    def stop(self) -> None: ...

    def close(self) -> None: ...


class Transport(Protocol):
    """Carries numbered frames to the render stage and rendered frames back (in any order)."""

    def send(self, frame: Frame) -> None: ...

    def close(self) -> None:
        """No more frames will be sent."""

    def results(self) -> Iterator[Rendered]: ...

    def depths(self) -> dict[str, int]:
        """Frames waiting at each point, for the queue-depth metrics."""

    def end(self, state: str, reason: str = "") -> None:
        """Record how the job ended (done, failed, cancelled)."""


class Sink(Protocol):
    """An encoded output (file, stream, segments, bucket object): frames in order, then close or abort."""

    frames: int
    audio: object | None
    audio_copied: bool

    def write(self, image: np.ndarray | av.VideoFrame, pts: int, time_base) -> None: ...

    def write_audio(self, packet: av.Packet) -> None: ...

    def close(self) -> Path | str | None: ...

    def close_partial(self) -> Path | str | None: ...

    def abort(self) -> None: ...
