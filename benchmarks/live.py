"""Figures for live streams, through a real RTSP relay on loopback.

  python benchmarks/live.py [--seconds 20]

1. Added latency at 720p with the demo U-Net: publish → streamer → RTSP out → reader, per frame,
   next to the relay's own latency (publish → reader on the input path) measured at the same time.
2. Frames dropped with a model slower than the input (sleeps 50 ms per frame, input 30 fps).
3. Time to reconnect: from the publisher's restart to the first new frame out of the streamer.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from media import frame_image  # noqa: E402
from rtsp_fixtures import RtspRelay, publish  # noqa: E402

SIGNATURES = [float(frame_image(i, 64, 8)[:, :8].mean()) for i in range(200)]


def streamer(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'tests'}")
    return subprocess.Popen(
        [sys.executable, "-m", "streamer", "process", *args, "--json", "-q"],
        env=env,
        cwd=ROOT,
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
        candidates = [(t, i) for i, t in sent.items() if abs(SIGNATURES[i % 200] - value) <= 2 and t <= arrived]
        if candidates:
            result.append(arrived - max(candidates)[0])
    return result


def percentiles(values: list[float]) -> str:
    if not values:
        return "no frames"
    p50, p95 = np.percentile(values, [50, 95])
    return f"p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms ({len(values)} frames)"


def added_latency(relay: RtspRelay, seconds: float, model: str) -> None:
    frames = int(seconds * 30)
    done = threading.Event()
    direct, processed, sent = [], [], {}

    def send():
        times = publish(relay.url("/in"), frames, 1280, 720, 30)
        sent.update(enumerate(times))

    publisher = threading.Thread(target=send)
    publisher.start()
    time.sleep(0.5)
    job = streamer(relay.url("/in"), "-o", relay.url("/out"), "--model", model, "--alpha", "0", "--batch", "1")
    readers = [
        threading.Thread(target=receive, args=(relay.url(path), done, sink))
        for path, sink in (("/in", direct), ("/out", processed))
    ]
    for reader in readers:
        reader.start()
    publisher.join()
    time.sleep(1.0)
    done.set()
    summary = stop(job)
    for reader in readers:
        reader.join()
    relay_only = latencies(sent, direct)
    through = latencies(sent, processed)
    print(f"  relay alone (publish → reader): {percentiles(relay_only)}")
    print(f"  through streamer ({model}): {percentiles(through)}")
    if relay_only and through:
        added = np.percentile(through, [50, 95]) - np.percentile(relay_only, [50, 95])
        print(f"  added by streamer: p50 {added[0] * 1000:.0f} ms, p95 {added[1] * 1000:.0f} ms")
    print(
        f"  streamer's own report: in {summary.get('input_fps')} fps, out {summary.get('fps')} fps, "
        f"dropped {summary.get('dropped')}, arrival→encode p50 {1000 * (summary.get('latency_p50') or 0):.0f} ms "
        f"p95 {1000 * (summary.get('latency_p95') or 0):.0f} ms"
    )


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
    options = parser.parse_args()
    relay = RtspRelay().start()
    try:
        print(f"1. Added latency, 720p at 30 fps, {options.model}, batch 1")
        added_latency(relay, options.seconds, options.model)
        print("2. Frames dropped with a slower model (50 ms per frame)")
        dropped_frames(relay, options.seconds)
        print("3. Reconnect")
        reconnect_time(relay)
    finally:
        relay.stop()


if __name__ == "__main__":
    main()
