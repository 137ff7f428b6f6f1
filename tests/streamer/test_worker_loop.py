"""The worker loop: batches grouped by job, rendered per job spec, then completed, discarded or failed."""

from __future__ import annotations

import threading
import time
from fractions import Fraction

import numpy as np
import pytest

from streamer.distributed.jobs import JobSpec
from streamer.distributed.messages import Message, MessageError
from streamer.distributed.work import Delivery
from streamer.effects import EffectConfig
from streamer.frames import Frame
from streamer.job import ProcessConfig
from streamer.models import ModelConfig
from streamer.prediction import Prediction
from streamer.service.worker import Worker, WorkerConfig

pytestmark = pytest.mark.timeout(20)

H, W = 6, 8
TB = Fraction(1, 25)
RED = EffectConfig(name="overlay", color=(255, 0, 0), alpha=1.0)


def job_spec(effect=RED, detections=False, **model) -> JobSpec:
    """A job on the stub model, as a producer would send it."""
    return JobSpec(
        job=ProcessConfig(input="in.mp4", model=ModelConfig(name="stub:model", **model), effect=effect),
        detections=detections,
    )


class FakeQueue:
    """A WorkQueue without Redis: specs from a dict, every call recorded."""

    def __init__(self, specs: dict[str, JobSpec | None], batches: list[list[Delivery]] | None = None):
        self.specs = specs
        self.batches = list(batches or [])
        self.calls: list[tuple] = []
        self.completed: dict[str, list] = {}
        self.discarded: list[Delivery] = []
        self.failed: dict[str, str] = {}
        self.rejected: list[tuple[Delivery, str]] = []
        self.takes = 0
        self.on_take = lambda count: None

    def spec(self, job):
        self.calls.append(("spec", job))
        spec = self.specs.get(job)
        if isinstance(spec, Exception):
            raise spec
        return spec

    def fail(self, job, reason):
        self.calls.append(("fail", job))
        self.failed[job] = reason

    def complete(self, job, deliveries, rendered, spec):
        self.calls.append(("complete", job))
        self.completed.setdefault(job, []).append((list(deliveries), list(rendered), spec))

    def discard(self, deliveries):
        self.calls.append(("discard", [d.entry_id for d in deliveries]))
        self.discarded.extend(deliveries)

    def reject(self, deliveries, reason):
        self.calls.append(("reject", [d.entry_id for d in deliveries]))
        self.rejected.extend((d, reason) for d in deliveries)

    def take(self, count, block=0.5):
        self.takes += 1
        self.calls.append(("take", count))
        self.on_take(self.takes)
        if self.batches:
            return self.batches.pop(0)
        time.sleep(0.01)
        return []

    def join(self):
        self.calls.append(("join",))

    def announce(self, fields, ttl):
        self.calls.append(("announce", fields["model"]))

    def leave(self):
        self.calls.append(("leave",))

    def reachable(self):
        return True


