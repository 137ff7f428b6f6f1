"""`streamer process INPUT`: segment a video and write the rendered result."""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
from dataclasses import replace

from streamer.cli.common import add_metrics_host_argument, add_redis_arguments, add_transfer_arguments, producer_config
from streamer.cli.job_options import add_job_arguments, job_config
from streamer.cli.options import add
from streamer.errors import StreamerError
from streamer.metrics import HealthServer, Metrics
from streamer.pipeline import Pipeline
from streamer.progress import ProgressBar, counted, say
from streamer.progress import summary as summary_line


def add_parser(commands) -> None:
    parser = commands.add_parser("process", help="segment a video file and render the result")
    parser.add_argument("input", help="video file or URL (anything FFmpeg reads)")
    add_job_arguments(parser)
    add_redis_arguments(parser, required=False)
    add(
        parser,
        "local workers",
        type=int,
        default=0,
        metavar="N",
        help="with --redis: also start N local workers for this job (default: 0)",
    )
    add_transfer_arguments(parser)
    report = parser.add_argument_group("reporting")
    report.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary line")
    report.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    report.add_argument("--metrics-port", type=int, help="serve /metrics (Prometheus) and /healthz on this port")
    add_metrics_host_argument(report)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.workers and not args.redis:
        raise StreamerError("--workers needs --redis URL (without Redis everything runs in this process)")
    if args.outputs and "-" in args.outputs and args.json:
        raise StreamerError("--json prints on stdout, which carries the video with -o -; drop --json")
    config = replace(job_config(args), redis=producer_config(args), local_workers=args.workers)
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
        if result.precision is not None:  # what --precision auto measured and chose, and why
            summary["precision"] = result.precision
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
