"""Video sinks: encode frames (RGB images, or decoded pictures passed through untouched) and copy or re-encode
audio into a file with PyAV.

A file or bucket target is written under a temporary name and published only when complete
(streamer.publish), so a crash never leaves a file that looks finished.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import io
import os
import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from streamer.errors import StreamerError
from streamer.options import EncodeConfig
from streamer.publish import AtomicFile
from streamer.storage import is_remote

X26X = {"libx264", "libx265"}
VPX = {"libvpx", "libvpx-vp9"}
FASTSTART_FORMATS = {".mp4", ".mov", ".m4v"}
# the encoder a container gets when none is named (FFmpeg's own choice elsewhere)
CONTAINER_CODECS = {"webm": "libvpx-vp9", "gif": "gif", "matroska": "libx264", "mp4": "libx264", "mov": "libx264"}
IMAGE_FORMATS = {"image2", "image2pipe"}  # .jpg, .png, .bmp …: one picture per file, not a video container
PIPE_FORMATS = {"mp4": "fragmented mp4", "mov": "fragmented mov"}  # stdout cannot seek back to finish a header
# errors of the file system or the network: only these are blamed on the disk or the server
OS_ERRNOS = {
    errno.ENOSPC,
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
    errno.EDQUOT,
    errno.EIO,
    errno.EFBIG,
    errno.ENOENT,
    errno.EPIPE,
    errno.ECONNRESET,
    errno.ECONNREFUSED,
    errno.ETIMEDOUT,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
}
AAC_FRAME_SAMPLES = 1024
STANDARD_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def check_encode(encode: EncodeConfig) -> None:
    """Fail on an unknown codec or pixel format, or a pair that does not fit, before any work."""
    if encode.pix_fmt is not None:
        try:
            av.VideoFormat(encode.pix_fmt)
        except (ValueError, av.error.FFmpegError):
            raise StreamerError(
                f"--pix-fmt {encode.pix_fmt}: not a pixel format; use one such as yuv420p, yuv444p or rgb24"
            ) from None
    if encode.codec is not None:
        codec = _encoder(encode.codec)
        formats = [f.name for f in codec.video_formats or ()]
        if encode.pix_fmt is not None and formats and encode.pix_fmt not in formats:
            raise StreamerError(
                f"--codec {encode.codec} cannot encode --pix-fmt {encode.pix_fmt}; it takes {', '.join(formats)}"
            )
    for name in ("bitrate", "maxrate", "bufsize"):
        value = getattr(encode, name)
        if value is not None and parse_rate(value) is None:
            raise StreamerError(f"--{name} {value}: give bits per second such as 800k, 2.5M or 4000000")


def parse_rate(text: str) -> int | None:
    """'800k' → 800000, '2.5M' → 2500000; None when it is not a rate."""
    units = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}
    text = text.strip().lower()
    try:
        value = float(text[:-1]) * units[text[-1]] if text and text[-1] in units else float(text)
    except ValueError:
        return None
    return int(value) if value > 0 else None


def _encoder(name: str):
    try:
        codec = av.codec.Codec(name, "w")
    except (ValueError, av.error.FFmpegError):
        raise StreamerError(
            f"--codec {name}: no such video encoder in this FFmpeg; use libx264, libvpx-vp9 or gif"
        ) from None
    if codec.type != "video":
        raise StreamerError(f"--codec {name}: a {codec.type} encoder, not a video one; use libx264 or libvpx-vp9")
    return codec


def output_size(scale: tuple[int, int] | None, width: int, height: int) -> tuple[int, int]:
    """--scale W:H with -1 (keep the aspect) or -2 (keep it, rounded to even) on one side."""
    if not scale:
        return width, height
    w, h = scale
    if w < 0 and h < 0:
        raise StreamerError("--scale: give at least one side, e.g. 640:-2")
    if w < 0:
        w = round(width * h / height)
        w += (w % 2) if w % 2 and scale[0] == -2 else 0
    elif h < 0:
        h = round(height * w / width)
        h += (h % 2) if h % 2 and scale[1] == -2 else 0
    return max(2, w), max(2, h)


def check_output(path: str | os.PathLike, overwrite: bool, named: bool = False) -> Path:
    """Fail before any work if the output cannot be written (`named`: --format gives the container)."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise StreamerError(f"{path}: folder {parent} does not exist; create it or choose another output")
    if not os.access(parent, os.W_OK):
        raise StreamerError(f"{path}: folder {parent} is not writable; choose another output")
    if path.is_dir():
        raise StreamerError(f"{path}: is a folder; give an output file name")
    if path.exists() and not overwrite:
        raise StreamerError(f"{path}: already exists; pass -y (overwrite=True in Python) to overwrite it")
    if not path.suffix and not named:
        raise StreamerError(f"{path}: has no extension; add one such as .mp4 or .mkv to choose the container")
    return path


