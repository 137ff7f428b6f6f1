"""Video sources: decode anything FFmpeg reads into numbered RGB frames, with PyAV."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator

import av
import numpy as np

from streamer.errors import StreamerError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Frame:
    """One decoded frame: its index in the stream, its timestamp and its RGB pixels."""

    index: int
    pts: int
    time_base: Fraction
    image: np.ndarray  # H×W×3 uint8 RGB

    @property
    def seconds(self) -> float:
        return float(self.pts * self.time_base)


@dataclass(frozen=True)
class VideoInfo:
    """What the sink needs to reproduce the input's timing and geometry."""

    width: int
    height: int
    rate: Fraction  # average frame rate, exact (30000/1001 stays 30000/1001)
    time_base: Fraction
    rotation: int  # display rotation in degrees, counter-clockwise
    frames: int | None  # the container's frame count, when it states one
    duration: float | None  # seconds, when known


class VideoSource:
    """An opened input. Iterate `items()` for Frames and audio packets in file order.

    A stream that breaks mid-way (truncated or corrupt) ends early: the frames decoded
    before the damage are kept and `damage` says what happened.
    """

    def __init__(self, url: str, threads: int = 0):
        self.url = url
        self.damage: str | None = None
        self._first_rotation = 0
        self._container = _open_input(url)
        if not self._container.streams.video:
            self._container.close()
            raise StreamerError(f"{url}: has no video stream; give a video file or stream")
        self.video = self._container.streams.video[0]
        self.video.thread_type = "AUTO"
        self.video.codec_context.thread_count = threads
        self.audio = self._container.streams.audio[0] if self._container.streams.audio else None
        self._pending = self._decode()
        self._head = self._read_to_first_frame()
        if not self._head or not isinstance(self._head[-1], Frame):
            self.close()
            detail = f" ({self.damage})" if self.damage else ""
            raise StreamerError(f"{url}: no video frames could be decoded{detail}; check the file plays")
        self.info = self._describe()

    def _describe(self) -> VideoInfo:
        video = self.video
        rate = video.average_rate or video.guessed_rate or video.base_rate or Fraction(30)
        duration = None
        if video.duration is not None and video.time_base:
            duration = float(video.duration * video.time_base)
        elif self._container.duration:
            duration = self._container.duration / av.time_base
        return VideoInfo(
            width=video.codec_context.width,
            height=video.codec_context.height,
            rate=Fraction(rate),
            time_base=Fraction(video.time_base or Fraction(1, 90000)),
            rotation=int(self._first_rotation),
            frames=video.frames or None,
            duration=duration,
        )

    def items(self) -> Iterator[Frame | av.Packet]:
        """Frames (decoded, in presentation order) and audio packets (as demuxed)."""
        head, self._head = self._head, []
        yield from head
        yield from self._pending

    def _read_to_first_frame(self) -> list[Frame | av.Packet]:
        """Decode up to the first frame, to learn its rotation and prove the input decodes."""
        head = []
        for item in self._pending:
            head.append(item)
            if isinstance(item, Frame):
                break
        return head

    def _decode(self) -> Iterator[Frame | av.Packet]:
        streams = [self.video] + ([self.audio] if self.audio else [])
        index = 0
        step = None
        try:
            for packet in self._container.demux(streams):
                if packet.stream.type == "audio":
                    if packet.dts is not None:
                        yield packet
                    continue
                for decoded in packet.decode():
                    if index == 0:
                        self._first_rotation = decoded.rotation
                        step = _frame_step(self.video)
                    pts = decoded.pts if decoded.pts is not None else index * step
                    yield Frame(index, pts, Fraction(self.video.time_base), decoded.to_ndarray(format="rgb24"))
                    index += 1
        except av.error.FFmpegError as error:
            self.damage = f"input damaged after frame {index}: {error}"
            log.warning("%s: %s; keeping the %d frames decoded before it", self.url, self.damage, index)

    def close(self) -> None:
        self._container.close()


def _frame_step(video) -> int:
    """Timestamp increment of one frame, for frames that arrive without a pts."""
    rate = video.average_rate or video.guessed_rate or Fraction(30)
    return max(1, round(1 / (Fraction(rate) * Fraction(video.time_base))))


def _open_input(url: str):
    is_path = "://" not in url
    if is_path:
        if not os.path.exists(url):
            raise StreamerError(f"{url}: no such file; check the path")
        if os.path.isdir(url):
            raise StreamerError(f"{url}: is a folder; give a video file")
        if not os.access(url, os.R_OK):
            raise StreamerError(f"{url}: not readable; check its permissions")
    try:
        return av.open(url, mode="r")
    except av.error.EOFError:
        raise StreamerError(f"{url}: no video frames, the file ends before any; check it is complete") from None
    except av.error.FFmpegError as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise StreamerError(f"{url}: not a readable video ({reason}); give a file FFmpeg can play") from None
