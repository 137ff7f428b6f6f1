"""The RTSP relay (tests/rtsp_relay.py, run by the system python) and a real-time RTSP publisher, for tests."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from media import frame_image

RELAY = Path(__file__).resolve().parent / "rtsp_relay.py"
SYSTEM_PYTHON = "/usr/bin/python3"  # the relay needs GStreamer's RTSP server through `gi`, which the venv lacks
PACKAGES = "python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp gstreamer1.0-plugins-good gstreamer1.0-plugins-bad"


class RtspRelay:
    """tests/rtsp_relay.py on 127.0.0.1 and a free port: publishers RECORD to url(path), readers PLAY it."""

    def __init__(self, python: str = SYSTEM_PYTHON):
        self.python = python
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self.log = None

    def start(self, timeout: float = 15.0) -> "RtspRelay":
        """Launches the relay on a port that the OS picks, and waits for its `READY <port>` line."""
        if not os.access(self.python, os.X_OK):
            raise RuntimeError(f"the RTSP relay needs {self.python} with GStreamer; apt-get install {PACKAGES}")
        self.log = tempfile.TemporaryFile("w+")
        self.process = subprocess.Popen(
            [self.python, str(RELAY), "--port", "0"], stdout=subprocess.PIPE, stderr=self.log, text=True
        )
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            ready = selector.select(timeout)
        line = self.process.stdout.readline() if ready else ""
        if not line.startswith("READY "):
            self.stop()
            self.log.seek(0)
            raise RuntimeError(
                f"the RTSP relay did not start within {timeout} s "
                f"(apt-get install {PACKAGES}?):\n{line}{self.log.read()}"
            )
        self.port = int(line.split()[1])
        return self

    def url(self, path: str) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM (SIGKILL if it lingers); returns the relay's exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()
        return self.process.returncode

    def stderr(self) -> str:
        """What the relay logged so far."""
        self.log.seek(0)
        return self.log.read()

    def __enter__(self) -> "RtspRelay":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def publish(
    url: str,
    frames: int,
    width: int,
    height: int,
    fps: int = 30,
    stop_event: threading.Event | None = None,
    realtime: bool = True,
    audio: bool = False,
    format: str = "rtsp",
) -> list[float]:
    """Publishes frame_image(0..frames-1) as H.264 (plus an AAC tone if `audio`) over RTSP/TCP (or, with
    format="mpegts" and a udp:// URL, as an MPEG-TS feed over UDP, as `ffmpeg -f mpegts udp://…` sends it).

    Frames are paced at `fps` in real time unless realtime=False; stops early once stop_event is set.
    Returns the time.monotonic() at which each published frame went to the encoder, by index.
    """
    rate = Fraction(fps)
    sent: list[float] = []
    options = {"rtsp_transport": "tcp"} if format == "rtsp" else {}
    with av.open(url, "w", format=format, options=options, timeout=5) as container:
        video = container.add_stream(
            "libx264", rate=rate, options={"preset": "ultrafast", "tune": "zerolatency", "g": "15"}
        )
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.codec_context.time_base = 1 / rate
        sound = container.add_stream("aac", rate=48000, layout="mono") if audio else None
        start = time.monotonic()
        for index in range(frames):
            if stop_event is not None and stop_event.is_set():
                break
            if realtime:
                time.sleep(max(0.0, start + index / rate - time.monotonic()))
            frame = av.VideoFrame.from_ndarray(frame_image(index, width, height), format="rgb24")
            frame.pts = index
            sent.append(time.monotonic())
            container.mux(video.encode(frame))
            if sound is not None:
                container.mux(sound.encode(tone(index, rate)))
        container.mux(video.encode(None))
        if sound is not None:
            container.mux(sound.encode(None))
    return sent


def tone(index: int, rate: Fraction) -> av.AudioFrame:
    """The 440 Hz mono audio that goes with video frame `index`."""
    start, stop = int(48000 * index / rate), int(48000 * (index + 1) / rate)
    samples = (0.3 * np.sin(2 * np.pi * 440 * np.arange(start, stop) / 48000)).astype(np.float32)
    frame = av.AudioFrame.from_ndarray(samples[None], format="fltp", layout="mono")
    frame.sample_rate, frame.pts = 48000, start
    return frame