def is_pipe(target: str) -> bool:
    """`-`: the video goes to stdout."""
    return str(target) == "-"


class VideoSink:
    """An output file being written. `close()` publishes it; `abort()` removes it."""

    def __init__(
        self,
        target: str | os.PathLike,
        width: int,
        height: int,
        rate: Fraction,
        time_base: Fraction,
        rotation: int = 0,
        encode: EncodeConfig | None = None,
        audio: av.audio.stream.AudioStream | None = None,
        format: str | None = None,
        options: dict[str, str] | None = None,
        storage: dict | None = None,
    ):
        """A file or bucket target (`storage`: its fsspec options) is written under a temporary name and
        published on close; a network URL or an HLS playlist is written live."""
        encode = encode or EncodeConfig()
        check_encode(encode)
        self.target = str(target)
        self.path = Path(target)
        self.frames = 0
        self.audio_copied: bool | None = None
        self._last_pts: int | None = None
        self._reformatter = av.video.reformatter.VideoReformatter()  # keeps its swscale context between frames
        self._i420: np.ndarray | None = None  # the reused buffer of the RGB → I420 conversion
        self.audio_dropped = 0  # damaged input audio packets the container refused
        self._shift = Fraction(0)  # seconds added to every timestamp when the first frame's is negative
        self._container = None
        pipe = is_pipe(self.target)
        if pipe and not format:
            raise StreamerError("-o -: writing to stdout needs --format, e.g. matroska, mpegts or mp4 (fragmented)")
        atomic = not pipe and format != "hls" and ("://" not in self.target or is_remote(self.target))
        self._file = AtomicFile(self.target, storage) if atomic else None
        options = dict(options or {})
        if pipe and format in PIPE_FORMATS:
            options["movflags"] = "+frag_keyframe+empty_moov+default_base_moof"
        elif atomic and (format in ("mp4", "mov") or self.path.suffix.lower() in FASTSTART_FORMATS):
            options["movflags"] = "+faststart"
        try:
            self._container = av.open(
                _Stdout() if pipe else str(self._file.path) if atomic else self.target,
                mode="w",
                format=format,
                container_options=options,
                timeout=30,
            )
        except (av.error.FFmpegError, ValueError, OSError) as error:
            if self._file is not None:
                self._file.abort()
            raise StreamerError(
                f"{self.target}: cannot write there ({_reason(error)}); use .mp4, .mkv or .webm, or a reachable server"
            ) from None
        try:
            self.width, self.height = output_size(encode.scale, width, height)
            self.video = self._add_video(encode, self.width, self.height, rate, time_base, rotation)
            self.audio = self._add_audio(audio) if audio is not None else None
        except BaseException:
            self.abort()
            raise

    def _add_video(self, encode, width, height, rate, time_base, rotation):
        container = self._container.format.name
        what = f"{self.target} ({container})" if not self.target.endswith(container) else self.target
        if container in IMAGE_FORMATS:
            suffix = self.path.suffix or container
            raise StreamerError(
                f"{self.target}: {suffix} is a still-image format, not a video container; use .mp4, .mkv, .webm or .gif"
            )
        name = encode.codec or CONTAINER_CODECS.get(container) or self._default_codec(container)
        codec = _encoder(name)
        self.pix_fmt = _pixel_format(encode.pix_fmt, codec, width, height)
        if self._file is not None or is_pipe(self.target):
            _check_fits(container, name, self.pix_fmt, what)
        try:
            stream = self._container.add_stream(name, rate=rate)
        except (av.error.FFmpegError, ValueError) as error:
            raise StreamerError(f"--codec {name}: cannot be used ({_reason(error)})") from None
        stream.width, stream.height, stream.pix_fmt = width, height, self.pix_fmt
        stream.codec_context.time_base = time_base
        stream.codec_context.thread_count = encode.threads
        # frame threads, as the ffmpeg command uses (x264: 1.5 per core, no slices); a live output (zerolatency)
        # keeps slice threads, which hold no frames back
        stream.codec_context.thread_type = "SLICE" if encode.tune == "zerolatency" else "AUTO"
        options = {}
        if name in X26X:
            options = {"crf": str(encode.crf), "preset": encode.preset}
            if encode.tune:
                options["tune"] = encode.tune
        elif name in VPX:
            options = {"crf": str(min(63, encode.crf + 8)), "b": "0", "deadline": "realtime", "cpu-used": "8"}
        if encode.bitrate:
            options.pop("crf", None)
            stream.codec_context.bit_rate = parse_rate(encode.bitrate)
            options["b"] = str(parse_rate(encode.bitrate))
        if encode.maxrate:
            options["maxrate"] = str(parse_rate(encode.maxrate))
            options["bufsize"] = str(parse_rate(encode.bufsize or encode.maxrate) * (1 if encode.bufsize else 2))
        elif encode.bufsize:
            options["bufsize"] = str(parse_rate(encode.bufsize))
        if options:
            stream.options = options
        if encode.gop:
            stream.codec_context.gop_size = encode.gop
        if rotation:
            stream.set_display_rotation(rotation)
        return stream

    def _default_codec(self, container: str) -> str:
        """H.264 wherever the container takes it (TS, FLV, HLS …), else the container's own default."""
        if self._file is None and not is_pipe(self.target) or _fits(container, "libx264", "yuv420p"):
            return "libx264"
        default = self._container.default_video_codec
        return "libx264" if default in ("h264", "none", None) else default

    def _add_audio(self, template):
        """Copy the input's audio when this container takes its codec, else re-encode (AAC, or Opus for WebM);
        a container without audio (GIF) gets none."""
        self.audio_copied = _can_copy(self._container, template.codec_context.name)
        if is_pipe(self.target) and self._container.format.name != "mpegts":
            self.audio_copied = False  # a header written once, up front, needs the encoder's extradata
        if self.audio_copied:
            return self._container.add_stream_from_template(template)
        container = self._container.format.name
        codec = next((name for name in ("aac", "libopus") if _holds(container, name)), None)
        if codec is None:
            self.audio_copied = None
            return None
        rate = template.codec_context.sample_rate if codec == "aac" else 48000
        stream = self._container.add_stream(codec, rate=rate)
        stream.layout = _named_layout(template.codec_context)
        self._resampler = av.AudioResampler(
            format=stream.codec_context.codec.audio_formats[0].name if codec != "aac" else "fltp",
            layout=stream.layout,
            rate=stream.rate,
            frame_size=AAC_FRAME_SAMPLES if codec == "aac" else 960,
        )
        return stream

    def write(self, image: np.ndarray | av.VideoFrame, pts: int, time_base: Fraction) -> None:
        """Encode one frame at its original timestamp (a timestamp not after the last one is moved just after it:
        encoders and muxers need them strictly increasing). `image`: RGB pixels, or a decoded picture whose
        pixels pass unchanged (encoded as it is when it has the output's size and format)."""
        if self._last_pts is None and pts < 0:  # players cut what comes before 0: start there, audio alike
            self._shift = Fraction(-pts) * Fraction(time_base)
        pts += round(self._shift / Fraction(time_base)) if self._shift else 0
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        self._last_pts = pts
        frame = self._passed(image) if isinstance(image, av.VideoFrame) else self._converted(image)
        frame.pts, frame.time_base = pts, time_base
        self._guarded(lambda: self._container.mux(self.video.encode(frame)))
        self.frames += 1

    def _passed(self, picture: av.VideoFrame) -> av.VideoFrame:
        """A decoded picture as the encoder takes it: itself, or scaled and converted by swscale."""
        if picture.width != self.width or picture.height != self.height or picture.format.name != self.pix_fmt:
            picture = self._reformatter.reformat(picture, self.width, self.height, self.pix_fmt, interpolation="AREA")
        picture.pict_type = av.video.frame.PictureType.NONE  # the input's keyframes do not force the output's
        return picture

    def _converted(self, image: np.ndarray) -> av.VideoFrame:
        """An RGB image as a frame: OpenCV converts an even-sized one to 4:2:0 (BT.601, limited range, as swscale
        does) into a reused buffer, several times faster than the encoder's own RGB conversion."""
        if image.shape[1] != self.width or image.shape[0] != self.height:
            image = cv2.resize(image, (self.width, self.height), interpolation=cv2.INTER_AREA)
        height, width = image.shape[:2]
        if self.pix_fmt != "yuv420p" or height % 2 or width % 2:
            return av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        if self._i420 is None or self._i420.shape != (height * 3 // 2, width):
            self._i420 = np.empty((height * 3 // 2, width), np.uint8)
        cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420, dst=self._i420)
        return av.VideoFrame.from_ndarray(self._i420, format="yuv420p")  # copied into the frame's own buffer

    def write_audio(self, packet: av.Packet) -> None:
        if self.audio is None:
            return
        if self.audio_copied:
            if self._shift and packet.time_base:
                moved = round(self._shift / Fraction(packet.time_base))
                packet.dts = packet.dts + moved if packet.dts is not None else None
                packet.pts = packet.pts + moved if packet.pts is not None else None
            packet.stream = self.audio
            try:
                self._container.mux(packet)
            except av.error.InvalidDataError:  # a damaged packet the container refuses: drop it, as FFmpeg does
                self.audio_dropped += 1
            except (OSError, ValueError, av.error.FFmpegError) as error:
                self._failed(error)
            return
        for decoded in packet.decode():
            self._encode_audio(decoded)

    def _encode_audio(self, frame: av.AudioFrame | None) -> None:
        for resampled in self._resampler.resample(frame):
            self._guarded(lambda resampled=resampled: self._container.mux(self.audio.encode(resampled)))

    def close(self) -> Path | str:
        """Flush the encoders, finish the file and publish it at its target."""
        self._finish()
        return self._file.publish() if self._file is not None else self._live_target()

    def close_partial(self) -> Path | str | None:
        """Finish what was written as a valid shorter video beside a file target, or remove it. A bucket
        target gets nothing: half a job is not published there."""
        if self.frames == 0 or (self._file is not None and self._file.remote):
            self.abort()
            return None
        self._finish()
        return self._file.keep_partial() if self._file is not None else self._live_target()

    def abort(self) -> None:
        try:
            if self._container is not None:
                self._container.close()
        except Exception:
            pass
        if self._file is not None:
            self._file.abort()

    def _finish(self) -> None:
        try:
            self._guarded(lambda: self._container.mux(self.video.encode(None)))
            if self.audio is not None and not self.audio_copied:
                self._encode_audio(None)
                self._guarded(lambda: self._container.mux(self.audio.encode(None)))
            self._guarded(self._container.close)
        except BaseException:
            self.abort()
            raise

    def _live_target(self) -> Path | str:
        return self.target if "://" in self.target or is_pipe(self.target) else self.path

    def _guarded(self, write) -> None:
        """Run one encode or mux step; a failure removes the output and says why."""
        try:
            write()
        except (OSError, ValueError, av.error.FFmpegError) as error:
            self._failed(error)

    def _failed(self, error: BaseException) -> None:
        """Remove the output and say why: only an error of the file system or the network is blamed on them;
        anything else is what FFmpeg said about the data."""
        reason = _reason(error)
        self.abort()
        if getattr(error, "errno", None) in OS_ERRNOS:
            where = "the server" if "://" in self.target else "free space and permissions"
            if is_pipe(self.target):
                where = "the command reading stdout"
            raise StreamerError(f"{self.target}: writing failed ({reason}); check {where}") from None
        raise StreamerError(
            f"{self.target}: FFmpeg refused the encoded video ({reason}); the input's timestamps or format "
            "may be damaged, or try another --codec or container"
        ) from None


def _can_copy(container, codec: str) -> bool:
    """Whether this container takes the codec as is (PCM in mp4/mov fails at the trailer)."""
    if codec.startswith("pcm_") and container.format.name in ("mp4", "mov", "ipod"):
        return False
    return _holds(container.format.name, codec)


@functools.lru_cache(maxsize=64)
def _holds(container: str, codec: str) -> bool:
    """Whether a container takes an audio codec: FFmpeg's list where the muxer has one (TS has none: a trial
    header in memory then)."""
    with av.open(io.BytesIO(), mode="w", format=container) as probe:
        if codec in probe.supported_codecs:
            return True
    trial = av.open(io.BytesIO(), mode="w", format=container)
    try:
        stream = trial.add_stream(codec, rate=48000)
        stream.layout = "stereo"
        trial.start_encoding()
        return True
    except (av.error.FFmpegError, ValueError, OSError, KeyError):
        return False
    finally:
        with contextlib.suppress(Exception):
            trial.close()


def _named_layout(audio) -> str:
    """AAC needs a named channel layout; an unnamed 'N channels' gets the standard one for N."""
    name = audio.layout.name
    if not name.endswith("channels"):
        return name
    return STANDARD_LAYOUTS.get(audio.channels, "stereo")


def _reason(error: BaseException) -> str:
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


class _Stdout:
    """stdout as FFmpeg sees a pipe: written in order, never seeked (so muxers do not try to go back)."""

    def write(self, data) -> int:
        return sys.stdout.buffer.write(data)

    def flush(self) -> None:
        sys.stdout.buffer.flush()


@functools.lru_cache(maxsize=64)
def _fits(container: str, codec: str, pix_fmt: str) -> bool:
    """Write a tiny header in memory: whether the container takes this codec."""
    trial = av.open(io.BytesIO(), mode="w", format=container)
    try:
        stream = trial.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, pix_fmt
        stream.codec_context.time_base = Fraction(1, 25)
        trial.start_encoding()
        return True
    except (av.error.FFmpegError, ValueError, OSError):
        return False
    finally:
        with contextlib.suppress(Exception):  # some muxers refuse a trailer with no frame
            trial.close()


def _check_fits(container: str, codec: str, pix_fmt: str, what: str) -> None:
    """The container refuses a codec it cannot hold before any work, saying which ones it takes."""
    if _fits(container, codec, pix_fmt):
        return
    with av.open(io.BytesIO(), mode="w", format=container) as trial:
        supported = trial.supported_codecs
    fits = [name for name in ("libx264", "libvpx-vp9", "libvpx", "gif", "mpeg4") if _available(name, supported)]
    hint = f"this container takes e.g. --codec {', '.join(fits)}" if fits else "choose another container"
    raise StreamerError(f"{what}: cannot hold {codec} video; {hint}")


def _available(name: str, supported) -> bool:
    try:
        return av.codec.Codec(name, "w").name in supported
    except Exception:
        return False


def _pixel_format(requested: str | None, codec, width: int, height: int) -> str:
    """4:2:0 needs even sizes: odd-sized video keeps its size in 4:4:4 instead, where the codec takes it.
    None: yuv420p, else the codec's first format (gif: rgb8)."""
    formats = [f.name for f in codec.video_formats or ()]
    if requested is None:
        requested = "yuv420p" if not formats or "yuv420p" in formats else formats[0]
        if requested == "yuv420p" and (width % 2 or height % 2) and (not formats or "yuv444p" in formats):
            return "yuv444p"
        return requested
    if formats and requested not in formats:
        raise StreamerError(f"--codec {codec.name} cannot encode --pix-fmt {requested}; it takes {', '.join(formats)}")
    if requested == "yuv420p" and (width % 2 or height % 2):
        if not formats or "yuv444p" in formats:
            return "yuv444p"
        raise StreamerError(
            f"--codec {codec.name} needs an even width and height for yuv420p ({width}x{height}); use --scale"
        )
    return requested
