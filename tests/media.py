"""Known-content test videos, generated with PyAV."""

from __future__ import annotations

from dataclasses import dataclass
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


# ---------------------------------------------------------------------------------------------------------------
# Damaged inputs: a seeded corpus of broken files, and a bounded in-process run of `streamer process` on one.


def remux(source: Path, target: Path, options: dict | None = None, format: str | None = None) -> Path:
    """Copy every stream's packets into another container (options: e.g. movflags=+faststart)."""
    with av.open(str(source)) as reading, av.open(str(target), "w", format=format, options=options or {}) as writing:
        streams = {stream.index: writing.add_stream_from_template(stream) for stream in reading.streams}
        for packet in reading.demux():
            if packet.dts is None:
                continue
            packet.stream = streams[packet.stream.index]
            writing.mux(packet)
    return target


def box(data: bytes | bytearray, name: bytes) -> int:
    """Offset of an MP4 box's header (its 4-byte size) by its type, or -1."""
    found = bytes(data).find(name)
    return found - 4 if found >= 4 else -1


def damage_mp4_table(data: bytes, name: bytes, value: int) -> bytes:
    """Overwrite every entry's second field of an stts/ctts table (durations, composition offsets)."""
    data = bytearray(data)
    at = box(data, name)
    if at < 0:
        return bytes(data)
    entries = int.from_bytes(data[at + 12 : at + 16], "big")
    for entry in range(entries):
        field = at + 16 + entry * 8 + 4
        data[field : field + 4] = (value & 0xFFFFFFFF).to_bytes(4, "big")
    return bytes(data)


