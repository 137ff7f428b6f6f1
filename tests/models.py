"""Small models with known output, loaded by `--model tests.models:NAME`."""

from __future__ import annotations

import threading
import time

import numpy as np

from streamer.prediction import Prediction


class LeftHalf:
    """Marks the left half of every frame as foreground."""

    name = "left-half"

    def predict(self, frames: np.ndarray) -> list[Prediction]:
        semantic = np.zeros(frames.shape[1:3], np.uint8)
        semantic[:, : frames.shape[2] // 2] = 1
        return [Prediction(semantic=semantic) for _ in frames]


class Slow(LeftHalf):
    """LeftHalf that takes 50 ms per batch, to interrupt a job mid-way."""

    def predict(self, frames: np.ndarray) -> list[Prediction]:
        time.sleep(0.05)
        return super().predict(frames)


def left_half(config) -> LeftHalf:
    return LeftHalf()


def slow(config) -> Slow:
    return Slow()


class Uneven:
    """Finds nothing (frames pass unchanged); its even-numbered calls take 0.2 s, so with parallel
    batches the next call finishes first. `finished` lists the call numbers in the order they returned."""

    name = "uneven"

    def __init__(self):
        self.calls, self.finished, self._lock = 0, [], threading.Lock()

    def predict(self, frames: np.ndarray) -> list[Prediction]:
        with self._lock:
            call, self.calls = self.calls, self.calls + 1
        if call % 2 == 0:
            time.sleep(0.2)
        with self._lock:
            self.finished.append(call)
        return [Prediction(semantic=np.zeros(frames.shape[1:3], np.uint8)) for _ in frames]


UNEVEN: list[Uneven] = []


def uneven(config) -> Uneven:
    UNEVEN.append(Uneven())
    return UNEVEN[-1]


class CrashOnBright(LeftHalf):
    """Fails on frames whose left half is brighter than 200: a frame no worker can process."""

    def predict(self, frames: np.ndarray) -> list[Prediction]:
        if (frames[:, :, :4].mean(axis=(1, 2, 3)) > 200).any():
            raise RuntimeError("cannot process this frame")
        return super().predict(frames)


def crash_on_bright(config) -> CrashOnBright:
    return CrashOnBright()


class TwoInstances:
    """An instance model: a 'square' in the top-left quarter and a 'circle' in the bottom-right one."""

    name = "two-instances"
    class_names = ("BG", "square", "circle")

    def predict(self, frames: np.ndarray) -> list[Prediction]:
        _, height, width, _ = frames.shape
        masks = np.zeros((height, width, 2), bool)
        masks[: height // 2, : width // 2, 0] = True
        masks[height // 2 :, width // 2 :, 1] = True
        boxes = np.array([[0, 0, height // 2, width // 2], [height // 2, width // 2, height, width]], np.int32)
        return [
            Prediction(
                masks=masks, class_ids=np.array([1, 2], np.int32), scores=np.array([0.9, 0.8], np.float32), boxes=boxes
            )
            for _ in frames
        ]


def two_instances(config) -> TwoInstances:
    return TwoInstances()


class LeftHalfWhenBright(LeftHalf):
    """Marks the left half of a frame only when that half is bright (mean > 120), else finds nothing: a job's
    frames are partly changed by the effect and partly left as they are."""

    name = "left-half-when-bright"

    def predict(self, frames: np.ndarray) -> list[Prediction]:
        found = super().predict(frames)[0]
        empty = Prediction(semantic=np.zeros(frames.shape[1:3], np.uint8))
        half = frames.shape[2] // 2
        return [found if frame[:, :half].mean() > 120 else empty for frame in frames]


def left_half_when_bright(config) -> LeftHalfWhenBright:
    return LeftHalfWhenBright()


class WarmedUp(LeftHalf):
    """LeftHalf that refuses frames of a size it was not warmed up for (`warm_up` before the first frame)."""

    def __init__(self) -> None:
        self.sizes: set[tuple[int, int]] = set()

    def warm_up(self, height: int, width: int) -> None:
        self.sizes.add((height, width))

    def predict(self, frames: np.ndarray) -> list[Prediction]:
        if tuple(frames.shape[1:3]) not in self.sizes:
            raise RuntimeError(f"not warmed up for {frames.shape[2]}x{frames.shape[1]}, only for {self.sizes}")
        return super().predict(frames)


def warmed_up(config) -> WarmedUp:
    return WarmedUp()


def threads_asked(config) -> LeftHalf:
    """LeftHalf that fails to load unless it is given the CPU threads named by STREAMER_TEST_THREADS."""
    import os

    if str(config.threads) != os.environ["STREAMER_TEST_THREADS"]:
        raise RuntimeError(f"loaded with threads={config.threads}")
    return LeftHalf()


def slow_to_load(config) -> LeftHalf:
    """LeftHalf that takes a second to load, as a real model's weights do."""
    time.sleep(1.0)
    return LeftHalf()
