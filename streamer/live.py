"""Live inputs: reconnect when the stream drops, drop frames by policy, measure latency.

A live stream has no end and no seeking; the pipeline must keep up or drop frames, so that
latency never grows without bound. Output timestamps are arrival times: monotonic, real-time.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction

import av
import numpy as np

from streamer.errors import StreamerError
from streamer.frames import Frame
from streamer.models import ModelConfig
from streamer.options import DROP_POLICIES, EncodeConfig, LiveConfig, SourceOptions
from streamer.source import VideoSource, looks_live
from streamer.stages import Stopped

log = logging.getLogger(__name__)

LIVE_TIME_BASE = Fraction(1, 90000)


@dataclass(frozen=True)
class LivePolicy:
    """Every way a live input is handled differently from a file, decided once per job.

    A live input is latency first: one frame per model call and one model call at a time (no wait
    to fill a batch, nothing finishing out of order), a frame handed to the model only when it is
    free to start on it, and at most one frame waiting in front of it, where frames are dropped by
    policy when the pipeline falls behind (so latency stays bounded, not growing). Its frames are
    restamped with their arrival time and reconnected when the stream drops; its outputs encode with
    low latency (no lookahead, no B-frames) and regular keyframes for viewers who join mid-stream."""

    live: bool
    drop: str = "none"  # the DropQueue policy in front of the transport
    depth: int = 32  # frames held between two stages
    batch: int | None = None  # frames per model call (None: the model's batch size)
    parallel: int | None = None  # model calls at once (None: as configured)
    handoff: bool = False  # a frame leaves the drop queue only when a model thread is free to take it
    threads: int | None = None  # CPU threads of a model call when the user set none (None: every core)

    @classmethod
    def decide(cls, live: bool, config: LiveConfig, batch_size: int, queue_frames: int) -> "LivePolicy":
        if not live:
            return cls(live=False, drop="none", depth=queue_frames)
        # every core but one for the model: decoding and encoding must keep pace with the input meanwhile
        # (on 2 cores, a model call on both ran into the encoder's slices: p95 latency about 1.3x)
        threads = max(1, usable_cores() - 1)
        return cls(live=True, drop=config.drop, depth=1, batch=1, parallel=1, handoff=True, threads=threads)

    def model_config(self, model: ModelConfig) -> ModelConfig:
        """The model as this policy runs it in this process: its batch size and its CPU threads."""
        return replace(self.model_threads(model), batch_size=self.batch or model.batch_size)

    def model_threads(self, model: ModelConfig) -> ModelConfig:
        """The model with this policy's CPU threads, unless the user set them (also for workers on this machine)."""
        return replace(model, threads=model.threads or self.threads)

    def source(self, source: VideoSource, config: LiveConfig):
        """The source as the pipeline reads it: restamped and reconnecting when live."""
        return LiveSource(source, config) if self.live else source

    def encoding(self, encode: EncodeConfig, rate: Fraction) -> EncodeConfig:
        if not self.live:
            return encode
        return replace(encode, tune=encode.tune or "zerolatency", gop=encode.gop or max(1, round(2 * float(rate))))


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class SourceLost(StreamerError):
    """A live input gave no frame for the give-up time; what was recorded is kept."""


def open_source(url: str, options: SourceOptions, config: LiveConfig) -> VideoSource:
    """Open the input. A live one that is down at start (a camera still booting, a relay restarting) is
    retried with the same backoff as a reconnect, until --give-up; a file fails at once."""
    live = options.live if options.live is not None else looks_live(url)
    if not live or not (looks_live(url) or "://" in url):  # a local file played as live is not "down"
        return VideoSource(url, options)
    started = time.monotonic()
    backoff, attempts = 0.5, 0
    while True:
        attempts += 1
        try:
            # --duration of a stream is counted in arrival time by LiveSource, as ffmpeg -t counts a recording:
            # the sender's clock may start anywhere, and its end must not read as the stream dropping
            source = VideoSource(url, replace(options, duration=None))
            source.options = options
            return source
        except StreamerError as error:
            waited = time.monotonic() - started
            if waited >= config.give_up:
                raise StreamerError(
                    f"{error} (gave up after {attempts} attempts in {waited:.0f} s, --give-up {config.give_up:g})"
                ) from None
            if attempts == 1:
                log.warning("%s: not up yet; retrying for up to %g s (--give-up)", url, config.give_up)
            log.info("%s: %s; retrying in %.1f s", url, error, backoff)
            time.sleep(min(backoff, config.give_up - waited))  # the last attempt comes at --give-up
            backoff = min(backoff * 2, config.max_backoff)


