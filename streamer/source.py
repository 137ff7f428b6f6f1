"""Video sources: decode anything FFmpeg reads into numbered frames (RGB on demand), with PyAV."""

from __future__ import annotations

import errno
import logging
import os
import select
import stat
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import av

from streamer.errors import StreamerError
from streamer.frames import Frame
from streamer.options import SourceOptions
from streamer.storage import filesystem, is_remote

log = logging.getLogger(__name__)


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
    before the damage are kept and `damage` says what happened; so does a file that ends
    before the frames or the duration its container declares. Timestamps come out strictly
    increasing per stream (damaged ones are repaired, as FFmpeg does when it transcodes).
    """

    def __init__(self, url: str, options: SourceOptions | None = None, threads: int = 0):
        self.url = url
        self.options = options or SourceOptions()
        self.damage: str | None = None
        self.repaired = 0  # frames whose timestamp was repaired, audio packets dropped for theirs
        self._first_rotation = 0
        self._file = None
        if is_remote(url):  # PyAV reads the bucket's object through a seekable fsspec file
            self._file = _open_remote(url, self.options)
        elif url == "-" and _stdin_is_file():  # `< in.mp4`: a file, which can seek
            self._file = os.fdopen(os.dup(sys.stdin.fileno()), "rb")
        elif url == "-" or _is_pipe(url):  # stdin or a named pipe: every read bounded by the timeout
            self._file = _readable_pipe(BoundedPipe.open(url, self.options.timeout))
        try:
            self._container = _open_input(url, self.options, self._file)
        except BaseException:
            if self._file is not None:
                self._file.close()
            raise
        try:
            self._setup(threads)
        except BaseException:
            self.close()
            raise
        self.info = self._describe()

    def _setup(self, threads: int) -> None:
        url = self.url
        if not self._container.streams.video:
            raise StreamerError(f"{url}: has no video stream; give a video file or stream")
        self.video = self._container.streams.video[0]
        if self.video.codec_context is None:  # e.g. a file cut inside its header
            raise StreamerError(f"{url}: its video stream cannot be decoded (the file may be cut short or damaged)")
        # frame threading holds frames back (latency, and frames lost when a stream drops): live uses slices
        live = self.options.live if self.options.live is not None else looks_live(url)
        self.video.thread_type = "SLICE" if live else "AUTO"
        self.video.codec_context.thread_count = threads
        audio = self._container.streams.audio
        self.audio = audio[0] if audio and audio[0].codec_context is not None else None
        self._origin = self._first_time()
        self._start = self._seek()
        self._data_end = 0.0  # seconds: where the packets read so far end
        self._pending = self._decode()
        self._head = self._read_to_first_frame()
        if self._start is not None and not self._decoded_any() and self._rewind():
            self._pending = self._decode()  # a seek that landed where nothing decodes (MPEG-TS between keyframes)
            self._head = self._read_to_first_frame()
        if not self._decoded_any():
            detail = f" ({self.damage})" if self.damage else ""
            if self.options.start:
                detail += f" after --start {self.options.start:g}"
            raise StreamerError(f"{url}: no video frames could be decoded{detail}; check the file plays")

    def _decoded_any(self) -> bool:
        return bool(self._head) and isinstance(self._head[-1], Frame)

    def _rewind(self) -> bool:
        """Back to the beginning, to decode up to --start and skip what comes before it."""
        try:
            self._container.seek(0, backward=True, any_frame=False)
        except (av.error.FFmpegError, OSError, ValueError):
            return False
        self.damage = None
        return True

    def _first_time(self) -> float:
        """Seconds at which the input starts (MPEG-TS usually not at 0): --start and --duration count from it."""
        video = self.video
        if video.start_time is not None and video.time_base:
            return float(video.start_time * video.time_base)
        return self._container.start_time / av.time_base if self._container.start_time else 0.0

    def _seek(self) -> float | None:
        """Seek to --start (the keyframe before it; frames before it are skipped when decoded). A pipe or a
        live stream cannot seek: its frames before the start are decoded and skipped. Returns the start."""
        if not self.options.start:
            return None
        start = self._origin + self.options.start
        live = self.options.live if self.options.live is not None else looks_live(self.url)
        if isinstance(self._file, BoundedPipe) or live:
            return start
        try:
            self._container.seek(int(start * av.time_base), any_frame=False, backward=True)
        except (av.error.FFmpegError, OSError, ValueError) as error:
            raise StreamerError(
                f"{self.url}: cannot seek to --start {self.options.start:g} ({error}); give a seekable file"
            ) from None
        return start

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
            frames=None if self._trimmed() else (video.frames or None),
            duration=duration,
        )

    def _trimmed(self) -> bool:
        """Whether frames are skipped (--start, --duration, --stride, --max-fps): the count is not the file's."""
        options = self.options
        return bool(options.start or options.duration or options.stride > 1 or options.max_fps)

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
        options = self.options
        time_base = Fraction(self.video.time_base or Fraction(1, 90000))
        step = _frame_step(self.video)
        start = self._start  # None: from the first frame, timestamps as they are
        first = self._origin if start is None else start
        end = first + options.duration if options.duration else None
        # after --start the output starts at 0 with the first frame kept (which may lie a little after the start
        # when the start falls between frames), the audio moved by as much; until that frame is known, the audio
        # after the start waits in `held`
        shift = None if start is not None else 0
        audio_shift = 0
        held: list[av.Packet] = []
        gap = 1 / options.max_fps if options.max_fps else 0.0
        index = decoded_count = candidates = 0
        last_pts = last_audio = None
        slot = None  # --max-fps: the time from which the next frame is kept
        try:
            for packet in self._container.demux(streams):
                self._note_end(packet)
                if packet.stream.type == "audio":
                    if packet.dts is None or packet.time_base is None:
                        continue
                    at = float(packet.dts * packet.time_base)
                    if (start is not None and at < start) or (end is not None and at >= end):
                        continue
                    if last_audio is not None and packet.dts <= last_audio:
                        self.repaired += 1  # a repeated or backward audio timestamp: drop it, as FFmpeg does
                        continue
                    last_audio = packet.dts
                    if shift is None:
                        held.append(packet)
                    elif audio_shift:
                        yield _moved(packet, audio_shift)
                    else:
                        yield packet
                    continue
                for decoded in packet.decode():
                    if decoded_count == 0:
                        self._first_rotation = decoded.rotation
                    decoded_count += 1
                    pts = decoded.pts
                    if pts is None or (last_pts is not None and pts <= last_pts):
                        pts = step * (decoded_count - 1) if last_pts is None else last_pts + step
                        self.repaired += 1
                    last_pts = pts
                    seconds = float(pts * time_base)
                    if start is not None and seconds < start - 1e-6:
                        continue
                    if end is not None and seconds >= end - 1e-6:
                        return
                    candidates += 1
                    if options.stride > 1 and (candidates - 1) % options.stride:
                        continue
                    if gap:  # one frame per slot of 1/F s, so 30 fps at --max-fps 12 keeps 12 a second, not 10
                        if slot is not None and seconds < slot - 1e-6:
                            continue
                        slot = seconds + gap if slot is None else max(slot + gap, seconds)
                    if shift is None:  # the first frame kept after --start: time 0 of the output
                        shift = pts
                        if self.audio is not None and self.audio.time_base:
                            audio_shift = round(seconds / self.audio.time_base)
                        for waiting in held:  # audio from before the first picture is left out
                            if float(waiting.dts * waiting.time_base) >= seconds - 1e-6:
                                yield _moved(waiting, audio_shift)
                        held.clear()
                    # the decoded picture travels as it is: RGB is made only if a model or an effect reads it
                    yield Frame(index, pts - shift, time_base, decoded=decoded)
                    index += 1
            self._check_complete(decoded_count, last_pts, time_base, step)
        except (av.error.FFmpegError, OSError, ValueError, EOFError) as error:
            if isinstance(error, TimeoutError):  # a pipe whose writer stalled
                self.damage = f"the input stalled after frame {index}: {error.strerror}"
            else:
                self.damage = f"input damaged after frame {index}: {error}"
            log.info("%s: %s; keeping the %d frames decoded before it", self.url, self.damage, index)
        finally:
            if self.repaired:
                log.info("%s: repaired %d damaged timestamps", self.url, self.repaired)

    def _note_end(self, packet: av.Packet) -> None:
        stamp = packet.pts if packet.pts is not None else packet.dts
        if stamp is not None and packet.time_base:
            self._data_end = max(self._data_end, float((stamp + (packet.duration or 0)) * packet.time_base))

    def _check_complete(self, decoded: int, last_pts, time_base: Fraction, step: int) -> None:
        """A file that ends before what its container declares was cut short: say so (the frames stay)."""
        whole = not (self._start is not None or self.options.live or looks_live(self.url))
        declared_frames = (self.video.frames or None) if whole else None
        declared = self._declared_duration() if whole else None
        if declared_frames and decoded < declared_frames:
            self.damage = (
                f"only {decoded} of the {declared_frames} frames the file declares could be decoded "
                "(cut short or damaged)"
            )
        elif declared and last_pts is not None:
            frame = float(step * time_base)
            ended = max(self._data_end, float(last_pts * time_base) + frame)
            if declared - ended > 0.02 + frame / 2:
                self.damage = (
                    f"the file ends early: its data stops at {ended:.2f} s of the {declared:.2f} s it declares"
                )
        elif self._container.format.name == "mpegts" and self._file is None and os.path.isfile(self.url):
            size = os.path.getsize(self.url)
            if size % 188 and size % 192:
                self.damage = "the file ends inside a transport stream packet (cut short)"
        if self.damage:
            log.info("%s: %s", self.url, self.damage)

    def _declared_duration(self) -> float | None:
        """The duration the container states (TS, PS and FLV state none: FFmpeg estimates it from their data)."""
        if self._container.format.name in ("mpegts", "mpeg", "flv"):
            return None
        if self.video.duration is not None and self.video.time_base:
            return float(self.video.duration * self.video.time_base)
        if self._container.duration:
            return self._container.duration / av.time_base
        return None

    def stop(self) -> None:
        """A file ends by itself: nothing to interrupt."""

    def close(self) -> None:
        container = getattr(self, "_container", None)
        if container is not None:
            container.close()
        if self._file is not None:
            self._file.close()


