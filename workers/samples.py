"""A sample video and its ground truth, written together: `write_sample` encodes the frames a model package's
annotated frame generator draws and, when asked, records each frame's objects as COCO json (annotations.py).

A generator is `frames(seed, width, height, fps, count)` yielding (RGB image, masks bool H×W×N, class ids [N],
instance ids [N]) per frame: workers.unet.synthetic.annotated_road_frames, workers.maskrcnn.shapes.
annotated_shapes_frames. `streamer sample` writes them to a file of the user's; the INT8 export writes a
held-out clip to check a quantized model against the truth.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from queue import Full, Queue

from streamer.publish import atomic_path

Frames = Callable[[int, int, int, float, int], Iterator[tuple]]  # (seed, width, height, fps, count) → frames


@dataclass(frozen=True)
class Sample:
    """A kind of sample video: its name, its annotated frame generator and its class names (BG excluded)."""

    name: str
    frames: Frames
    categories: tuple[str, ...]


def write_sample(
    sample: Sample,
    output,
    width: int,
    height: int,
    rate: Fraction,
    count: int,
    seed: int,
    annotations=None,
    progress: Callable[[int, int], None] | None = None,
):
    """Encode `count` frames of `sample` (from `seed`) to `output` at `rate` fps and, with `annotations` (a path),
    write their ground truth there; → the VideoAnnotations written, or None. A failure leaves no output."""
    from streamer.options import EncodeConfig
    from streamer.sink import VideoSink

    truth = None
    if annotations is not None:
        from workers.annotations import VideoAnnotations

        info = {"video": str(Path(str(output)).name), "sample": sample.name, "seed": seed, "fps": str(rate)}
        truth = VideoAnnotations(list(sample.categories), width, height, info)
    time_base = 1 / rate
    sink = VideoSink(output, width, height, rate, time_base, encode=EncodeConfig())
    try:
        # drawing the next frames overlaps encoding this one (both release the GIL for most of their time)
        for index, (image, masks, class_ids, instances) in enumerate(
            ahead(sample.frames(seed, width, height, float(rate), count))
        ):
            sink.write(image, index, time_base)
            if truth is not None:
                truth.add(index, masks, class_ids, instances)
            if progress is not None:
                progress(index + 1, count)
    except BaseException:
        sink.abort()
        raise
    sink.close()
    if truth is not None:
        with atomic_path(annotations) as tmp:
            Path(tmp).write_text(json.dumps(truth.to_dict()))
    return truth


def ahead(items: Iterator, depth: int = 4) -> Iterator:
    """`items`, produced on a thread of their own up to `depth` ahead; an error there is raised here, and
    leaving the loop early stops the thread."""
    queue: Queue = Queue(depth)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        queue.put((item, None), timeout=0.1)
                        break
                    except Full:
                        continue
                if stop.is_set():
                    return
            queue.put((done, None))
        except BaseException as error:  # handed to the consumer, which raises it
            queue.put((done, error))

    thread = threading.Thread(target=produce, name="sample-frames", daemon=True)
    thread.start()
    try:
        while True:
            item, error = queue.get()
            if error is not None:
                raise error
            if item is done:
                return
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)
