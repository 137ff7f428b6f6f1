"""The options that describe a job, and the one function that makes the job (a ProcessConfig) from them.

`process`, `submit` and `batch` take the same options for the same things, and each makes its job with
`job_config`, so a job submitted to Redis is the job `process` would have run.
"""

from __future__ import annotations

import argparse

from streamer.cli.common import (
    add_effect_arguments,
    add_model_arguments,
    effect_config,
    model_config,
)
from streamer.cli.options import add
from streamer.errors import StreamerError
from streamer.job import ProcessConfig
from streamer.options import DROP_POLICIES, EncodeConfig, LiveConfig, SourceOptions


def add_job_arguments(parser: argparse.ArgumentParser, outputs: bool = True) -> argparse._ArgumentGroup:
    """Outputs, model, effect, detections, encoding, trimming and live options of a job; returns the effect group.
    `outputs=False`: the command names the outputs itself (batch: -o DEST, --detections beside each video)."""
    if outputs:
        add(
            parser,
            "output",
            dest="outputs",
            action="append",
            metavar="OUTPUT",
            help="file, folder/index.m3u8 (HLS), rtsp:// or rtmp:// URL; repeat for several outputs "
            "(default: <stem>_<effect>.mp4 beside the input)",
        )
        add(parser, "overwrite", action="store_true", help="overwrite the output if it exists")
    add_model_arguments(parser)
    effect = add_effect_arguments(parser)
    if outputs:
        effect.add_argument(
            "--detections",
            dest="detections_file",
            metavar="FILE.jsonl",
            help="also write one JSON line per frame: index, pts, boxes [y1,x1,y2,x2], classes, scores, RLE masks "
            "(semantic models: one mask per class present, with its pixel count)",
        )
    effect.add_argument(
        "--detections-format",
        choices=("jsonl", "coco"),
        default="jsonl",
        help="jsonl: one line per frame; coco: a COCO results file (bbox [x,y,w,h], image_id = frame index) "
        "(default: jsonl)",
    )
    encode = parser.add_argument_group("encoding")
    encode.add_argument(
        "--codec", help="video encoder (default: the container's: .webm VP9, .gif gif, .mp4/.mkv and others H.264)"
    )
    encode.add_argument("--crf", type=int, default=23, help="quality, lower is better (default: 23)")
    encode.add_argument("--preset", default="veryfast", help="x264 speed preset (default: veryfast)")
    encode.add_argument("--pix-fmt", help="pixel format (default: yuv420p, or what the codec takes)")
    encode.add_argument("--scale", metavar="WxH", help="output size: 640x360, or 640:-2 to keep the aspect (even)")
    encode.add_argument("--bitrate", help="target bitrate such as 2M, instead of --crf (network outputs)")
    encode.add_argument("--maxrate", help="peak bitrate such as 2.5M (with --bufsize: VBV, for network outputs)")
    encode.add_argument("--bufsize", help="rate-control buffer such as 5M (default with --maxrate: twice it)")
    encode.add_argument(
        "--format", help="container of -o - (stdout) or of an output without extension: matroska, mpegts, mp4"
    )
    trim = parser.add_argument_group("trimming")
    trim.add_argument("--start", metavar="T", help="seek to T (seconds or [HH:]MM:SS[.ms]); output starts at 0")
    trim.add_argument("--duration", metavar="T", help="process only T of input (seconds or [HH:]MM:SS[.ms])")
    trim.add_argument("--stride", type=int, default=1, metavar="N", help="keep every Nth frame (timestamps kept)")
    trim.add_argument("--max-fps", type=float, metavar="F", help="keep at most F frames per second of input")
    live = parser.add_argument_group("live streams")
    live.add_argument(
        "--live",
        action="store_true",
        default=None,
        help="treat the input as live (default: rtsp/rtmp/udp/srt URLs, cameras, endless HTTP)",
    )
    live.add_argument("--rtsp-transport", default="tcp", choices=("tcp", "udp"), help="RTSP transport (default: tcp)")
    live.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="seconds to connect, and without data before reconnecting (default: 10)",
    )
    live.add_argument(
        "--give-up",
        type=float,
        default=60.0,
        help="seconds without frames before a live job fails, also when the stream is down at start (default: 60)",
    )
    live.add_argument(
        "--max-backoff",
        type=float,
        default=8.0,
        help="longest wait between reconnect attempts, which double from 0.5 s (default: 8)",
    )
    live.add_argument(
        "--drop",
        default="oldest",
        choices=DROP_POLICIES,
        help="when falling behind a live input, drop the oldest or newest frame, or none (default: oldest)",
    )
    live.add_argument("--segment", help="split file outputs every DURATION (e.g. 10m, 30s, 1h)")
    live.add_argument("--hls-time", type=float, default=2.0, help="seconds per HLS segment (default: 2)")
    live.add_argument(
        "--hls-list-size", type=int, default=6, help="segments kept in the HLS playlist, 0 keeps all (default: 6)"
    )
    group = parser.add_argument_group("frames over redis")
    group.add_argument("--frame-codec", default="raw", help="raw | png | jpeg | webp (default: raw, lossless)")
    group.add_argument("--quality", type=int, default=90, help="jpeg/webp quality of frames over Redis (default: 90)")
    return effect