class LiveSource:
    """A live input that reconnects with exponential backoff; frames carry their arrival time."""

    def __init__(self, source: VideoSource, config: LiveConfig):
        self.url, self.options, self.config = source.url, source.options, config
        self.gaps = 0
        self.reconnects = 0
        self.damage = None
        # the audio is carried, re-timed from the sender's clock to the output's (arrival time) at each (re)connect
        self.audio = source.audio
        self._last_audio: float | None = None  # seconds of the last audio packet given out
        self._source = source
        self.info = replace(self._source.info, time_base=LIVE_TIME_BASE, frames=None, duration=None, live=True)
        self._closed = threading.Event()

    def items(self) -> Iterator[Frame | av.Packet]:
        """Frames stamped with their arrival time, and audio packets moved to that clock; a file played as live
        is paced at its own rate. With --duration, ends after that much arrival time."""
        started, last_pts, index = None, -1, 0
        paced = not looks_live(self.url)
        limit = self.options.duration
        while not self._closed.is_set():
            first = None
            offset = None  # output time minus the sender's, for this connection's audio
            for item in self._source.items():
                if not isinstance(item, Frame):
                    moved = self._retimed(item, offset, limit)
                    if moved is not None:
                        yield moved
                    continue
                now = time.monotonic()
                started = now if started is None else started
                if paced:
                    first = item.seconds if first is None else first
                    wait = started + (item.seconds - first) - now
                    if wait > 0 and self._closed.wait(wait):
                        return
                    now = time.monotonic()
                last_pts = max(last_pts + 1, round((now - started) / LIVE_TIME_BASE))
                if limit is not None and last_pts * LIVE_TIME_BASE >= limit:
                    return
                if offset is None:
                    offset = last_pts * LIVE_TIME_BASE - item.seconds
                yield item.numbered(index, last_pts, LIVE_TIME_BASE)
                index += 1
            if self._closed.is_set() or paced:
                return
            self._reconnect()

    def _retimed(self, packet: av.Packet, offset: float | None, limit: float | None) -> av.Packet | None:
        """An audio packet moved by `offset` seconds onto the output clock; None before this connection's first
        frame, past --duration, or not after the last one given out (a reconnect's overlap)."""
        if self.audio is None or offset is None or packet.dts is None or not packet.time_base:
            return None
        time_base = float(packet.time_base)
        shift = round(offset / time_base)
        seconds = (packet.dts + shift) * time_base
        if seconds < 0 or (limit is not None and seconds >= limit):
            return None
        if self._last_audio is not None and seconds <= self._last_audio:
            return None
        self._last_audio = seconds
        packet.dts += shift
        packet.pts = packet.dts if packet.pts is None else packet.pts + shift
        return packet

    def _reconnect(self) -> None:
        reason = self._source.damage or "the stream ended"
        self._source.close()
        self.gaps += 1
        lost = time.monotonic()
        log.warning("%s: lost (%s); reconnecting", self.url, reason)
        backoff = 0.5
        while not self._closed.is_set():
            waited = time.monotonic() - lost
            if waited > self.config.give_up:
                raise SourceLost(
                    f"{self.url}: no frames for {waited:.0f} s after {self.reconnects} reconnect "
                    f"attempts; gave up (--give-up {self.config.give_up:g})"
                )
            try:
                self.reconnects += 1
                self._source = VideoSource(self.url, replace(self.options, duration=None))
                log.warning("%s: reconnected after %.1f s", self.url, time.monotonic() - lost)
                return
            except StreamerError as error:
                log.info("%s: reconnect failed: %s", self.url, error)
                self._closed.wait(backoff)
                backoff = min(backoff * 2, self.config.max_backoff)

    def stop(self) -> None:
        """Ask the reading thread to finish (it may be waiting to reconnect)."""
        self._closed.set()

    def close(self) -> None:
        self._closed.set()
        self._source.close()


