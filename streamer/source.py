"""Video sources: decode anything FFmpeg reads into numbered RGB frames, with PyAV."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction

import av

from streamer.errors import StreamerError
from streamer.frames import Frame
from streamer.storage import filesystem, is_remote

log = logging.getLogger(__name__)


@dataclass
class SourceOptions:
    """How to open an input; the network settings matter for live streams."""

    rtsp_transport: str = "tcp"  # tcp | udp
    timeout: float = 10.0  # seconds to connect, and to wait for data once connected
    live: bool | None = None  # None: decide from the URL and what FFmpeg reports
    storage: dict = field(default_factory=dict)  # fsspec options for s3://, gs://, az:// … inputs


LIVE_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "udp", "rtp", "srt", "tcp")


def looks_live(url: str) -> bool:
    """Network streams and capture devices are live; files and progressive HTTP are not."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    return scheme in LIVE_SCHEMES or url.startswith("/dev/video")


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
    live: bool = False  # a stream with no end: timestamps are arrival times, Ctrl-C ends it normally


class VideoSource:
    """An opened input. Iterate `items()` for Frames and audio packets in file order.

    A stream that breaks mid-way (truncated or corrupt) ends early: the frames decoded
    before the damage are kept and `damage` says what happened.
    """

    def __init__(self, url: str, options: SourceOptions | None = None, threads: int = 0):
        self.url = url
        self.options = options or SourceOptions()
        self.damage: str | None = None
        self._first_rotation = 0
        self._file = None
        if is_remote(url):  # PyAV reads the bucket's object through a seekable fsspec file
            self._file = _open_remote(url, self.options)
        try:
            self._container = _open_input(url, self.options, self._file)
        except BaseException:
            if self._file is not None:
                self._file.close()
            raise
        if not self._container.streams.video:
            self._container.close()
            raise StreamerError(f"{url}: has no video stream; give a video file or stream")
        self.video = self._container.streams.video[0]
        # frame threading holds frames back (latency, and frames lost when a stream drops): live uses slices
        live = self.options.live if self.options.live is not None else looks_live(url)
        self.video.thread_type = "SLICE" if live else "AUTO"
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
        live = self.options.live
        if live is None:
            live = looks_live(self.url) or (self.url.startswith("http") and duration is None)
        return VideoInfo(
            live=live,
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

    def stop(self) -> None:
        """A file ends by itself: nothing to interrupt."""

    def close(self) -> None:
        self._container.close()
        if self._file is not None:
            self._file.close()


def _frame_step(video) -> int:
    """Timestamp increment of one frame, for frames that arrive without a pts."""
    rate = video.average_rate or video.guessed_rate or Fraction(30)
    return max(1, round(1 / (Fraction(rate) * Fraction(video.time_base))))


def _open_remote(url: str, options: SourceOptions):
    fs, path = filesystem(url, options.storage)
    try:
        return fs.open(path, "rb")
    except FileNotFoundError:
        raise StreamerError(f"{url}: no such object; check the path") from None
    except Exception as error:
        raise StreamerError(f"{url}: cannot read ({type(error).__name__}: {error}); check the credentials") from None


def _open_input(url: str, options: SourceOptions, file=None):
    if file is not None:
        try:
            return av.open(file, mode="r")
        except av.error.FFmpegError as error:
            raise StreamerError(f"{url}: not a readable video ({error}); give a file FFmpeg can play") from None
    is_path = "://" not in url
    if url.startswith("/dev/video"):
        return _open_device(url, options)
    if is_path:
        if not os.path.exists(url):
            raise StreamerError(f"{url}: no such file; check the path")
        if os.path.isdir(url):
            raise StreamerError(f"{url}: is a folder; give a video file")
        if not os.access(url, os.R_OK):
            raise StreamerError(f"{url}: not readable; check its permissions")
    settings = {"rtsp_transport": options.rtsp_transport} if url.lower().startswith("rtsp") else {}
    if not is_path and not url.lower().startswith("rtsp"):
        settings["rw_timeout"] = str(int(options.timeout * 1e6))
    try:
        return av.open(url, mode="r", options=settings, timeout=(options.timeout, options.timeout))
    except av.error.EOFError:
        raise StreamerError(f"{url}: no video frames, the file ends before any; check it is complete") from None
    except av.error.FFmpegError as error:
        reason = getattr(error, "strerror", None) or str(error)
        if not is_path:
            raise StreamerError(f"{url}: cannot open the stream ({reason}); check the URL and that it is up") from None
        raise StreamerError(f"{url}: not a readable video ({reason}); give a file FFmpeg can play") from None


def _open_device(url: str, options: SourceOptions):
    """A V4L2 capture device such as /dev/video0."""
    if not os.path.exists(url):
        raise StreamerError(f"{url}: no such capture device; check the camera is plugged in")
    try:
        return av.open(url, mode="r", format="v4l2", timeout=(options.timeout, options.timeout))
    except av.error.FFmpegError as error:
        raise StreamerError(f"{url}: cannot open the camera ({error}); check it is not in use") from None
