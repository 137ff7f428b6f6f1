"""Figures for live streams, through a real RTSP relay on loopback.

  python benchmarks/live.py [--seconds 20] [--fps 30] [--size 1280x720] [--model unet] [--against DIR]

1. Added latency at 720p with the demo U-Net, as streamer measures it: from a frame's arrival out of its
   source to its encoding (p50, p95), with its parts (waiting for the model, inference, render, encode and
   mux), next to the inference time per frame and the frame interval, and the verdict p95 ≤ inference +
   one interval. The camera is a replay of H.264 encoded ahead (a camera encodes on its own chip, not on
   this machine's cores), and nothing else reads the streams. Then the same job again with two readers
   decoding on this machine: end to end at a reader (publish → streamer → RTSP out → reader), next to the
   relay's own latency (publish → reader on the input path) measured at the same time. With --against DIR
   (another checkout, e.g. before a change) both run alternately on the same feed.
2. Frames dropped with a model slower than the input (sleeps 50 ms per frame, input 30 fps).
3. Time to reconnect: from the publisher's restart to the first new frame out of the streamer.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from media import frame_image  # noqa: E402
from rtsp_fixtures import RtspRelay, publish  # noqa: E402

LOOP = 200  # frames in the camera's loop; frame_image(i) and frame_image(i + 200) look alike

PARTS = ("total", "queue", "inference", "render", "encode")

SIGNATURES = [float(frame_image(i, 64, 8)[:, :8].mean()) for i in range(LOOP)]


def camera_feed(width: int, height: int, fps: int) -> bytes:
    """frame_image(0..LOOP-1) as H.264 in Matroska, with the settings `publish` uses (x264 ultrafast,
    zerolatency, a key frame every 15 frames)."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="matroska") as container:
        video = container.add_stream(
            "libx264", rate=fps, options={"preset": "ultrafast", "tune": "zerolatency", "g": "15"}
        )
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        for index in range(LOOP):
            frame = av.VideoFrame.from_ndarray(frame_image(index, width, height), format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    return buffer.getvalue()


def replay(url: str, feed: bytes, fps: int, stop_event: threading.Event) -> list[float]:
    """Publishes `feed` over RTSP/TCP in a loop, paced at `fps` in real time, until stop_event is set.
    Returns the time.monotonic() at which each frame was sent, by index."""
    with av.open(io.BytesIO(feed)) as source:
        template = source.streams.video[0]
        packets = [(bytes(packet), packet.is_keyframe) for packet in source.demux(template) if packet.size]
        sent: list[float] = []
        with av.open(url, "w", format="rtsp", options={"rtsp_transport": "tcp"}, timeout=5) as container:
            stream = container.add_stream_from_template(template)
            start = time.monotonic()
            index = 0
            while not stop_event.is_set():
                time.sleep(max(0.0, start + index / fps - time.monotonic()))
                data, key = packets[index % len(packets)]
                packet = av.Packet(data)
                packet.pts = packet.dts = index
                packet.time_base, packet.is_keyframe, packet.stream = Fraction(1, fps), key, stream
                sent.append(time.monotonic())
                container.mux(packet)
                index += 1
    return sent


def streamer(*args: str, root: Path = ROOT) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=f"{root}{os.pathsep}{root / 'tests'}")
    return subprocess.Popen(
        [sys.executable, "-m", "streamer", "process", *args, "--json", "-q"],
        env=env,
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(process: subprocess.Popen) -> dict:
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    if not out.strip():
        print(f"  streamer failed: {err.strip()}")
    return json.loads(out) if out.strip() else {}


def receive(url: str, until: threading.Event, arrivals: list) -> None:
    """(arrival time, brightness of the left quarter) of every frame read from `url`."""
    while not until.is_set():
        try:
            with av.open(
                url, options={"rtsp_transport": "tcp", "analyzeduration": "0", "probesize": "32768"}, timeout=(2, 2)
            ) as container:
                container.streams.video[0].thread_type = "SLICE"
                for frame in container.decode(video=0):
                    image = frame.to_ndarray(format="rgb24")
                    arrivals.append((time.monotonic(), float(image[:, : image.shape[1] // 4].mean())))
                    if until.is_set():
                        return
        except av.error.FFmpegError:
            time.sleep(0.1)


def latencies(sent: dict[int, float], arrivals: list) -> list[float]:
    """Match each arrival to the most recent sent frame with that brightness."""
    result = []
    for arrived, value in arrivals:
        candidates = [(t, i) for i, t in sent.items() if abs(SIGNATURES[i % LOOP] - value) <= 2 and t <= arrived]
        if candidates:
            result.append(arrived - max(candidates)[0])
    return result


def percentiles(values: list[float]) -> str:
    if not values:
        return "no frames"
    p50, p95 = np.percentile(values, [50, 95])
    return f"p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms ({len(values)} frames)"


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}"


def watch(url: str, until: threading.Event, arrivals: list) -> None:
    """The arrival time of every packet read from `url`, demuxed only (nothing decoded on this machine)."""
    while not until.is_set():
        try:
            with av.open(url, options={"rtsp_transport": "tcp"}, timeout=(2, 2)) as container:
                for packet in container.demux(video=0):
                    if packet.size:
                        arrivals.append((time.monotonic(), None))
                    if until.is_set():
                        return
        except av.error.FFmpegError:
            time.sleep(0.1)


def added_latency(
    relay: RtspRelay,
    seconds: float,
    model: str,
    fps: int,
    feed: bytes,
    root: Path,
    name: str,
    readers: bool,
) -> dict:
    """One live job on a fresh path of the relay, measured for `seconds` once its first frame is out (the
    model loads meanwhile); prints and returns streamer's summary. With `readers`, both the input and the
    output are read and decoded on this machine, and latencies at the readers are printed too."""
    path = f"/in-{time.monotonic_ns()}"
    done, published = threading.Event(), threading.Event()
    direct, processed, sent = [], [], {}

    def send():
        sent.update(enumerate(replay(relay.url(path), feed, fps, published)))

    publisher = threading.Thread(target=send)
    publisher.start()
    time.sleep(0.5)
    job = streamer(relay.url(path), "-o", relay.url(path + "-out"), "--model", model, "--alpha", "0", root=root)
    if readers:
        threads = [
            threading.Thread(target=receive, args=(relay.url(where), done, sink))
            for where, sink in ((path, direct), (path + "-out", processed))
        ]
    else:
        threads = [threading.Thread(target=watch, args=(relay.url(path + "-out"), done, processed))]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 300
    while not processed and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.1)
    time.sleep(seconds)
    published.set()
    publisher.join()
    time.sleep(1.0)
    done.set()
    summary = stop(job)
    for thread in threads:
        thread.join()
    name = f"{name}, {'two readers decoding' if readers else 'streamer alone'}"
    interval = 1 / fps
    parts = summary.get("latency_parts") or {}
    decoded = (summary.get("frames") or 0) + (summary.get("dropped") or 0)
    print(
        f"  {name}: arrival→encoded p50 {ms(summary.get('latency_p50'))} ms, p95 {ms(summary.get('latency_p95'))} ms; "
        f"in {summary.get('input_fps')} fps, out {summary.get('fps')} fps, dropped {summary.get('dropped')} of "
        f"{decoded} ({(summary.get('dropped') or 0) / max(decoded, 1):.0%})"
    )
    if parts:
        print(
            "    parts p50/p95 (ms): "
            + ", ".join(f"{part} {ms(parts[part]['p50'])}/{ms(parts[part]['p95'])}" for part in PARTS if part in parts)
        )
        p95 = parts["total"]["p95"]
        print(f"    inference per frame p50 {ms(parts['inference']['p50'])} ms, frame interval {ms(interval)} ms")
        for which in ("p50", "p95"):
            bound = parts["inference"][which] + interval
            print(
                f"    p95 {ms(p95)} ms {'≤' if p95 <= bound else '>'} inference {which} + one interval = "
                f"{ms(bound)} ms ({p95 / bound:.2f}×): {'holds' if p95 <= bound else 'does not hold'}"
            )
    else:
        print("    parts: not reported by this version")
    if not readers:
        return summary
    # end to end at a reader, after the first 2 s of output (the model's first calls build its graph)
    relay_only = latencies(sent, direct)
    through = (
        latencies(sent, [(at, value) for at, value in processed if at >= processed[0][0] + 2]) if processed else []
    )
    print(f"    end to end: relay alone {percentiles(relay_only)}; through streamer {percentiles(through)}")
    if relay_only and through:
        added = np.percentile(through, [50, 95]) - np.percentile(relay_only, [50, 95])
        print(f"    added by streamer at the reader: p50 {added[0] * 1000:.0f} ms, p95 {added[1] * 1000:.0f} ms")
    return summary


def dropped_frames(relay: RtspRelay, seconds: float) -> None:
    frames = int(seconds * 30)
    publisher = threading.Thread(target=publish, args=(relay.url("/slow"), frames, 640, 360, 30))
    publisher.start()
    time.sleep(0.5)
    job = streamer(
        relay.url("/slow"),
        "-o",
        str(Path("/tmp") / "live-drop.mp4"),
        "-y",
        "--model",
        "benchmarks.redis_pipeline:sleepy",
        "--batch",
        "1",
    )
    publisher.join()
    time.sleep(1.0)
    summary = stop(job)
    decoded = summary["frames"] + summary["dropped"]
    print(
        f"  input {summary['input_fps']:.1f} fps, model ~20 fps: kept {summary['frames']}, dropped "
        f"{summary['dropped']} of {decoded} ({summary['dropped'] / max(decoded, 1):.0%}); arrival→encode "
        f"p50 {summary['latency_p50'] * 1000:.0f} ms, p95 {summary['latency_p95'] * 1000:.0f} ms"
    )


def reconnect_time(relay: RtspRelay) -> None:
    done = threading.Event()
    out: list = []
    restarted = {}

    def sessions():
        publish(relay.url("/flaky"), 150, 320, 240, 30)
        time.sleep(3.0)
        restarted["at"] = time.monotonic()
        publish(relay.url("/flaky"), 90, 320, 240, 30)

    publisher = threading.Thread(target=sessions)
    publisher.start()
    time.sleep(0.5)
    job = streamer(
        relay.url("/flaky"),
        "-o",
        relay.url("/flaky-out"),
        "--model",
        "identity",
        "--timeout",
        "2",
        "--max-backoff",
        "1",
    )
    reader = threading.Thread(target=receive, args=(relay.url("/flaky-out"), done, out))
    reader.start()
    publisher.join()
    time.sleep(1.0)
    done.set()
    stop(job)
    reader.join()
    after = [arrived for arrived, _ in out if arrived > restarted["at"]]
    if after:
        print(
            f"  first frame out {after[0] - restarted['at']:.2f} s after the publisher came back "
            f"(reconnect attempts every ≤ 1 s)"
        )
    else:
        print("  no frame after the restart")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--model", default="unet")
    parser.add_argument("--fps", type=int, default=30, help="the feed's frame rate (default: 30)")
    parser.add_argument("--size", default="1280x720", help="the feed's WIDTHxHEIGHT (default: 1280x720)")
    parser.add_argument("--against", type=Path, help="another checkout to measure alternately (section 1)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each checkout in section 1 (default: 1)")
    parser.add_argument("--only", type=int, choices=(1, 2, 3), help="run only this section")
    options = parser.parse_args()
    size = tuple(int(side) for side in options.size.lower().split("x"))
    relay = RtspRelay().start()
    try:
        if options.only in (None, 1):
            print(f"1. Added latency, {options.size} at {options.fps} fps, {options.model}")
            runs = [("this tree", ROOT)] + ([(f"{options.against}", options.against)] if options.against else [])
            feed = camera_feed(*size, options.fps)
            totals: dict[tuple[str, bool], list[float]] = {}
            for repeat in range(options.repeats):
                for name, root in runs if repeat % 2 == 0 else runs[::-1]:
                    for readers in (False, True):
                        summary = added_latency(
                            relay, options.seconds, options.model, options.fps, feed, root, name, readers
                        )
                        totals.setdefault((name, readers), []).append(summary.get("latency_p95") or float("nan"))
            if options.against:
                for readers in (False, True):
                    after, before = (float(np.median(totals[name, readers])) for name, _ in runs)
                    print(
                        f"  p95 arrival→encoded ({'two readers' if readers else 'alone'}), this tree / "
                        f"{options.against}: {after / before:.2f}×"
                    )
        if options.only in (None, 2):
            print("2. Frames dropped with a slower model (50 ms per frame)")
            dropped_frames(relay, options.seconds)
        if options.only in (None, 3):
            print("3. Reconnect")
            reconnect_time(relay)
    finally:
        relay.stop()


if __name__ == "__main__":
    main()