class DropQueue:
    """A bounded queue that, when full, drops the oldest or the newest frame instead of blocking."""

    def __init__(self, size: int, policy: str, stop: threading.Event, on_drop=lambda: None):
        if policy not in DROP_POLICIES:
            raise StreamerError(f"--drop {policy}: choose one of {', '.join(DROP_POLICIES)}")
        self.size, self.policy, self.stop, self.on_drop = size, policy, stop, on_drop
        self.dropped = 0
        self._items: collections.deque = collections.deque()
        self._ready = threading.Condition()

    def put(self, item, droppable: bool = True) -> None:
        if self.stop.is_set():
            raise Stopped
        with self._ready:
            while len(self._items) >= self.size:
                if droppable and self.policy == "newest":
                    self.dropped += 1
                    self.on_drop()
                    return
                if droppable and self.policy == "oldest":
                    self._items.popleft()
                    self.dropped += 1
                    self.on_drop()
                    break
                self._wait()
            self._items.append(item)
            self._ready.notify_all()

    def __len__(self) -> int:
        return len(self._items)

    def get(self):
        with self._ready:
            while not self._items:
                self._wait()
            item = self._items.popleft()
            self._ready.notify_all()
            return item

    def _wait(self) -> None:
        if self.stop.is_set():
            raise Stopped
        self._ready.wait(0.1)


# The parts of a frame's latency, each ending at a mark: waiting for the model (in the drop queue and the
# transport), the model call, rendering (and waiting for the render thread), encoding (and waiting for
# the encode thread and the reorder buffer).
PARTS = ("queue", "inference", "render", "encode")
MARKS = ("inferring", "inferred", "rendered")  # the transport's marks between arrival and writing


class Latency:
    """Seconds from a frame's arrival (out of the source) to its encoding, and its parts where the transport
    marks them (the in-process one does); keeps the most recent samples. Any thread may call it.

    Once running: the frames that arrived before the first one was encoded (while the model's first call
    builds its graph, and what a live source buffered meanwhile) are start-up, not latency, and not counted
    unless nothing else was."""

    def __init__(self, keep: int = 10_000):
        self._stamps: dict[int, list[float | None]] = {}
        self._first: float | None = None  # when the first frame was encoded
        self._starting: list[float] = []  # latency of the frames that arrived before that
        self._samples: collections.deque[float] = collections.deque(maxlen=keep)
        self._parts: dict[str, collections.deque[float]] = {part: collections.deque(maxlen=keep) for part in PARTS}
        self._lock = threading.Lock()

    def arrived(self, index: int, when: float) -> None:
        with self._lock:
            self._stamps[index] = [when, None, None, None]

    def mark(self, frames, stage: str) -> None:
        """Frames (anything with `.index`) reached `stage` (one of MARKS) now."""
        now, slot = time.monotonic(), 1 + MARKS.index(stage)
        with self._lock:
            for frame in frames:
                stamps = self._stamps.get(frame.index)
                if stamps is not None:
                    stamps[slot] = now

    def written(self, index: int) -> None:
        now = time.monotonic()
        with self._lock:
            stamps = self._stamps.pop(index, None)
            if stamps is None:
                return
            self._first = now if self._first is None else self._first
            if stamps[0] < self._first:
                self._starting.append(now - stamps[0])
                return
            self._samples.append(now - stamps[0])
            stamps.append(now)
            if all(stamp is not None for stamp in stamps):
                for part, start, end in zip(PARTS, stamps, stamps[1:]):
                    self._parts[part].append(end - start)

    def percentile(self, q: float) -> float | None:
        with self._lock:
            samples = self._samples or self._starting
            return float(np.percentile(samples, q)) if samples else None

    def parts(self) -> dict[str, dict[str, float]]:
        """{part: {"p50": s, "p95": s}} of the parts measured, and "total" (arrival → encoded)."""
        with self._lock:
            series = {"total": list(self._samples or self._starting), **{p: list(self._parts[p]) for p in PARTS}}
        return {
            name: {"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95))}
            for name, values in series.items()
            if values
        }
