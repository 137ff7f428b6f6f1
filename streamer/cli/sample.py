"""`streamer sample road -o road.mp4`: render a synthetic video to try a model on."""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from queue import Full, Queue

from streamer.cli.common import parse_size
from streamer.errors import StreamerError
from streamer.options import EncodeConfig
from streamer.progress import ProgressBar, counted, say
from streamer.publish import atomic_path
from streamer.sink import VideoSink, check_output

SAMPLES = ("road", "shapes")


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "sample",
        help="render a synthetic video: road (a drive with lane marks) or "
        "shapes (moving, overlapping squares, circles, triangles)",
    )
    parser.add_argument("kind", help=f"what to render: {', '.join(SAMPLES)}")
    parser.add_argument("-o", "--output", required=True, help="output video file, e.g. road.mp4")
    parser.add_argument("--seconds", type=float, default=10.0, help="length (default: 10)")
    parser.add_argument("--fps", default="30", help="frame rate, e.g. 30 or 30000/1001 (default: 30)")
    parser.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT (default: 1280x720)")
    parser.add_argument("--seed", type=int, default=0, help="scene seed (default: 0)")
    parser.add_argument(
        "--annotations",
        metavar="FILE.json",
        help="also write the ground truth of every frame as COCO json (RLE masks, boxes, instance ids), "
        "for `streamer evaluate MODEL --data video:VIDEO:FILE.json`",
    )
    parser.add_argument("-y", "--overwrite", action="store_true", help="overwrite the output if it exists")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary line")
    parser.set_defaults(run=run)


def parse_rate(text: str) -> Fraction:
    try:
        rate = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise StreamerError(f"--fps {text}: give a number or a ratio such as 30000/1001") from None
    if rate <= 0:
        raise StreamerError(f"--fps {text}: must be positive")
    return rate


def run(args: argparse.Namespace) -> int:
    if args.kind not in SAMPLES:
        raise StreamerError(f"unknown sample {args.kind!r}: choose one of {', '.join(SAMPLES)}")
    width, height = parse_size(args.size)
    rate = parse_rate(args.fps)
    count = max(1, round(args.seconds * rate))
    output = check_output(args.output, args.overwrite)
    annotations = None
    if args.annotations:
        annotations = check_output(args.annotations, args.overwrite)
        if str(annotations) == str(output):
            raise StreamerError("--annotations: give a file other than the video, e.g. shapes.json")
    frames, categories = _renderer(args.kind)
    truth = None
    if annotations is not None:
        from workers.annotations import VideoAnnotations

        info = {"video": str(Path(str(output)).name), "sample": args.kind, "seed": args.seed, "fps": str(rate)}
        truth = VideoAnnotations(categories, width, height, info)

    time_base = 1 / rate
    sink = VideoSink(output, width, height, rate, time_base, encode=EncodeConfig())
    try:
        with ProgressBar("rendering", enabled=not args.quiet) as progress:
            # drawing the next frames overlaps encoding this one (both release the GIL for most of their time)
            for index, (image, masks, class_ids, instances) in enumerate(
                ahead(frames(args.seed, width, height, float(rate), count))
            ):
                sink.write(image, index, time_base)
                if truth is not None:
                    truth.add(index, masks, class_ids, instances)
                progress(index + 1, count)
    except BaseException:
        sink.abort()
        raise
    sink.close()
    if truth is not None:
        with atomic_path(annotations) as tmp:
            Path(tmp).write_text(json.dumps(truth.to_dict()))
    if not args.quiet:
        say(f"{counted(count, 'frame')} ({float(count / rate):.1f} s at {rate} fps, {width}x{height}) → {output}")
        if annotations is not None:
            objects = counted(len(truth.annotations), "object")
            say(f"ground truth of {counted(count, 'frame')} ({objects}) → {annotations}")
    return 0


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


def _renderer(kind: str):
    """(frames(seed, width, height, fps, count) yielding (image, masks H×W×N, class ids, instance ids), class names)."""
    if kind == "road":
        from workers.unet.synthetic import road_frames

        def road(seed, width, height, fps, count):
            for image, mask in road_frames(seed, width, height, fps, count):
                yield image, mask[:, :, None] > 0, [1], [1]

        return road, ["road"]
    from workers.maskrcnn.shapes import SHAPES, shapes_video

    def shapes(seed, width, height, fps, count):
        for image, truth, instances in shapes_video(seed, width, height, fps, count):
            yield image, truth.masks, truth.class_ids, instances

    return shapes, list(SHAPES)
