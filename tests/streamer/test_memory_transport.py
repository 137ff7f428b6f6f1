"""MemoryTransport: the render stage on threads of this process, every frame back exactly once."""

from __future__ import annotations

import threading
import time
from fractions import Fraction

import numpy as np
import pytest

from streamer.effects import EffectConfig
from streamer.frames import Frame
from streamer.prediction import Prediction
from streamer.render import RenderStage
from streamer.stages import Stages, Stopped
from streamer.transports.memory import MemoryTransport

pytestmark = pytest.mark.timeout(10)

H, W = 8, 12
TB = Fraction(1, 25)


class Recording:
    """Marks the left half as foreground; records each batch size; every other call is slower."""

    name = "recording"

    def __init__(self, fail_on_call: int | None = None):
        self.sizes: list[int] = []
        self.fail_on_call = fail_on_call
        self._lock = threading.Lock()

    def predict(self, frames: np.ndarray) -> list[Prediction]:
        with self._lock:
            call = len(self.sizes)
            self.sizes.append(len(frames))
        if call == self.fail_on_call:
            raise RuntimeError("model exploded")
        if call % 2 == 0:
            time.sleep(0.02)  # lets a parallel call overtake this one
        semantic = np.zeros((H, W), np.uint8)
        semantic[:, : W // 2] = 1
        return [Prediction(semantic=semantic) for _ in frames]


def frame(index: int) -> Frame:
    return Frame(index, 100 * index, TB, np.full((H, W, 3), index % 256, np.uint8))


def run(model, count: int, batch: int, parallel: int):
    """Send `count` frames from a feeding thread and collect what comes back; returns (stages, results)."""
    stages = Stages()
    transport = MemoryTransport(
        stages, RenderStage(model, EffectConfig(color=(255, 0, 0), alpha=1.0)), batch, depth=4, parallel=parallel
    )

    def feed():
        for i in range(count):
            transport.send(frame(i))
        transport.close()

    stages.spawn("feed", feed)
    results = []
    try:
        for rendered in transport.results():
            results.append(rendered)
    except Stopped:
        pass
    for thread in stages.threads:
        thread.join(5)
    assert not any(thread.is_alive() for thread in stages.threads), "a stage thread did not end"
    return stages, results


@pytest.mark.parametrize("parallel", [1, 2])
def test_every_frame_comes_back_exactly_once(parallel):
    model = Recording()
    count, batch = 23, 4
    stages, results = run(model, count, batch, parallel)

    assert stages.errors == []
    assert sorted(r.index for r in results) == list(range(count))
    for rendered in results:
        assert rendered.pts == 100 * rendered.index and rendered.time_base == TB
        assert (rendered.image[:, : W // 2] == (255, 0, 0)).all()  # went through the effect
        assert (rendered.image[:, W // 2 :] == rendered.index % 256).all()  # and is that frame's own image
    assert sum(model.sizes) == count
    assert max(model.sizes) <= batch
    if parallel == 1:
        assert model.sizes == [batch] * (count // batch) + [count % batch]  # only the last batch is short


def test_parallel_batches_may_finish_out_of_order_but_none_is_lost():
    model = Recording()
    _, results = run(model, 40, 2, parallel=2)
    indexes = [r.index for r in results]
    assert sorted(indexes) == list(range(40))
    assert len(set(indexes)) == 40


@pytest.mark.parametrize("parallel", [1, 2])
def test_a_failing_model_stops_the_transport_with_its_error(parallel):
    model = Recording(fail_on_call=1)
    started = time.monotonic()
    stages, results = run(model, 30, 4, parallel)

    assert time.monotonic() - started < 10
    assert len(stages.errors) == 1
    assert isinstance(stages.errors[0], RuntimeError) and str(stages.errors[0]) == "model exploded"
    assert stages.stop.is_set()
    assert len(results) < 30
    assert len({r.index for r in results}) == len(results)


def test_depths_name_each_queue():
    stages = Stages()
    transport = MemoryTransport(stages, RenderStage(Recording(), EffectConfig()), batch=2)
    try:
        assert transport.depths() == {"frames": 0, "predicted": 0, "rendered": 0}
    finally:
        stages.shutdown()
