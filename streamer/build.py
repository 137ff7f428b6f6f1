"""Turns a ProcessConfig into the parts of a pipeline: source, transport, muxer and sinks.

Everything that can be checked before work starts is checked here, so a bad option fails
before a frame is decoded; whatever was opened is closed again when a later part fails.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from streamer.detections import FORMATS, DetectionsWriter
from streamer.effects import check_effect
from streamer.errors import StreamerError
from streamer.job import ProcessConfig
from streamer.live import DropQueue, Latency, LivePolicy, open_source
from streamer.metrics import Metrics
from streamer.models import Model, check_model_effect, load_model
from streamer.muxer import Muxer
from streamer.outputs import Discard, Stream, check_outputs, open_outputs
from streamer.protocols import Sink, Source, Transport
from streamer.render import RenderStage
from streamer.sink import check_encode
from streamer.source import looks_live
from streamer.stages import Stages
from streamer.tracking import FrameCallback, TrackedRender
from streamer.transports.memory import MemoryTransport


@dataclass
class Parts:
    """An opened pipeline, ready for its threads."""

    source: Source
    transport: Transport
    sink: Sink
    muxer: Muxer
    drops: DropQueue
    detections: DetectionsWriter | None
    policy: LivePolicy
    latency: Latency


def check(config: ProcessConfig, write: bool = True) -> None:
    """Fail on a bad option before opening anything."""
    check_effect(config.effect.name)
    check_model_effect(config.model.name, config.effect, config.model)
    if config.detections_format not in FORMATS:
        raise StreamerError(f"--detections-format {config.detections_format}: choose one of {', '.join(FORMATS)}")
    if not write:
        return
    outputs = config.outputs()
    check_outputs(outputs)
    if config.detections:
        check_outputs(replace(outputs, targets=(config.detections,), segment=None))
    check_encode(config.encode)
    local = [target for target in outputs.targets if "://" not in target and target != "-"]
    if "://" not in config.input and config.input != "-" and any(_same(config.input, target) for target in local):
        raise StreamerError(f"{config.input}: is an output too; choose another output")


def _same(one: str, other: str) -> bool:
    try:
        return Path(one).resolve() == Path(other).resolve()
    except (OSError, RuntimeError):  # a symbolic link loop: the source says so when it opens
        return False


def build(
    config: ProcessConfig,
    stages: Stages,
    helpers: contextlib.ExitStack,
    metrics: Metrics,
    model: Model | None = None,
    phase: Callable[[str], None] = lambda name: None,
    write: bool = True,
) -> Parts:
    """Open every part; `helpers` gets what must outlive the threads (local workers); `phase(name)` is told
    each step that takes time (opening the input, loading the model, warming up). `write=False`: no output
    is written and no effect drawn (the frames and their predictions go to `config.on_frame`)."""
    check(config, write)
    live = config.source.live if config.source.live is not None else looks_live(config.input)
    if live and model is None and config.redis is None:
        # before a live input opens, so no frames pile up while it loads; built as LivePolicy runs it (batches of
        # one rather than each frame padded to a full batch; a core left for decoding and encoding)
        expected = LivePolicy.decide(True, config.live, config.model.batch_size, config.queue_frames)
        phase(f"loading model {config.model.name}")
        model = load_model(expected.model_config(config.model))
    phase("opening input")
    opened = open_source(config.input, config.source, config.live)
    policy = LivePolicy.decide(opened.info.live, config.live, config.model.batch_size, config.queue_frames)
    source = policy.source(opened, config.live)
    latency = Latency()
    try:
        transport = _transport(config, stages, source, helpers, metrics, model, policy, latency, phase, write)
        info = source.info
        stream = Stream(info.width, info.height, info.rate, info.time_base, info.rotation)
        encoding = policy.encoding(config.encode, info.rate)
        sink = open_outputs(config.outputs(), stream, encoding, source.audio) if write else Discard()
    except BaseException:
        stages.shutdown()
        source.close()
        raise
    detections = (
        DetectionsWriter(config.detections, config.source.storage, config.detections_format)
        if config.detections
        else None
    )
    # room for every batch that can finish ahead of an earlier one
    capacity = max(256, config.model.batch_size * config.parallel_batches)
    return Parts(
        source=source,
        transport=transport,
        sink=sink,
        policy=policy,
        latency=latency,
        detections=detections,
        muxer=Muxer(
            sink,
            capacity=capacity,
            detections=detections,
            in_order=in_order(config),
        ),
        drops=DropQueue(policy.depth, policy.drop, stages.stop, metrics.dropped.inc),
    )


def in_order(config: ProcessConfig):
    """What runs on each frame in frame order before it is written: tracking, then the on_frame callback."""
    steps = []
    if config.effect.track:
        steps.append(TrackedRender(config.effect))
    if config.on_frame is not None:
        steps.append(FrameCallback(config.on_frame))
    if not steps:
        return None

    def run(rendered):
        for step in steps:
            rendered = step(rendered)
        return rendered

    return run


def _transport(
    config: ProcessConfig,
    stages: Stages,
    source: Source,
    helpers: contextlib.ExitStack,
    metrics: Metrics,
    model: Model | None,
    policy: LivePolicy,
    latency: Latency,
    phase: Callable[[str], None],
    write: bool = True,
) -> Transport:
    if config.redis is None:
        keep = bool(config.detections or config.on_frame)  # frames carry their prediction to what reads it
        batch = policy.batch or config.model.batch_size
        if model is None:
            phase(f"loading model {config.model.name}")
            model = load_model(policy.model_config(config.model))
        stage = RenderStage(model, config.effect, keep, metrics, draw=write)
        phase("warming up")
        stage.warm_up(source.info.height, source.info.width)
        return MemoryTransport(
            stages,
            stage,
            batch,
            policy.depth,
            parallel=policy.parallel or config.parallel_batches,
            handoff=policy.handoff,
            latency=latency,
        )
    # the Redis wire is loaded by the jobs that use it: an in-process job starts without redis-py
    from streamer.distributed.connection import Keys, connect, retrying
    from streamer.distributed.jobs import JobSpec, JobStore, new_job_id
    from streamer.distributed.spawn import local_workers
    from streamer.transports.redis_streams import RedisTransport

    client = connect(config.redis)
    spec = JobSpec.of(config, detections=bool(config.detections or config.on_frame), lease=config.redis.lease)
    if config.local_workers:
        # workers on this machine leave a core to a live input's decoding and encoding too
        helpers.enter_context(local_workers(config.local_workers, policy.model_threads(config.model), config.redis))
    transport = RedisTransport(stages, client, config.redis, config.job or new_job_id(), spec, source.info.frames)
    # what `status` and the status page show for the job (redacted there, as every record they serve)
    targets = config.outputs().targets
    where = {"input": config.input, "output": targets[0] if len(targets) == 1 else ", ".join(targets)}
    retrying(config.redis, lambda: JobStore(client, Keys(config.redis.namespace)).update(transport.job, **where), "job")
    return transport