class OneThing:
    """An instance model: one 'person' covering the left half of every frame."""

    class_names = ("BG", "person")

    def __init__(self, config: ModelConfig):
        self.name = config.name
        self.threshold = config.threshold
        self.calls = 0

    def predict(self, frames):
        self.calls += 1
        masks = np.zeros((H, W, 1), bool)
        masks[:, : W // 2, 0] = True
        return [
            Prediction(
                masks=masks,
                class_ids=np.array([1], np.int32),
                scores=np.array([0.9], np.float32),
                boxes=np.array([[0, 0, H, W // 2]], np.int32),
            )
            for _ in frames
        ]


class Broken(OneThing):
    def predict(self, frames):
        self.calls += 1
        raise RuntimeError("out of GPU memory")


class Loader:
    """Records every model load; builds `kind` models."""

    def __init__(self, kind=OneThing):
        self.kind = kind
        self.loaded: list[ModelConfig] = []
        self.models: list = []

    def __call__(self, config: ModelConfig):
        self.loaded.append(config)
        self.models.append(self.kind(config))
        return self.models[-1]


def delivery(job: str, index: int) -> Delivery:
    """A frame whose right half tells its job and index apart."""
    image = np.zeros((H, W, 3), np.uint8)
    image[:, W // 2 :] = (ord(job[0]), index, 7)
    return Delivery(f"{job}-{index}".encode(), Message(job, Frame(index, 10 * index, TB, image)))


def worker(queue: FakeQueue, load: Loader, **config) -> Worker:
    return Worker(
        WorkerConfig(model=ModelConfig(name="stub:model", batch_size=4), name="test-worker", **config),
        queue=queue,
        load=load,
    )


def test_two_jobs_in_one_batch_each_get_their_own_frames_in_order():
    specs = {
        "alpha": job_spec(effect=RED),
        "beta": job_spec(effect=RED, detections=True),
    }
    queue, load = FakeQueue(specs), Loader()
    batch = [delivery("alpha", 0), delivery("beta", 0), delivery("alpha", 1), delivery("beta", 1), delivery("alpha", 2)]
    w = worker(queue, load)
    w.process(batch)

    assert set(queue.completed) == {"alpha", "beta"}
    assert queue.discarded == [] and queue.failed == {}
    for job, count in (("alpha", 3), ("beta", 2)):
        [(deliveries, rendered, spec)] = queue.completed[job]
        assert spec is specs[job]
        assert [d.entry_id for d in deliveries] == [f"{job}-{i}".encode() for i in range(count)]
        assert [r.index for r in rendered] == list(range(count))
        assert [r.pts for r in rendered] == [10 * i for i in range(count)]
        for r in rendered:
            assert (r.image[:, : W // 2] == (255, 0, 0)).all()  # the effect was drawn
            assert (r.image[:, W // 2 :] == (ord(job[0]), r.index, 7)).all()  # on this job's own frame
    assert all(r.prediction is None for r in queue.completed["alpha"][0][1])
    assert all(r.prediction is not None for r in queue.completed["beta"][0][1])
    assert w.frames == 5


def test_frames_of_an_ended_job_are_discarded():
    queue, load = FakeQueue({"live": job_spec(effect=RED), "ended": None}), Loader()
    batch = [delivery("ended", 0), delivery("live", 0), delivery("ended", 1)]
    worker(queue, load).process(batch)

    assert [d.entry_id for d in queue.discarded] == [b"ended-0", b"ended-1"]
    assert set(queue.completed) == {"live"}
    assert queue.failed == {}


def test_frames_of_a_job_with_an_unreadable_spec_are_rejected():
    queue = FakeQueue({"poisoned": MessageError("job record is not JSON"), "fine": job_spec(effect=RED)})
    worker(queue, Loader()).process([delivery("poisoned", 0), delivery("fine", 0), delivery("poisoned", 1)])

    assert [(d.entry_id, reason) for d, reason in queue.rejected] == [
        (b"poisoned-0", "job record is not JSON"),
        (b"poisoned-1", "job record is not JSON"),
    ]
    assert set(queue.completed) == {"fine"}
    assert queue.discarded == [] and queue.failed == {}


def test_a_job_asking_for_classes_the_model_lacks_fails_alone():
    specs = {
        "good": job_spec(effect=RED),
        "bad": job_spec(effect=EffectConfig(name="instances", classes=("person", "unicorn"))),
    }
    queue, load = FakeQueue(specs), Loader()
    batch = [delivery("bad", 0), delivery("good", 0), delivery("bad", 1), delivery("good", 1)]
    w = worker(queue, load)
    w.process(batch)

    assert set(queue.failed) == {"bad"}
    assert "unicorn" in queue.failed["bad"] and "--classes" in queue.failed["bad"]
    assert "person" not in queue.failed["bad"].split(":")[0]  # names only the missing class
    assert [d.entry_id for d in queue.discarded] == [b"bad-0", b"bad-1"]
    assert queue.calls.index(("fail", "bad")) < queue.calls.index(("discard", [b"bad-0", b"bad-1"]))
    assert set(queue.completed) == {"good"}
    assert [r.index for r in queue.completed["good"][0][1]] == [0, 1]
    assert w.frames == 2


def test_a_model_that_raises_leaves_the_frames_for_redelivery():
    queue, load = FakeQueue({"job": job_spec(effect=RED)}), Loader(Broken)
    w = worker(queue, load)
    w.process([delivery("job", 0), delivery("job", 1)])  # does not raise

    assert load.models[0].calls == 1
    assert queue.completed == {} and queue.discarded == [] and queue.rejected == []
    assert queue.failed == {}
    assert w.frames == 0
    assert w.metrics.errors.labels("model")._value.get() == 1


def test_one_job_failing_in_the_model_does_not_hold_up_another():
    class FailsOnJobX(OneThing):
        def predict(self, frames):
            if (frames[:, 0, -1, 0] == ord("x")).any():
                raise RuntimeError("cannot")
            return super().predict(frames)

    queue = FakeQueue({"x": job_spec(effect=RED), "y": job_spec(effect=RED)})
    worker(queue, Loader(FailsOnJobX)).process([delivery("x", 0), delivery("y", 0)])
    assert set(queue.completed) == {"y"}
    assert queue.discarded == []


def test_models_are_loaded_once_per_threshold():
    specs = {
        "a": job_spec(effect=RED),
        "b": job_spec(effect=RED, threshold=0.3),
        "c": job_spec(effect=RED, threshold=0.3),
        "d": job_spec(effect=RED),
    }
    queue, load = FakeQueue(specs), Loader()
    w = worker(queue, load)
    for _ in range(3):
        w.process([delivery("a", 0), delivery("b", 0), delivery("c", 0), delivery("d", 0)])

    assert [config.threshold for config in load.loaded] == [None, 0.3]
    assert all(config.name == "stub:model" and config.batch_size == 4 for config in load.loaded)
    assert len(queue.completed["b"]) == 3
    by_threshold = {model.threshold: model for model in load.models}
    assert by_threshold[None].calls == 6 and by_threshold[0.3].calls == 6


def test_serve_takes_until_stopped_then_leaves():
    stop = threading.Event()
    queue = FakeQueue(
        {"job": job_spec(effect=RED)},
        batches=[[delivery("job", 0), delivery("job", 1)], [delivery("job", 2)]],
    )
    queue.on_take = lambda takes: stop.set() if takes >= 3 else None
    load = Loader()
    w = worker(queue, load, heartbeat=0.05)

    thread = threading.Thread(target=w.serve, args=(stop,), daemon=True)
    thread.start()
    thread.join(5)
    assert not thread.is_alive(), "serve() did not return after stop was set"

    names = [call[0] for call in queue.calls]
    assert names[0] == "join"
    assert names[-1] == "leave" and names.count("leave") == 1
    assert ("announce", "stub:model") in queue.calls
    assert queue.takes == 3
    assert ("take", 4) in queue.calls  # takes the model's batch size
    assert [r.index for _, rendered, _ in queue.completed["job"] for r in rendered] == [0, 1, 2]
    assert len(load.loaded) == 1  # loaded before the first take, reused for the job
    assert w.ready()


def test_serve_leaves_even_when_the_queue_fails():
    stop = threading.Event()
    queue = FakeQueue({})

    def broken(takes):
        raise ConnectionError("redis went away")

    queue.on_take = broken
    w = worker(queue, Loader(), heartbeat=0.05)
    with pytest.raises(ConnectionError):
        w.serve(stop)
    assert queue.calls[-1] == ("leave",)
    assert stop.is_set()


def test_a_jobs_own_weights_are_loaded_only_where_the_worker_may_read(tmp_path):
    from streamer.distributed.confine import Confinement

    allowed = tmp_path / "models"
    allowed.mkdir()
    specs = {
        "a": job_spec(effect=RED, weights=str(allowed / "balloon.h5"), class_names=["BG", "b"]),
        "e": job_spec(effect=RED, weights="/etc/shadow"),
    }
    queue, load = FakeQueue(specs), Loader()
    w = Worker(
        WorkerConfig(model=ModelConfig(name="stub:model", batch_size=4), name="test-worker"),
        queue=queue,
        load=load,
        confinement=Confinement(inputs=[str(allowed)], base=str(tmp_path)),
    )
    w.process([delivery("a", 0), delivery("e", 0)])
    w.process([delivery("a", 1)])

    assert [(config.weights, config.class_names) for config in load.loaded] == [
        (str(allowed / "balloon.h5"), ("BG", "b"))
    ]
    assert len(queue.completed["a"]) == 2
    assert "not allowed on this worker" in queue.failed["e"] and "e" not in queue.completed