class BoundedPipe:
    """A pipe (stdin or a FIFO) read by PyAV, where opening and every read wait at most `timeout` seconds."""

    def __init__(self, fd: int, name: str, timeout: float, owned: bool):
        self.fd, self.name, self.timeout, self.owned = fd, name, timeout, owned

    @classmethod
    def open(cls, url: str, timeout: float) -> "BoundedPipe":
        if url == "-":
            if sys.stdin is None or sys.stdin.isatty():
                raise StreamerError("-: stdin is a terminal; pipe a video in, e.g. cat in.mp4 | streamer process - …")
            return cls(sys.stdin.fileno(), "stdin", timeout, owned=False)
        # a FIFO's open() blocks until a writer appears: open without waiting, then wait for data
        try:
            fd = os.open(url, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as error:
            raise StreamerError(f"{url}: cannot open ({error.strerror}); check the path") from None
        pipe = cls(fd, url, timeout, owned=True)
        deadline = time.monotonic() + timeout
        while True:  # with no writer yet, a FIFO reads as ready-and-empty: poll until one writes
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                try:
                    data = os.read(fd, 1)
                except BlockingIOError:
                    data = None
                if data:
                    pipe._head = data
                    break
            if time.monotonic() > deadline:
                os.close(fd)
                raise StreamerError(
                    f"{url}: a named pipe with no data after {timeout:g} s; start its writer first, or raise --timeout"
                )
        os.set_blocking(fd, True)
        return pipe

    _head = b""

    def peek(self, enough) -> bytes:
        """The bytes read ahead until `enough(bytes)` holds, the input ends or 64 KiB are in; read() gives them
        again."""
        head = self._head
        while not enough(head) and len(head) < 1 << 16:
            chunk = self.read(1 << 16)
            if not chunk:
                break
            head += chunk
        self._head = head
        return head

    def read(self, size: int = -1) -> bytes:
        if self._head:  # never more than asked for: PyAV copies the bytes into a buffer of `size`
            cut = size if size > 0 else len(self._head)
            head, self._head = self._head[:cut], self._head[cut:]
            return head
        ready, _, _ = select.select([self.fd], [], [], self.timeout)
        if not ready:
            raise TimeoutError(errno.ETIMEDOUT, f"no data on {self.name} for {self.timeout:g} s")
        return os.read(self.fd, size if size > 0 else 1 << 16)

    def close(self) -> None:
        if self.owned and self.fd >= 0:
            os.close(self.fd)
        self.fd = -1


def _readable_pipe(pipe: BoundedPipe):
    """The pipe itself, or, for an MP4 whose index comes after its media data (which needs seeking), its bytes
    spooled to an unnamed temporary file."""
    from streamer.spool import index_at_end, spool

    try:
        head = pipe.peek(lambda data: index_at_end(data) is not None)
        if not index_at_end(head):
            return pipe
        file = spool(pipe, pipe.name)
    except TimeoutError as error:
        pipe.close()
        raise StreamerError(f"{pipe.name}: {error.strerror}; start its writer first, or raise --timeout") from None
    except BaseException:
        pipe.close()
        raise
    pipe.close()
    return file


def _stdin_is_file() -> bool:
    try:
        return sys.stdin is not None and stat.S_ISREG(os.fstat(sys.stdin.fileno()).st_mode)
    except (OSError, ValueError, AttributeError):
        return False


def _is_pipe(url: str) -> bool:
    if "://" in url:
        return False
    try:
        return stat.S_ISFIFO(os.stat(url).st_mode)
    except (OSError, ValueError):
        return False


def _moved(packet: av.Packet, shift: int) -> av.Packet:
    """`packet` with its timestamps `shift` ticks earlier."""
    packet.dts -= shift
    packet.pts = packet.dts if packet.pts is None else packet.pts - shift
    return packet


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
            return av.open(file, mode="r", timeout=(options.timeout, options.timeout), metadata_errors="replace")
        except (av.error.FFmpegError, OSError, ValueError) as error:
            raise StreamerError(
                f"{url}: not a readable video ({_reason(error)}); give a file FFmpeg can play"
            ) from None
    is_path = "://" not in url
    if url.startswith("/dev/video"):
        return _open_device(url, options)
    if is_path:
        _check_path(url)
    settings = {"rtsp_transport": options.rtsp_transport} if url.lower().startswith("rtsp") else {}
    if not is_path and not url.lower().startswith("rtsp"):
        settings["rw_timeout"] = str(int(options.timeout * 1e6))
    try:
        return av.open(
            url, mode="r", options=settings, timeout=(options.timeout, options.timeout), metadata_errors="replace"
        )
    except av.error.EOFError:
        raise StreamerError(f"{url}: no video frames, the file ends before any; check it is complete") from None
    except (av.error.FFmpegError, OSError, ValueError) as error:
        reason = _reason(error)
        if not is_path:
            raise StreamerError(f"{url}: cannot open the stream ({reason}); check the URL and that it is up") from None
        raise StreamerError(f"{url}: not a readable video ({reason}); give a file FFmpeg can play") from None


def _reason(error: BaseException) -> str:
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


def _check_path(url: str) -> None:
    """A local input must be a readable regular file (a FIFO is read through BoundedPipe)."""
    try:
        mode = os.stat(url).st_mode
    except FileNotFoundError:
        raise StreamerError(f"{url}: no such file; check the path") from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise StreamerError(f"{url}: a symbolic link loop; point it at a video file") from None
        raise StreamerError(f"{url}: cannot read ({error.strerror}); check the path") from None
    except ValueError:
        raise StreamerError(f"{url!r}: not a valid path") from None
    if stat.S_ISDIR(mode):
        raise StreamerError(f"{url}: is a folder; give a video file")
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISSOCK(mode):
        raise StreamerError(f"{url}: is a device or socket, not a video file; give a file (cameras: /dev/videoN)")
    if not os.access(url, os.R_OK):
        raise StreamerError(f"{url}: not readable; check its permissions")


def _open_device(url: str, options: SourceOptions):
    """A V4L2 capture device such as /dev/video0."""
    if not os.path.exists(url):
        raise StreamerError(f"{url}: no such capture device; check the camera is plugged in")
    try:
        return av.open(url, mode="r", format="v4l2", timeout=(options.timeout, options.timeout))
    except av.error.FFmpegError as error:
        raise StreamerError(f"{url}: cannot open the camera ({error}); check it is not in use") from None
