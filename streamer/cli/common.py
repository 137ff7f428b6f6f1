"""Options shared by several commands."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
from typing import TYPE_CHECKING

from streamer.cli.options import add
from streamer.errors import StreamerError

if TYPE_CHECKING:  # imported where used: a command's parser is built without OpenCV, NumPy or Redis
    from streamer.distributed.connection import RedisConfig
    from streamer.effects import EffectConfig
    from streamer.models import ModelConfig


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", default="unet", help="model name (default: unet)")
    group.add_argument("--weights", help="weights file (default: the model's bundled demo weights)")
    add(
        group,
        "batch",
        type=int,
        metavar="N",
        help="frames per model call (default: 4; 2 for a model on ONNX Runtime or OpenVINO)",
    )
    group.add_argument(
        "--parallel-batches",
        type=int,
        default=2,
        metavar="N",
        help="model calls running at once in this process, so one batch's pre- and post-processing "
        "overlaps another's inference (default: 2; 1 for a model that is not thread-safe)",
    )
    group.add_argument(
        "--threshold",
        "--min-confidence",
        dest="threshold",
        type=float,
        help="unet: mask probability threshold (default 0.5); maskrcnn: minimum detection "
        "confidence (default: the weights' DETECTION_MIN_CONFIDENCE)",
    )
    add(group, "device", help="cpu, a GPU number (0, 1, …), cuda:N or /GPU:N (default: a GPU when there is one)")
    group.add_argument("--mixed-precision", action="store_true", help="float16 compute (GPUs)")
    add_precision_argument(group)
    add_gpu_memory_argument(group)
    add_threads_argument(group)
    add_runtime_argument(group)
    add_model_settings_arguments(group)


def add_threads_argument(group) -> None:
    group.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="CPU threads one model call may use, so several workers share a machine (default: every core; "
        "for a live input, every core but one, which decoding and encoding need to keep pace)",
    )


def add_runtime_argument(group) -> None:
    group.add_argument(
        "--runtime",
        choices=("tf", "onnx", "openvino"),
        default="tf",
        help="semantic models (unet, semantic): TensorFlow (default), ONNX Runtime or OpenVINO",
    )


def add_precision_argument(group) -> None:
    group.add_argument(
        "--precision",
        choices=("auto", "f32", "bf16"),
        default="auto",
        help="unet on the CPU: bf16 computes in bfloat16 (CPUs with avx512_bf16/amx_bf16); auto (default): "
        "bf16 where it is faster and its masks agree with f32's, else f32",
    )


def add_gpu_memory_argument(group) -> None:
    group.add_argument(
        "--gpu-memory-limit",
        type=int,
        metavar="MB",
        help="GPU memory this process may take on each GPU, so several workers share one "
        "(default: TensorFlow's memory growth, taking memory as needed)",
    )


def add_model_settings_arguments(group) -> None:
    """--config, --set, --class-names and --exclude: what a user's own weights file does not say about itself."""
    group.add_argument(
        "--config",
        dest="model_config_file",
        metavar="FILE",
        help="model settings, JSON or YAML (maskrcnn: matterport's Config names, e.g. IMAGE_MAX_DIM: 512), or "
        "the KEY value listing matterport's config.display() prints",
    )
    group.add_argument(
        "--set",
        dest="model_settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="one model setting over --config's, e.g. --set DETECTION_MIN_CONFIDENCE=0.9 (JSON values); repeatable",
    )
    group.add_argument(
        "--class-names",
        metavar="NAMES|FILE",
        help="names of the model's classes, background first: BG,balloon or a file with one name per line "
        "(default: the names the weights file carries)",
    )
    group.add_argument(
        "--exclude",
        metavar="LAYERS",
        help="maskrcnn: comma-separated layers (names or regular expressions) of the weights file not to load, "
        "left as initialised, e.g. mrcnn_class_logits,mrcnn_bbox_fc,mrcnn_mask",
    )


