"""Video sinks: encode RGB frames (and copy or re-encode audio) into a file with PyAV.

A file or bucket target is written under a temporary name and published only when complete
(streamer.publish), so a crash never leaves a file that looks finished.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from streamer.errors import StreamerError
from streamer.publish import AtomicFile
from streamer.storage import is_remote

X26X = {"libx264", "libx265"}
FASTSTART_FORMATS = {".mp4", ".mov", ".m4v"}
AAC_FRAME_SAMPLES = 1024
STANDARD_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


@dataclass
class EncodeConfig:
    """Video encoder settings; defaults give browser-playable H.264 mp4."""

    codec: str = "libx264"
    crf: int = 23
    preset: str = "veryfast"
    pix_fmt: str = "yuv420p"
    threads: int = 0  # 0: FFmpeg picks
    tune: str | None = None  # x264 tune, e.g. zerolatency for live outputs
    gop: int | None = None  # frames between keyframes (None: the encoder's default)


def check_output(path: str | os.PathLike, overwrite: bool) -> Path:
    """Fail before any work if the output cannot be written."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise StreamerError(f"{path}: folder {parent} does not exist; create it or choose another output")
    if not os.access(parent, os.W_OK):
        raise StreamerError(f"{path}: folder {parent} is not writable; choose another output")
    if path.is_dir():
        raise StreamerError(f"{path}: is a folder; give an output file name")
    if path.exists() and not overwrite:
        raise StreamerError(f"{path}: already exists; pass -y to overwrite it")
    if not path.suffix:
        raise StreamerError(f"{path}: has no extension; add one such as .mp4 or .mkv to choose the container")
    return path


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
        self.target = str(target)
        self.path = Path(target)
        self.frames = 0
        self.audio_copied: bool | None = None
        atomic = format != "hls" and ("://" not in self.target or is_remote(self.target))
        self._file = AtomicFile(self.target, storage) if atomic else None
        options = dict(options or {})
        if atomic and (format in ("mp4", "mov") or self.path.suffix.lower() in FASTSTART_FORMATS):
            options["movflags"] = "+faststart"
        try:
            self._container = av.open(
                str(self._file.path) if atomic else self.target,
                mode="w",
                format=format,
                container_options=options,
                timeout=30,
            )
        except (av.error.FFmpegError, ValueError, OSError) as error:
            if self._file is not None:
                self._file.abort()
            raise StreamerError(
                f"{self.target}: cannot write there ({error}); use .mp4 or .mkv, or a reachable server"
            ) from None
        try:
            self.pix_fmt = _pixel_format(encode.pix_fmt, width, height)
            self.video = self._add_video(encode, width, height, rate, time_base, rotation)
            self.audio = self._add_audio(audio) if audio is not None else None
        except Exception:
            self.abort()
            raise

    def _add_video(self, encode, width, height, rate, time_base, rotation):
        try:
            stream = self._container.add_stream(encode.codec, rate=rate)
        except (av.error.FFmpegError, ValueError) as error:
            raise StreamerError(f"unknown video codec {encode.codec!r} ({error}); try libx264") from None
        stream.width, stream.height, stream.pix_fmt = width, height, self.pix_fmt
        stream.codec_context.time_base = time_base
        stream.codec_context.thread_count = encode.threads
        if encode.codec in X26X:
            tune = {"tune": encode.tune} if encode.tune else {}
            stream.options = {"crf": str(encode.crf), "preset": encode.preset, **tune}
        if encode.gop:
            stream.codec_context.gop_size = encode.gop
        if rotation:
            stream.set_display_rotation(rotation)
        return stream

    def _add_audio(self, template):
        """Copy the input's audio when this container takes its codec, else re-encode to AAC."""
        self.audio_copied = _can_copy(self._container, template.codec_context.name)
        if self.audio_copied:
            return self._container.add_stream_from_template(template)
        stream = self._container.add_stream("aac", rate=template.codec_context.sample_rate)
        stream.layout = _named_layout(template.codec_context)
        self._resampler = av.AudioResampler(
            format="fltp", layout=stream.layout, rate=stream.rate, frame_size=AAC_FRAME_SAMPLES
        )
        return stream

    def write(self, image: np.ndarray, pts: int, time_base: Fraction) -> None:
        """Encode one RGB frame at its original timestamp."""
        frame = _i420_frame(image) if self.pix_fmt == "yuv420p" else av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        self._guarded(lambda: self._container.mux(self.video.encode(frame)))
        self.frames += 1

    def write_audio(self, packet: av.Packet) -> None:
        if self.audio is None:
            return
        if self.audio_copied:
            packet.stream = self.audio
            self._guarded(lambda: self._container.mux(packet))
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
        return self.target if "://" in self.target else self.path

    def _guarded(self, write) -> None:
        try:
            write()
        except (OSError, av.error.FFmpegError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            self.abort()
            raise StreamerError(
                f"{self.target}: writing failed ({reason}); check free space, permissions or the server"
            ) from None


def _can_copy(container, codec: str) -> bool:
    """Whether this container takes the codec as is (PCM in mp4/mov fails at the trailer)."""
    if codec.startswith("pcm_") and container.format.name in ("mp4", "mov", "ipod"):
        return False
    return codec in container.supported_codecs


def _named_layout(audio) -> str:
    """AAC needs a named channel layout; an unnamed 'N channels' gets the standard one for N."""
    name = audio.layout.name
    if not name.endswith("channels"):
        return name
    return STANDARD_LAYOUTS.get(audio.channels, "stereo")


def _pixel_format(requested: str, width: int, height: int) -> str:
    """4:2:0 needs even sizes: odd-sized video keeps its size in 4:4:4 instead."""
    if requested == "yuv420p" and (width % 2 or height % 2):
        return "yuv444p"
    return requested


def _i420_frame(image: np.ndarray) -> av.VideoFrame:
    """An even-sized RGB image as a 4:2:0 frame. OpenCV converts (BT.601, limited range, as swscale
    does) several times faster than the encoder's own RGB conversion."""
    return av.VideoFrame.from_ndarray(cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420), format="yuv420p")
