"""Known-content test videos, generated with PyAV."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def frame_image(index: int, width: int, height: int) -> np.ndarray:
    """A frame whose left half brightness encodes its index (survives lossy coding)."""
    image = np.zeros((height, width, 3), np.uint8)
    image[:, : width // 2] = (index * 37) % 200 + 30
    image[:, width // 2 :, 1] = 90
    return image


def make_video(
    path: Path,
    frames: int = 12,
    width: int = 64,
    height: int = 48,
    rate: Fraction | int = 30,
    audio: str | None = None,
    rotation: int = 0,
    codec: str = "libx264",
    pix_fmt: str | None = None,
) -> Path:
    """Write `frames` frames at `rate`; audio=None|'aac'|'pcm_s16le' adds a tone of the same length."""
    rate = Fraction(rate)
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=rate)
        video.width, video.height = width, height
        video.pix_fmt = pix_fmt or ("yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p")
        video.codec_context.time_base = 1 / rate
        if rotation:
            video.set_display_rotation(rotation)
        sound = None
        if audio:
            sound = container.add_stream(audio, rate=48000)
            sound.layout = "stereo"
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(frame_image(index, width, height), format="rgb24")
            frame.pts = index
            frame.time_base = 1 / rate
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if sound is not None:
            samples = int(48000 * frames / rate)
            t = np.arange(samples) / 48000
            tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            fmt = "s16" if audio == "pcm_s16le" else "fltp"
            for start in range(0, samples, 1024):
                chunk = tone[start : start + 1024]
                data = np.stack([chunk, chunk])
                if fmt == "s16":
                    data = (data.T.reshape(1, -1) * 32767).astype(np.int16)
                frame = av.AudioFrame.from_ndarray(data, format=fmt, layout="stereo")
                frame.sample_rate = 48000
                frame.pts = start
                container.mux(sound.encode(frame))
            container.mux(sound.encode(None))
    return path


def probe(path: Path) -> dict:
    """What a user checks on an output: counts, rate, timestamps, size, rotation, audio."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = list(container.decode(video))
        audio = container.streams.audio[0] if container.streams.audio else None
        return {
            "frames": len(frames),
            "rate": video.average_rate,
            "times": [float(frame.pts * frame.time_base) for frame in frames],
            "size": (video.codec_context.width, video.codec_context.height),
            "pix_fmt": video.codec_context.pix_fmt,
            "rotation": frames[0].rotation if frames else None,
            "images": [frame.to_ndarray(format="rgb24") for frame in frames],
            "audio_codec": audio.codec_context.name if audio else None,
            "audio_seconds": float(audio.duration * audio.time_base) if audio and audio.duration else None,
            "format": container.format.name,
        }
