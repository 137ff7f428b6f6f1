"""`streamer process INPUT`: segment a video and write the rendered result."""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading

from streamer.cli.common import (
    add_effect_arguments,
    add_frame_arguments,
    add_metrics_host_argument,
    add_model_arguments,
    add_redis_arguments,
    effect_config,
    model_config,
    producer_config,
)
from streamer.cli.options import add
from streamer.errors import StreamerError
from streamer.live import DROP_POLICIES, LiveConfig
from streamer.metrics import HealthServer, Metrics
from streamer.pipeline import Pipeline, ProcessConfig
from streamer.progress import ProgressBar, counted, say
from streamer.progress import summary as summary_line
from streamer.sink import EncodeConfig
from streamer.source import SourceOptions


def add_parser(commands) -> None:
    parser = commands.add_parser("process", help="segment a video file and render the result")
    parser.add_argument("input", help="video file or URL (anything FFmpeg reads)")
    parser.add_argument(
        "-o",
        "--output",
        action="append",
        metavar="OUTPUT",
        help="file, folder/index.m3u8 (HLS), rtsp:// or rtmp:// URL; repeat for several outputs "
        "(default: <stem>_<effect>.mp4 beside the input)",
    )
    parser.add_argument("-y", "--overwrite", action="store_true", help="overwrite the output if it exists")
    add_model_arguments(parser)
    effect = add_effect_arguments(parser)
    effect.add_argument(
        "--detections",
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
    add_redis_arguments(parser, required=False)
    add(
        parser,
        "local workers",
        type=int,
        default=0,
        metavar="N",
        help="with --redis: also start N local workers for this job (default: 0)",
    )
    add_frame_arguments(parser)
    report = parser.add_argument_group("reporting")
    report.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary line")
    report.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    report.add_argument("--metrics-port", type=int, help="serve /metrics (Prometheus) and /healthz on this port")
    add_metrics_host_argument(report)
    parser.set_defaults(run=run)


def config_from_args(args: argparse.Namespace) -> ProcessConfig:
    if args.workers and not args.redis:
        raise StreamerError("--workers needs --redis URL (without Redis everything runs in this process)")
    outputs = args.output or [None]
    return ProcessConfig(
        input=args.input,
        output=outputs[0],
        also=tuple(outputs[1:]),
        overwrite=args.overwrite,
        segment=parse_duration(args.segment) if args.segment else None,
        hls_time=args.hls_time,
        hls_list_size=args.hls_list_size,
        source=source_options(args),
        live=LiveConfig(drop=args.drop, give_up=args.give_up, max_backoff=args.max_backoff),
        model=model_config(args),
        effect=effect_config(args),
        detections=args.detections,
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
        redis=producer_config(args),
        local_workers=args.workers,
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
    if args.output and "-" in args.output and args.json:
        raise StreamerError("--json prints on stdout, which carries the video with -o -; drop --json")
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


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM finalizes the outputs, as Ctrl-C does
        signal.signal(signal.SIGHUP, _interrupt)  # and so does closing the terminal
    metrics = Metrics()
    health = HealthServer(metrics, args.metrics_port, host=args.metrics_host) if args.metrics_port else None
    try:
        # progress is on stderr: with --json too (stdout has the summary)
        with ProgressBar("processing", enabled=not args.quiet) as progress:
            pipeline = Pipeline(config, metrics=metrics)
            result = pipeline.run(progress)
    finally:
        if health:
            health.close()
    if result.warning:  # even with -q: the output is shorter than the input
        say(f"streamer: warning: {config.input}: {result.warning}; kept the frames decoded before it")
    output = _where(result.output)
    if args.json:
        summary = {
            "output": output,
            "frames": result.frames,
            "seconds": round(result.seconds, 3),
            "fps": round(result.fps, 2),
            "load_s": round(result.setup_seconds, 3),
            "total_s": round(result.total_seconds, 3),
            "interrupted": result.interrupted,
            "warning": result.warning,
            "audio": result.audio,
        }
        if result.live:
            summary.update(
                live=True,
                input_fps=round(result.input_fps, 2),
                dropped=result.dropped,
                gaps=result.gaps,
                latency_p50=result.latency_p50,
                latency_p95=result.latency_p95,
                latency_parts=pipeline.latency.parts() if pipeline.latency else {},
            )
        print(json.dumps(summary))
    if result.live:
        if not args.quiet:
            p50, p95 = (
                f"{value * 1000:.0f}" if value is not None else "-"
                for value in (result.latency_p50, result.latency_p95)
            )
            say(
                f"{result.frames} frames in {result.seconds:.1f} s (in {result.input_fps:.1f} fps, out "
                f"{result.fps:.1f} fps), {result.dropped} dropped, {result.gaps} gaps, latency p50 {p50} ms "
                f"p95 {p95} ms → {result.output}"
            )
        return 0
    if result.interrupted:
        kept = (
            f"kept a valid shorter video at {result.output}"
            if result.output
            else "no frame was written, removed the partial output"
        )
        say(f"streamer: interrupted after {result.frames} frames: {kept}")
        return 130
    if not args.quiet:
        summary_line(
            f"{counted(result.frames, 'frame')} in {result.seconds:.1f} s "
            f"({result.fps:.1f} fps) → {output}; {result.total_seconds:.1f} s in all, of which "
            f"{result.setup_seconds:.1f} s opening the input and loading the model",
            output=output,
            frames=result.frames,
            seconds=round(result.seconds, 3),
            fps=round(result.fps, 2),
            load_s=round(result.setup_seconds, 3),
            total_s=round(result.total_seconds, 3),
        )
    return 0


def _where(output: str | None) -> str | None:
    """An output file's absolute path (URLs and stdout as they are)."""
    if output is None or output == "-" or "://" in output:
        return output
    return os.path.abspath(output)


def _interrupt(signum, frame):
    raise KeyboardInterrupt
