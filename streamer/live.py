"""Live inputs: reconnect when the stream drops, drop frames by policy, measure latency.

A live stream has no end and no seeking; the pipeline must keep up or drop frames, so that
latency never grows without bound. Output timestamps are arrival times: monotonic, real-time.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np

from streamer.errors import StreamerError
from streamer.frames import Frame
from streamer.sink import EncodeConfig
from streamer.source import SourceOptions, VideoSource, looks_live
from streamer.stages import Stopped

log = logging.getLogger(__name__)

LIVE_TIME_BASE = Fraction(1, 90000)
DROP_POLICIES = ("oldest", "newest", "none")


@dataclass
class LiveConfig:
    """How a live input is kept going."""

    drop: str = "oldest"  # when the pipeline falls behind: drop the oldest or the newest frame, or none
    give_up: float = 60.0  # seconds without a frame before the job fails
    max_backoff: float = 8.0  # longest wait between reconnect attempts


@dataclass(frozen=True)
class LivePolicy:
    """Every way a live input is handled differently from a file, decided once per job.

    A live input keeps only a couple of batches in hand and drops frames by policy when the
    pipeline falls behind (so latency stays bounded, not growing); its frames are restamped with
    their arrival time and reconnected when the stream drops; its outputs encode with low latency
    and regular keyframes for viewers who join mid-stream."""

    live: bool
    drop: str = "none"  # the DropQueue policy in front of the transport
    depth: int = 32  # frames held between two stages

    @classmethod
    def decide(cls, live: bool, config: LiveConfig, batch_size: int, queue_frames: int) -> "LivePolicy":
        if not live:
            return cls(live=False, drop="none", depth=queue_frames)
        return cls(live=True, drop=config.drop, depth=2 * batch_size)

    def source(self, source: VideoSource, config: LiveConfig):
        """The source as the pipeline reads it: restamped and reconnecting when live."""
        return LiveSource(source, config) if self.live else source

    def encoding(self, encode: EncodeConfig, rate: Fraction) -> EncodeConfig:
        if not self.live:
            return encode
        return replace(encode, tune=encode.tune or "zerolatency", gop=encode.gop or max(1, round(2 * float(rate))))


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
            return VideoSource(url, options)
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
        self.audio = None  # live audio is not carried: its clock is the sender's, not ours
        self._source = source
        self.info = replace(self._source.info, time_base=LIVE_TIME_BASE, frames=None, duration=None, live=True)
        self._closed = threading.Event()

    def items(self) -> Iterator[Frame]:
        """Frames stamped with their arrival time; a file played as live is paced at its own rate."""
        started, last_pts, index = None, -1, 0
        paced = not looks_live(self.url)
        while not self._closed.is_set():
            first = None
            for item in self._source.items():
                if not isinstance(item, Frame):
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
                yield Frame(index, last_pts, LIVE_TIME_BASE, item.image)
                index += 1
            if self._closed.is_set() or paced:
                return
            self._reconnect()

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
                self._source = VideoSource(self.url, self.options)
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


class Latency:
    """Seconds from a frame's arrival to its encoding; keeps the most recent samples."""

    def __init__(self, keep: int = 10_000):
        self._arrived: dict[int, float] = {}
        self._samples: collections.deque[float] = collections.deque(maxlen=keep)

    def arrived(self, index: int, when: float) -> None:
        self._arrived[index] = when

    def written(self, index: int) -> None:
        start = self._arrived.pop(index, None)
        if start is not None:
            self._samples.append(time.monotonic() - start)

    def percentile(self, q: float) -> float | None:
        return float(np.percentile(self._samples, q)) if self._samples else None