def parse_settings(items) -> dict:
    """--set KEY=VALUE items → {KEY: VALUE}; values are JSON when they parse as JSON, else strings."""
    out = {}
    for item in items or []:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise StreamerError(f"--set {item!r}: write KEY=VALUE, e.g. --set IMAGE_MAX_DIM=512")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def parse_class_names(text: str | None) -> tuple[str, ...] | None:
    """'BG,balloon' or a file with one name per line → ('BG', 'balloon')."""
    if not text:
        return None
    if os.path.isfile(text):
        if os.path.getsize(text) > 1_000_000:
            raise StreamerError(f"--class-names {text}: larger than 1 MB; give one class name per line")
        with open(text, encoding="utf-8", errors="replace") as f:
            names = [line.strip() for line in f if line.strip()]
    else:
        names = [name.strip() for name in text.split(",")]
    if len(names) < 2 or not all(names):
        raise StreamerError(
            f"--class-names {text}: give at least two names, background first (e.g. BG,balloon), or a file "
            "with one name per line"
        )
    return tuple(names)


def model_settings(args: argparse.Namespace) -> dict:
    """ModelConfig's config_file, settings, class_names and exclude from --config, --set, --class-names and
    --exclude."""
    from streamer.settings import read_settings_file

    config_file = getattr(args, "model_config_file", None)
    if config_file:
        read_settings_file(config_file)  # a bad file fails here, before anything starts
    return {
        "config_file": config_file,
        "settings": parse_settings(getattr(args, "model_settings", [])),
        "class_names": parse_class_names(getattr(args, "class_names", None)),
        "exclude": parse_names(getattr(args, "exclude", None)),
    }


def parse_names(text: str | None) -> tuple[str, ...]:
    """'a, b,,c' → ('a', 'b', 'c')."""
    return tuple(name.strip() for name in (text or "").split(",") if name.strip())


def model_config(args: argparse.Namespace) -> ModelConfig:
    """The ModelConfig of add_model_arguments' options (--parallel-batches goes to ProcessConfig), or of the
    worker's (which has no --threshold or --parallel-batches: each job brings its threshold)."""
    from streamer.models import ModelConfig

    parallel = getattr(args, "parallel_batches", 1)
    if parallel < 1:
        raise StreamerError(f"--parallel-batches {parallel}: must be at least 1")
    return ModelConfig(
        name=args.model,
        weights=args.weights,
        batch_size=args.batch,
        threshold=getattr(args, "threshold", None),
        device=args.device,
        mixed_precision=args.mixed_precision,
        precision=getattr(args, "precision", "auto"),
        gpu_memory_limit=getattr(args, "gpu_memory_limit", None),
        threads=getattr(args, "threads", None),
        runtime=getattr(args, "runtime", "tf"),
        **model_settings(args),
    )


def add_effect_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """--effect, --color, --alpha, --classes; returns the group for a command's own effect options."""
    from streamer.effects import NAMES

    group = parser.add_argument_group("effect")
    group.add_argument("--effect", default="overlay", help=f"one of {', '.join(NAMES)} (default: overlay)")
    group.add_argument("--color", default="255,0,255", help="overlay colour R,G,B (default: 255,0,255)")
    group.add_argument("--alpha", type=float, default=0.5, help="overlay opacity 0..1 (default: 0.5)")
    group.add_argument("--classes", help="instance models: only these classes, e.g. balloon or person,car")
    group.add_argument(
        "--track",
        action="store_true",
        help="instance models: give each object a track id that persists across frames; the instances "
        "effect colours objects by track and --detections rows carry track_ids",
    )
    return group


def effect_config(args: argparse.Namespace) -> EffectConfig:
    from streamer.effects import EffectConfig

    if not 0.0 <= args.alpha <= 1.0:
        raise StreamerError(f"--alpha {args.alpha}: must be between 0 and 1")
    classes = tuple(name.strip() for name in args.classes.split(",")) if args.classes else None
    return EffectConfig(
        name=args.effect,
        color=parse_color(args.color),
        alpha=args.alpha,
        classes=classes,
        track=bool(getattr(args, "track", False)),
    )