def swap_ts_chunks(data: bytes, rng, packets: int = 12) -> bytes:
    """Swap two runs of 188-byte transport packets: timestamps jump back and forth, as on a bad link."""
    chunks = [data[i : i + 188] for i in range(0, len(data), 188)]
    if len(chunks) < 4 * packets:
        packets = max(1, len(chunks) // 4)
    first = rng.randrange(len(chunks) // 4, len(chunks) // 2)
    second = rng.randrange(len(chunks) // 2, len(chunks) - packets)
    chunks[first : first + packets], chunks[second : second + packets] = (
        chunks[second : second + packets],
        chunks[first : first + packets],
    )
    return b"".join(chunks)


@dataclass
class Case:
    """One input of the corpus; `whole`: frames of the undamaged original (None: not a video)."""

    name: str
    path: Path
    kind: str  # truncated | flipped | header | timestamps | nonvideo | empty | path
    whole: int | None = None
    container: str = ""


BASES = (  # container, codec, audio, frames: tiny, so the whole corpus decodes in seconds
    ("mp4", "libx264", "aac", 24),
    ("faststart.mp4", "libx264", "aac", 24),
    ("faststart.mp4", "libx264", None, 18),
    ("mkv", "libx264", "aac", 24),
    ("mkv", "libx264", None, 16),
    ("ts", "libx264", "aac", 24),
    ("mov", "libx264", "pcm_s16le", 16),
    ("webm", "libvpx-vp9", None, 12),
)


def fuzz_corpus(folder: Path, seed: int = 2024, per_base: int = 28) -> list[Case]:
    """At least 250 damaged, odd or hostile inputs, the same for the same seed."""
    import random

    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []

    def add(name: str, data: bytes, kind: str, whole: int | None, container: str = "") -> None:
        path = folder / name
        path.write_bytes(data)
        cases.append(Case(name, path, kind, whole, container))

    for number, (container, codec, audio, frames) in enumerate(BASES):
        suffix = container.rsplit(".", 1)[-1]
        plain = folder / f"base{number}.{suffix}"
        make_video(plain, frames=frames, width=32, height=24, codec=codec, audio=audio)
        if container.startswith("faststart"):
            remux(plain, folder / f"base{number}.fs.{suffix}", {"movflags": "+faststart"})
            plain.unlink()
            plain = folder / f"base{number}.fs.{suffix}"
        data = plain.read_bytes()
        cases.append(Case(plain.name, plain, "whole", frames, container))
        stem = f"b{number}"
        for step in range(per_base // 3):  # truncations: a few hundred bytes up to nearly whole
            cut = 300 if step == 0 else rng.randrange(len(data) // 10, len(data) - 16)
            add(f"{stem}-cut{step}.{suffix}", data[:cut], "truncated", frames, container)
        for step in range(per_base // 3):  # flipped bytes in the body
            flipped = bytearray(data)
            for _ in range(rng.randint(1, 12)):
                at = rng.randrange(len(data) // 8, len(data))
                flipped[at] ^= 1 << rng.randrange(8)
            add(f"{stem}-flip{step}.{suffix}", bytes(flipped), "flipped", frames, container)
        for step in range(per_base - 2 * (per_base // 3)):  # header damage: the first few hundred bytes
            damaged = bytearray(data)
            for _ in range(rng.randint(1, 6)):
                at = rng.randrange(0, min(len(data), 400))
                damaged[at] = rng.randrange(256)
            add(f"{stem}-head{step}.{suffix}", bytes(damaged), "header", frames, container)
        if suffix in ("mp4", "mov"):  # damaged timing tables, which FFmpeg still transcodes
            add(f"{stem}-stts0.{suffix}", damage_mp4_table(data, b"stts", 0), "timestamps", frames, container)
            add(f"{stem}-ctts.{suffix}", damage_mp4_table(data, b"ctts", -4096), "timestamps", frames, container)
        if suffix == "ts":
            for step in range(4):
                add(f"{stem}-swap{step}.ts", swap_ts_chunks(data, rng), "timestamps", frames, container)
    noise = rng.randbytes(4096)
    add("noise.mp4", noise, "nonvideo", None)
    add("zeros.mkv", bytes(8192), "nonvideo", None)
    add("text.mp4", b"not a video at all\n" * 40, "nonvideo", None)
    add("script.sh", b"#!/bin/sh\necho hello\n", "nonvideo", None)
    add("fake.png", b"\x89PNG\r\n\x1a\n" + noise[:200], "nonvideo", None)
    add("empty.mp4", b"", "empty", None)
    add("empty.ts", b"", "empty", None)
    (folder / "a folder.mp4").mkdir(exist_ok=True)
    cases.append(Case("a folder.mp4", folder / "a folder.mp4", "path"))
    loop_a, loop_b = folder / "loop-a.mp4", folder / "loop-b.mp4"
    for link, to in ((loop_a, loop_b), (loop_b, loop_a)):
        if not link.is_symlink():
            link.symlink_to(to.name)
    cases.append(Case("loop-a.mp4", loop_a, "path"))
    dangling = folder / "dangling.mp4"
    if not dangling.is_symlink():
        dangling.symlink_to("nowhere.mp4")
    cases.append(Case("dangling.mp4", dangling, "path"))
    cases.append(Case("/dev/null", Path("/dev/null"), "path"))
    cases.append(Case("/dev/zero", Path("/dev/zero"), "path"))
    return cases


@dataclass
class Outcome:
    """How `streamer process` ended on one case."""

    code: int | None
    stderr: str
    seconds: float
    summary: dict | None
    traceback: str | None = None


def run_case(case: Case, output: Path, timeout: float = 1.0) -> Outcome:
    """`streamer process CASE -o OUTPUT --json` in this process, with the identity model."""
    import contextlib
    import io
    import json
    import time
    import traceback

    from streamer.cli import main

    err, out = io.StringIO(), io.StringIO()
    args = ["process", str(case.path), "-o", str(output), "-y", "--model", "identity", "--json"]
    started = time.perf_counter()
    trace = None
    code = None
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main([*args, "--timeout", f"{timeout:g}"])
        except BaseException:  # anything main lets through is a traceback for the user
            trace = traceback.format_exc()
    seconds = time.perf_counter() - started
    text = out.getvalue().strip()
    summary = json.loads(text.splitlines()[-1]) if code == 0 and text else None
    return Outcome(code, err.getvalue(), seconds, summary, trace)
