"""The job that was asked for is the job that runs: every field of a job, drawn at random from its type, arrives
unchanged at the runner that takes it from Redis and at the worker that renders its frames; a field that does not
fit its type, at any depth, is refused with its path, never half-read."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamer.distributed.connection import CODECS, Keys, RedisConfig
from streamer.distributed.jobs import JobSpec, JobStore, submit
from streamer.distributed.work import WorkQueue
from streamer.effects import EffectConfig
from streamer.job import ProcessConfig
from streamer.models import ModelConfig
from streamer.service.runner import Runner
from streamer.service.worker import Worker, WorkerConfig
from streamer.typed_json import FieldError, to_data, wire_fields

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
# fields whose values the job itself checks: drawn from what it accepts
CHOSEN = {
    "EffectConfig.name": st.sampled_from(["overlay", "mask", "splash", "instances"]),
    "ModelConfig.name": st.sampled_from(["unet", "maskrcnn", "semantic", "identity", "tests.models:left_half"]),
    "ModelConfig.batch_size": st.integers(1, 1024),
    "ModelConfig.precision": st.sampled_from(["auto", "f32", "bf16"]),
    "ModelConfig.threads": st.none() | st.integers(1, 64),
    "ModelConfig.gpu_memory_limit": st.none() | st.integers(1, 1 << 20),
    "ModelConfig.config_file": st.none(),  # read where the job is made: its settings travel, not its path
    "ProcessConfig.output": st.text(min_size=1, max_size=12),
    "ProcessConfig.queue_frames": st.integers(1, 4096),
    "ProcessConfig.parallel_batches": st.integers(1, 64),
    "ProcessConfig.frame_codec": st.sampled_from(CODECS),
    "ProcessConfig.frame_quality": st.integers(1, 100),
    "ProcessConfig.hls_time": st.floats(0.1, 3600),
    "ProcessConfig.hls_list_size": st.integers(0, 100_000),
    "ProcessConfig.segment": st.none() | st.floats(0.1, 86400),
}
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)


def values_of(kind, where: str):
    """A strategy for a field of type `kind`, made from the type alone: a new field of the job is drawn too."""
    if where in CHOSEN:
        return CHOSEN[where]
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        return st.one_of([values_of(arm, where) for arm in typing.get_args(kind)])
    if kind is type(None):
        return st.none()
    if dataclasses.is_dataclass(kind):
        return dataclass_values(kind)
    if kind is bool:
        return st.booleans()
    if kind is int:
        return st.integers(0, 10**6)
    if kind is float:
        return st.floats(0.0, 1e6)
    if kind is str:
        return TEXT
    if origin is tuple:
        args = typing.get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(values_of(args[0], where), max_size=4).map(tuple)
        return st.tuples(*(values_of(arg, where) for arg in args))
    if kind is dict or origin is dict:
        return st.dictionaries(TEXT, JSON, max_size=4)
    raise AssertionError(f"{where}: no strategy for {kind}; teach this test the field's type")


def dataclass_values(cls):
    hints = typing.get_type_hints(cls)
    return st.fixed_dictionaries(
        {f.name: values_of(hints[f.name], f"{cls.__name__}.{f.name}") for f in wire_fields(cls)}
    ).map(lambda fields: cls(**fields))


JOBS = dataclass_values(ProcessConfig)


@settings(max_examples=100, deadline=None)
@given(JOBS)
def test_every_field_survives_the_codec(job):
    spec = JobSpec(job=job, detections=True, lease=30.0)
    again = JobSpec.from_json(spec.to_json())
    assert again == spec
    assert to_data(again) == to_data(spec)  # tuples stay tuples, floats stay floats


class Loads:
    """A worker's model loader that records what it was asked for."""

    def __init__(self):
        self.asked: list[ModelConfig] = []

    def __call__(self, config):
        self.asked.append(config)
        return type("Stub", (), {"name": config.name, "predict": lambda self, frames: []})()


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(job=JOBS)
def test_submit_redis_runner_worker_render_stage_see_exactly_the_job(redis_server, job):
    job = replace(job, effect=replace(job.effect, class_names=None))  # filled in from the model by the worker
    client, config = redis_server.client(), RedisConfig(url=redis_server.url)
    keys = Keys(config.namespace)
    client.flushall()
    spec = JobSpec.of(job, detections=True)
    submit(client, config, "j1", spec)

    # the runner that takes it from Redis runs exactly the job, with its own Redis
    runner = Runner(client, config, "r1")
    runner._join()
    [(_, fields)] = runner._take()
    taken_id, taken = runner._parse(fields)
    assert taken_id == "j1" and taken == replace(spec.job, redis=config, job="j1")

    # the record its producer writes is what every worker reads
    JobStore(client, keys).create("j1", JobSpec.of(taken, detections=True))
    queue = WorkQueue(client, config, job.model.name, "w1")
    read = queue.spec("j1")
    assert read == spec

    # and the render stage a worker builds for it gets the job's model settings and effect
    loads = Loads()
    own = ModelConfig(name=job.model.name, weights="/worker/own.keras")
    worker = Worker(WorkerConfig(model=own), queue=queue, load=loads)
    worker.confinement.check_input = lambda path: None  # where the worker may read is tested elsewhere
    stage = worker._build_stage(read)
    asked = loads.asked[-1]
    default = ModelConfig(name=job.model.name)
    for f in dataclasses.fields(ModelConfig):
        value = getattr(job.model, f.name)
        expected = value if value != getattr(default, f.name) else getattr(own, f.name)
        if f.name == "settings":
            expected = job.model.all_settings() or own.settings
        assert getattr(asked, f.name) == expected, f.name
    assert dataclasses.replace(stage.effect, class_names=None) == job.effect
    assert stage.detections


def leaves(data, path=()):
    """(path, value) of every value in nested JSON data, objects and lists included."""
    yield path, data
    if isinstance(data, dict):
        for key, value in data.items():
            yield from leaves(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from leaves(value, (*path, index))


def put(data, path, value):
    data = json.loads(json.dumps(data))
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


BAD = [None, "x", -1, 0, 10**30, 1e308, -1e308, True, [], {}, [1, 2, 3], {"a": 1}, "a" * 100_000]


def test_every_field_of_a_job_record_refuses_what_does_not_fit_with_its_path():
    good = json.loads(
        JobSpec.of(
            ProcessConfig(
                input="in.mp4",
                output="out.mp4",
                model=ModelConfig(name="unet", class_names=("BG", "road"), settings={"A": [1, 2]}),
                effect=EffectConfig(classes=("road",)),
            )
        ).to_json()
    )
    paths = [path for path, _ in leaves(good) if path]
    assert len(paths) > 60  # every field of the job, at every depth
    for path in paths:
        for bad in BAD:
            try:
                JobSpec.from_json(json.dumps(put(good, path, bad)))
            except FieldError as error:
                assert str(error).startswith("job"), error
            # anything else that escapes is a worker killed by one record: the test fails with it
        free = "settings" in path or "storage" in path  # free-form mappings (model settings, fsspec options)
        if isinstance(path[-1], str) and not free:
            spoiled = put(good, (*path[:-1], "unknown_field"), 1)
            with pytest.raises(FieldError, match="unknown field 'unknown_field'"):
                JobSpec.from_json(json.dumps(spoiled))
    for text in ["", "[", "[" * 100_000, "null", "1", '"job"', "{}", '{"job": 1}', "\udcff"]:
        with pytest.raises(FieldError):
            JobSpec.from_json(text)
