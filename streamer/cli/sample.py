"""`streamer sample road -o road.mp4`: render a synthetic video to try a model on."""

from __future__ import annotations

import argparse
from fractions import Fraction

from streamer.cli.common import parse_size
from streamer.errors import StreamerError
from streamer.progress import ProgressBar, counted, say
from streamer.sink import check_output

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
    from workers.samples import write_sample

    with ProgressBar("rendering", enabled=not args.quiet) as progress:
        truth = write_sample(_sample(args.kind), output, width, height, rate, count, args.seed, annotations, progress)
    if not args.quiet:
        say(f"{counted(count, 'frame')} ({float(count / rate):.1f} s at {rate} fps, {width}x{height}) → {output}")
        if annotations is not None:
            objects = counted(len(truth.annotations), "object")
            say(f"ground truth of {counted(count, 'frame')} ({objects}) → {annotations}")
    return 0


def _sample(kind: str):
    """The model package's description of the sample video `kind` (its frames with their ground truth)."""
    if kind == "road":
        from workers.unet.synthetic import ROAD_SAMPLE

        return ROAD_SAMPLE
    from workers.maskrcnn.shapes import SHAPES_SAMPLE

    return SHAPES_SAMPLE