def parse_color(text: str) -> tuple[int, int, int]:
    try:
        red, green, blue = (int(part) for part in text.split(","))
    except ValueError:
        raise StreamerError(f"--color {text}: give three numbers R,G,B such as 255,0,255") from None
    if not all(0 <= value <= 255 for value in (red, green, blue)):
        raise StreamerError(f"--color {text}: each value must be 0..255")
    return red, green, blue


def add_redis_arguments(parser: argparse.ArgumentParser, required: bool) -> None:
    group = parser.add_argument_group("redis")
    default = os.environ.get("STREAMER_REDIS")
    group.add_argument(
        "--redis",
        metavar="URL",
        default=default,
        required=required and not default,
        help="redis://[user:password@]host:port/db or rediss:// for TLS, or @FILE: the URL read from FILE "
        "(env STREAMER_REDIS; a password given here shows in `ps`: prefer @FILE or the variable)",
    )
    group.add_argument("--namespace", default="streamer", help="prefix of every key (default: streamer)")
    group.add_argument(
        "--grace", type=float, default=10.0, help="seconds to keep retrying when Redis goes away (default: 10)"
    )


def add_transfer_arguments(parser: argparse.ArgumentParser) -> None:
    """How the process that sends a job's frames over Redis bounds what it keeps there."""
    group = parser.add_argument_group("redis transfer")
    group.add_argument("--in-flight", type=int, default=64, help="frames of one job out at once (default: 64)")
    group.add_argument("--ttl", type=float, default=24 * 3600, help="seconds a finished job is kept (default: 1 day)")


def redis_config(args: argparse.Namespace) -> RedisConfig | None:
    from streamer.distributed.connection import RedisConfig

    if not args.redis:
        return None
    return RedisConfig(url=redis_url(args.redis), namespace=args.namespace, grace=args.grace)


MAX_URL_FILE = 64 * 1024  # bytes read from a --redis @FILE


def redis_url(value: str) -> str:
    """The URL of `--redis VALUE`: `@FILE` is read from FILE (a Docker or Kubernetes secret); a password
    written on the command line itself is warned of once, since `ps` shows it to every user."""
    from urllib.parse import urlsplit

    if value.startswith("@"):
        path = value[1:]
        try:
            with open(path, encoding="utf-8") as file:
                url = file.read(MAX_URL_FILE).strip()
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or "not text"
            raise StreamerError(f"--redis @{path}: cannot read it ({reason}); give a file holding the URL") from None
        if not url or "\n" in url:
            raise StreamerError(f"--redis @{path}: the file must hold one URL, redis://[user:password@]host:port/db")
        return url
    try:
        password = urlsplit(value).password
    except ValueError:
        password = None
    if password and value != os.environ.get("STREAMER_REDIS"):
        _warn_password_in_arguments()
    return value


@functools.cache
def _warn_password_in_arguments() -> None:
    logging.getLogger("streamer").warning(
        "--redis: the password on the command line shows in `ps` to every user of this machine; "
        "give --redis @FILE (a file holding the URL) or the STREAMER_REDIS variable instead"
    )


def add_metrics_host_argument(parser) -> None:
    default = os.environ.get("STREAMER_METRICS_HOST", "127.0.0.1")
    parser.add_argument(
        "--metrics-host",
        default=default,
        help=f"address --metrics-port listens on (default: {default}; env STREAMER_METRICS_HOST, "
        "0.0.0.0 in the images, where Prometheus scrapes pods)",
    )


def producer_config(args: argparse.Namespace) -> RedisConfig | None:
    """RedisConfig with the options of the process that sends frames (add_transfer_arguments)."""
    config = redis_config(args)
    if config is not None:
        if args.in_flight < 1:
            raise StreamerError("--in-flight: must be at least 1")
        config.in_flight, config.job_ttl = args.in_flight, args.ttl
    return config


def parse_size(text: str) -> tuple[int, int]:
    """'1280x720' → (1280, 720): WIDTHxHEIGHT, as every --size option takes it."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise StreamerError(f"--size {text}: give WIDTHxHEIGHT such as 1280x720 or 256x128") from None
    if width < 16 or height < 16:
        raise StreamerError(f"--size {text}: at least 16x16")
    return width, height
