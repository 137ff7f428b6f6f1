"""The Python API: `streamer.process`, `streamer.frames` and `streamer.load_model`.

    import streamer

    result = streamer.process("in.mp4", "out.mp4", model="unet", effect="overlay")
    for frame, prediction in streamer.frames("in.mp4", model="unet"):
        print(frame.index, prediction.foreground().mean())

The same pipeline as the `streamer` command runs underneath; options are the fields of its
configuration dataclasses (ProcessConfig, ModelConfig, EffectConfig, SourceOptions) by name.
TensorFlow is imported only when a model is loaded.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import queue
from collections.abc import Callable, Iterator
from typing import Any

from streamer.effects import EffectConfig
from streamer.frames import Frame, Rendered
from streamer.job import ProcessConfig, ProcessResult
from streamer.models import Model, ModelConfig
from streamer.models import load_model as _load_registered
from streamer.options import SourceOptions
from streamer.prediction import Prediction

__all__ = ["Frame", "Model", "Prediction", "ProcessResult", "Rendered", "frames", "load_model", "process"]


def load_model(name: str = "unet", weights: str | None = None, **options: Any) -> Model:
    """Load a model by registry name (`unet`, `maskrcnn`, `identity`) or `package.module:factory`.

    `weights`: a weights file (default: the model's bundled demo weights). `options`: other ModelConfig
    fields, e.g. `batch_size=8`, `threshold=0.7`, `device="/GPU:0"`. The model has
    `predict(frames uint8[B,H,W,3]) -> list[Prediction]` and can be passed to `process` and `frames`."""
    return _load_registered(ModelConfig(name=name, weights=weights, **options))


def process(
    input: str | os.PathLike,
    output: str | os.PathLike | None = None,
    model: str | Model = "unet",
    effect: str = "overlay",
    *,
    on_frame: Callable[[Rendered, Prediction], None] | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    **options: Any,
) -> ProcessResult:
    """Segment the video `input` (a file, URL or stream) and write the rendered video to `output`.

    `model`: a registry name or a model from `load_model` (reused without loading again). `effect`:
    overlay, mask, splash or instances. `on_frame(frame, prediction)` is called for every frame in frame
    order, after it is rendered: `frame` is the `Rendered` frame (index, pts, rendered RGB image, detection
    record) and `prediction` what the model found (after `classes`). `progress(done, total)` is called
    about ten times a second. `options`: fields of ProcessConfig (`detections="d.jsonl"`, `overwrite=True`,
    `segment=10`, `parallel_batches=1`, ...), ModelConfig (`weights`, `batch_size`, `threshold`, `device`),
    EffectConfig (`color`, `alpha`, `classes`, `track`) or SourceOptions (`start`, `duration`, `stride`).
    Returns the ProcessResult (output, frames, seconds, fps, ...); raises StreamerError on a bad option or
    input, before any frame is spent where it can."""
    from streamer.pipeline import Pipeline

    loaded = None if isinstance(model, str) else model
    config = _config(input, output, _name(model), effect, options)
    config.on_frame = on_frame
    return Pipeline(config, model=loaded).run(progress)


def frames(input: str, model: str | Model = "unet", **options: Any) -> Iterator[tuple[Rendered, Prediction]]:
    """Yield `(frame, prediction)` for every frame of `input`, in order, for a loop of your own.

    The same pipeline as `process` runs underneath (a live input reconnects and drops frames by its policy;
    `start`, `duration`, `stride` trim), on threads ahead of the loop, in batches (`batch_size`, default 4),
    with at most a few batches buffered; nothing is encoded and no effect is drawn. Breaking out of the loop
    (or closing the generator) stops it and closes the input. `options`: fields of ProcessConfig, ModelConfig
    (`weights`, `batch_size`, `threshold`, `device`), SourceOptions (`start`, `duration`, `stride`, `max_fps`,
    `timeout`) and `classes` (instance models: only these classes)."""
    import threading

    from streamer.pipeline import Pipeline

    loaded = None if isinstance(model, str) else model
    config = _config(input, None, _name(model), "overlay", options)
    ready: queue.Queue = queue.Queue(maxsize=max(8, 2 * config.model.batch_size))
    done = object()
    pipeline = Pipeline(config, model=loaded, write=False)
    failed: list[BaseException] = []

    def on_frame(frame: Rendered, prediction: Prediction) -> None:
        while not pipeline.stopped:  # the caller's loop is the consumer: wait for it, unless it stopped
            try:
                ready.put((frame, prediction), timeout=0.1)
                return
            except queue.Full:
                continue

    def run() -> None:
        try:
            pipeline.run()
        except BaseException as error:  # handed to the caller's loop
            failed.append(error)
        finally:
            ready.put(done)

    config.on_frame = on_frame
    thread = threading.Thread(target=run, name="frames", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not done:
            yield item
        if failed:
            raise failed[0]
    finally:
        pipeline.stop()
        while thread.is_alive():  # let a callback waiting for room see the stop
            try:
                ready.get(timeout=0.1)
            except queue.Empty:
                pass
        thread.join()


def _name(model: str | Model) -> str:
    """A registry name, or for a loaded model a `module:class` name that no check mistakes for another."""
    return model if isinstance(model, str) else f"{type(model).__module__}:{type(model).__name__}"


def _config(input, output, model: str, effect: str, options: dict) -> ProcessConfig:
    options = dict(options)
    model_options = _fields(ModelConfig, options)
    effect_options = _fields(EffectConfig, options, skip=("name", "class_names"))
    source_options = _fields(SourceOptions, options)
    process_options = _fields(ProcessConfig, options, skip=("input", "output", "model", "effect", "source"))
    _refuse(options, ProcessConfig, ModelConfig, EffectConfig, SourceOptions)
    if "classes" in effect_options and isinstance(effect_options["classes"], str):
        effect_options["classes"] = tuple(name.strip() for name in effect_options["classes"].split(","))
    return ProcessConfig(
        input=os.fspath(input),
        output=None if output is None else os.fspath(output),
        model=ModelConfig(name=model, **model_options),
        effect=EffectConfig(name=effect, **effect_options),
        source=SourceOptions(**source_options),
        **process_options,
    )


def _fields(cls, options: dict, skip: tuple[str, ...] = ()) -> dict:
    """Take out of `options` the keys that are fields of dataclass `cls`."""
    names = {f.name for f in dataclasses.fields(cls)} - set(skip)
    if cls is ModelConfig and "name" in names:
        names.discard("name")
    return {key: options.pop(key) for key in list(options) if key in names}


def _refuse(options: dict, *classes) -> None:
    if not options:
        return
    known = sorted({f.name for cls in classes for f in dataclasses.fields(cls)})
    word = next(iter(options))
    close = difflib.get_close_matches(word, known, n=1)
    hint = f"; did you mean {close[0]}?" if close else f"; known options: {', '.join(known)}"
    raise TypeError(f"unknown option {word!r}{hint}")