def job_config(args: argparse.Namespace) -> ProcessConfig:
    """The job the command line asks for: process's and submit's; batch's, for each video (its input and outputs
    are filled in per video)."""
    outputs = getattr(args, "outputs", None) or [None]
    return ProcessConfig(
        input=getattr(args, "input", ""),
        output=outputs[0],
        also=tuple(outputs[1:]),
        overwrite=getattr(args, "overwrite", False),
        segment=parse_duration(args.segment) if args.segment else None,
        hls_time=args.hls_time,
        hls_list_size=args.hls_list_size,
        source=source_options(args),
        live=LiveConfig(drop=args.drop, give_up=args.give_up, max_backoff=args.max_backoff),
        model=model_config(args),
        effect=effect_config(args),
        detections=getattr(args, "detections_file", None),
        detections_format=args.detections_format,
        parallel_batches=args.parallel_batches,
        encode=EncodeConfig(
            codec=args.codec,
            crf=args.crf,
            preset=args.preset,
            pix_fmt=args.pix_fmt,
            scale=parse_scale(args.scale) if args.scale else None,
            bitrate=args.bitrate,
            maxrate=args.maxrate,
            bufsize=args.bufsize,
        ),
        format=args.format,
        frame_codec=args.frame_codec,
        frame_quality=args.quality,
    )


def source_options(args: argparse.Namespace) -> SourceOptions:
    """How the input is opened and which of its frames are kept."""
    if args.stride < 1:
        raise StreamerError(f"--stride {args.stride}: must be at least 1")
    if args.max_fps is not None and args.max_fps <= 0:
        raise StreamerError(f"--max-fps {args.max_fps:g}: must be positive")
    start = parse_time(args.start, "--start") if args.start else None
    duration = parse_time(args.duration, "--duration") if args.duration else None
    if duration is not None and duration <= 0:
        raise StreamerError(f"--duration {args.duration}: must be positive")
    return SourceOptions(
        rtsp_transport=args.rtsp_transport,
        timeout=args.timeout,
        live=args.live,
        start=start,
        duration=duration,
        stride=args.stride,
        max_fps=args.max_fps,
    )


def parse_time(text: str, option: str) -> float:
    """'12.5', '1:30', '00:01:30.5' → seconds, as FFmpeg takes them."""
    try:
        seconds = 0.0
        for part in text.strip().split(":"):
            seconds = seconds * 60 + float(part)
        if len(text.split(":")) > 3 or seconds < 0:
            raise ValueError
    except ValueError:
        raise StreamerError(f"{option} {text}: give seconds (12.5) or [HH:]MM:SS[.ms] (1:30)") from None
    return seconds


def parse_scale(text: str) -> tuple[int, int]:
    """'640x360', '640:360' or '640:-2' (the other side follows the aspect; -2 keeps it even)."""
    parts = text.lower().replace("x", ":").split(":")
    try:
        width, height = (int(part) for part in parts)
    except ValueError:
        raise StreamerError(f"--scale {text}: give WIDTHxHEIGHT (640x360) or WIDTH:-2 (640:-2)") from None
    if (width < 0 and height < 0) or any(v == 0 or v < -2 or 0 < v < 2 for v in (width, height)):
        raise StreamerError(f"--scale {text}: sides must be at least 2, or -1/-2 on one side to keep the aspect")
    return width, height


def parse_duration(text: str) -> float:
    """'10m', '30s', '1h' or plain seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if text[-1].lower() in units:
            seconds = float(text[:-1]) * units[text[-1].lower()]
        else:
            seconds = float(text)
    except (ValueError, IndexError):
        raise StreamerError(f"--segment {text}: give a duration such as 10m, 30s or 1h") from None
    if seconds <= 0:
        raise StreamerError(f"--segment {text}: must be positive")
    return seconds
