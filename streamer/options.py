"""The settings of each stage of a job, as plain data: how the input is opened, how a live input is kept
going, how frames are encoded and where they are written.

Light to import (no PyAV, NumPy or OpenCV), so that a command that only describes a job (`submit`) loads none
of the frame code; the stages that use them import them from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SourceOptions:
    """How to open an input; the network settings matter for live streams."""

    rtsp_transport: str = "tcp"  # tcp | udp
    timeout: float = 10.0  # seconds to connect, and to wait for data once connected
    live: bool | None = None  # None: decide from the URL and what FFmpeg reports
    storage: dict = field(default_factory=dict)  # fsspec options for s3://, gs://, az:// … inputs
    start: float | None = None  # seconds: seek here first; output timestamps and audio start at 0
    duration: float | None = None  # seconds of input to read (from start)
    stride: int = 1  # keep every Nth frame (timestamps kept, so each frame shows longer)
    max_fps: float | None = None  # keep at most this many frames per second of input time


@dataclass
class EncodeConfig:
    """Video encoder settings; the defaults follow the container (an mp4 gets browser-playable H.264)."""

    codec: str | None = None  # None: the container's (webm: VP9, gif: gif, mkv/mp4/others: H.264)
    crf: int = 23
    preset: str = "veryfast"
    pix_fmt: str | None = None  # None: yuv420p, or what the codec takes (gif: rgb8)
    threads: int = 0  # 0: FFmpeg picks
    tune: str | None = None  # x264 tune, e.g. zerolatency for live outputs
    gop: int | None = None  # frames between keyframes (None: the encoder's default)
    scale: tuple[int, int] | None = None  # output WIDTH, HEIGHT; -1/-2: keep the aspect (-2: even)
    bitrate: str | None = None  # target bitrate such as 2M (instead of crf)
    maxrate: str | None = None  # peak bitrate, with bufsize (VBV), for network outputs
    bufsize: str | None = None


DROP_POLICIES = ("oldest", "newest", "none")


@dataclass
class LiveConfig:
    """How a live input is kept going."""

    drop: str = "oldest"  # when the pipeline falls behind: drop the oldest or the newest frame, or none
    give_up: float = 60.0  # seconds without a frame before the job fails
    max_backoff: float = 8.0  # longest wait between reconnect attempts


@dataclass
class OutputConfig:
    """Every output of one job and how the live ones are cut."""

    targets: tuple[str, ...] = ()
    storage: dict = field(default_factory=dict)  # fsspec options for remote targets
    segment: float | None = None  # seconds per recording file; None: one file
    hls_time: float = 2.0  # seconds per HLS segment
    hls_list_size: int = 6  # segments kept in a rolling HLS playlist (0: all)
    overwrite: bool = False
    format: str | None = None  # FFmpeg container name for `-` (stdout) and files: matroska, mpegts, mp4 …
