"""Where rendered video goes: files, time-split recordings, HLS playlists and network streams, several at once."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av

from streamer.errors import StreamerError
from streamer.options import EncodeConfig, OutputConfig
from streamer.sink import VideoSink, check_output, is_pipe
from streamer.storage import filesystem, is_remote

NETWORK_FORMATS = {
    "rtsp": "rtsp",
    "rtsps": "rtsp",
    "rtmp": "flv",
    "rtmps": "flv",
    "srt": "mpegts",
    "udp": "mpegts",
    "tcp": "mpegts",
}


@dataclass(frozen=True)
class Stream:
    """The geometry and timing every output encodes with."""

    width: int
    height: int
    rate: Fraction
    time_base: Fraction
    rotation: int = 0


def kind(target: str) -> str:
    """file | hls | network | pipe (stdout) | remote (a bucket: written locally, then uploaded whole)"""
    if is_pipe(target):
        return "pipe"
    if is_remote(target):
        return "remote"
    if "://" in target:
        scheme = target.split("://", 1)[0].lower()
        if scheme not in NETWORK_FORMATS:
            raise StreamerError(
                f"{target}: cannot publish to {scheme}://; use a file, .m3u8, rtsp://, rtmp://, srt:// or udp://"
            )
        return "network"
    return "hls" if target.lower().endswith(".m3u8") else "file"


def check_outputs(config: OutputConfig) -> None:
    """Fail before any work on an output that cannot be written."""
    pipes = [target for target in config.targets if kind(target) == "pipe"]
    if len(pipes) > 1:
        raise StreamerError("-o -: stdout can take one output only")
    if pipes and not config.format:
        raise StreamerError("-o -: writing to stdout needs --format, e.g. matroska, mpegts or mp4 (fragmented)")
    if config.format:
        check_format(config.format)
    for target in config.targets:
        if kind(target) == "pipe":
            continue
        if kind(target) == "remote":
            fs, path = filesystem(target, config.storage)
            if fs.exists(path) and not config.overwrite:
                raise StreamerError(f"{target}: already exists; pass -y (overwrite=True in Python) to overwrite it")
        elif kind(target) == "file" and config.segment is None:
            check_output(target, config.overwrite, named=bool(config.format))
        elif kind(target) in ("file", "hls"):
            folder = Path(target).parent
            if not folder.is_dir():
                raise StreamerError(f"{target}: folder {folder} does not exist; create it first")
            if not os.access(folder, os.W_OK):
                raise StreamerError(f"{target}: folder {folder} is not writable")


def check_format(name: str) -> None:
    """--format must name an FFmpeg muxer."""
    try:
        av.format.ContainerFormat(name, "w")
    except (ValueError, av.error.FFmpegError):
        raise StreamerError(
            f"--format {name}: no such container; use matroska, mpegts or mp4 (fragmented on stdout)"
        ) from None


def open_outputs(config: OutputConfig, stream: Stream, encode: EncodeConfig, audio=None):
    """One sink per target behind a single sink interface."""
    sinks = []
    try:
        for target in config.targets:
            sinks.append(_open(target, config, stream, encode, audio))
    except BaseException:
        for sink in sinks:
            sink.abort()
        raise
    return sinks[0] if len(sinks) == 1 else MultiSink(sinks)


def _open(target: str, config: OutputConfig, stream: Stream, encode: EncodeConfig, audio):
    geometry = (stream.width, stream.height, stream.rate, stream.time_base)
    target_kind = kind(target)
    if target_kind in ("network", "hls"):  # viewers join mid-stream: regular keyframes, low latency
        seconds = config.hls_time if target_kind == "hls" else 2.0
        encode = replace(
            encode, gop=encode.gop or max(1, round(seconds * float(stream.rate))), tune=encode.tune or "zerolatency"
        )
    if target_kind == "network":
        scheme = target.split("://", 1)[0].lower()
        options = {"rtsp_transport": "tcp"} if scheme.startswith("rtsp") else {}
        return VideoSink(
            target, *geometry, rotation=stream.rotation, encode=encode, format=NETWORK_FORMATS[scheme], options=options
        )
    if target_kind == "remote":
        named = Path(target.rsplit("/", 1)[-1]).suffix  # FFmpeg picks the container from it; else mp4
        return VideoSink(
            target,
            *geometry,
            rotation=stream.rotation,
            encode=encode,
            audio=audio,
            format=None if named else "mp4",
            storage=config.storage,
        )
    if target_kind == "hls":
        options = {
            "hls_time": f"{config.hls_time:g}",
            "hls_list_size": str(config.hls_list_size),
            "hls_flags": "delete_segments+independent_segments" if config.hls_list_size else "independent_segments",
        }
        return VideoSink(
            target, *geometry, rotation=stream.rotation, encode=encode, audio=audio, format="hls", options=options
        )
    if target_kind == "pipe":
        return VideoSink(target, *geometry, rotation=stream.rotation, encode=encode, audio=audio, format=config.format)
    if config.segment:
        return SegmentedSink(target, config.segment, stream, encode, audio, config.overwrite)
    return VideoSink(target, *geometry, rotation=stream.rotation, encode=encode, audio=audio, format=config.format)


class SegmentedSink:
    """A recording split every `seconds` into files named after their start time (UTC)."""

    def __init__(self, target: str, seconds: float, stream: Stream, encode: EncodeConfig, audio, overwrite: bool):
        self.pattern, self.seconds, self.stream = Path(target), seconds, stream
        self.encode, self.audio_template, self.overwrite = encode, audio, overwrite
        self.frames = 0
        self.written: list[Path] = []
        self._current: VideoSink | None = None
        self._started = None

    @property
    def audio(self):
        return self._current.audio if self._current else None

    @property
    def audio_copied(self):
        return self._current.audio_copied if self._current else None

    def write(self, image, pts: int, time_base: Fraction) -> None:
        at = float(pts * time_base)
        if self._current is None or at - self._started >= self.seconds:
            self._rotate(at)
        self._current.write(image, pts, time_base)
        self.frames += 1

    def write_audio(self, packet) -> None:
        if self._current is not None:
            self._current.write_audio(packet)

    def _rotate(self, at: float) -> None:
        if self._current is not None:
            self.written.append(self._current.close())
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        path = self.pattern.with_name(f"{self.pattern.stem}-{stamp}{self.pattern.suffix}")
        if path.exists() and path in self.written:
            path = path.with_name(f"{path.stem}-{len(self.written)}{path.suffix}")
        self._current = VideoSink(
            check_output(path, self.overwrite),
            self.stream.width,
            self.stream.height,
            self.stream.rate,
            self.stream.time_base,
            rotation=self.stream.rotation,
            encode=self.encode,
            audio=self.audio_template,
        )
        self._started = at

    def close(self) -> Path:
        if self._current is not None:
            self.written.append(self._current.close())
            self._current = None
        return self.written[-1] if self.written else self.pattern

    close_partial = close  # every segment is a whole recording of its time

    def abort(self) -> None:
        if self._current is not None:
            self._current.abort()


def _copy(packet: av.Packet) -> av.Packet:
    copy = av.Packet(bytes(packet))
    copy.pts, copy.dts, copy.time_base, copy.duration = packet.pts, packet.dts, packet.time_base, packet.duration
    copy.stream = packet.stream
    return copy


class MultiSink:
    """Writes every frame to several sinks; the job's outputs succeed or fail together."""

    def __init__(self, sinks: list):
        self.sinks = sinks

    @property
    def frames(self) -> int:
        return min(sink.frames for sink in self.sinks)

    @property
    def audio(self):
        return next((sink.audio for sink in self.sinks if sink.audio is not None), None)

    @property
    def audio_copied(self):
        return next((sink.audio_copied for sink in self.sinks if sink.audio is not None), None)

    def write(self, image, pts: int, time_base: Fraction) -> None:
        for sink in self.sinks:
            sink.write(image, pts, time_base)

    def write_audio(self, packet) -> None:
        """Muxing takes a packet's data, so every sink but the last gets a copy."""
        for sink in self.sinks[:-1]:
            sink.write_audio(_copy(packet))
        self.sinks[-1].write_audio(packet)

    def close(self) -> str:
        return ", ".join(str(sink.close()) for sink in self.sinks)

    def close_partial(self) -> str | None:
        written = [sink.close_partial() for sink in self.sinks]
        return ", ".join(str(path) for path in written if path) or None

    def abort(self) -> None:
        for sink in self.sinks:
            sink.abort()


class Discard:
    """A sink that counts frames and keeps none: for a job whose frames go to the caller (`streamer.frames`)."""

    audio = None
    audio_copied = False

    def __init__(self) -> None:
        self.frames = 0

    def write(self, image, pts: int, time_base) -> None:
        self.frames += 1

    def write_audio(self, packet) -> None:
        pass

    def close(self) -> None:
        return None

    def close_partial(self) -> None:
        return None

    def abort(self) -> None:
        pass
