"""Options shared by several commands."""

from __future__ import annotations

import argparse
import os

from streamer.distributed.connection import RedisConfig
from streamer.distributed.messages import CODECS
from streamer.errors import StreamerError


def add_redis_arguments(parser: argparse.ArgumentParser, required: bool) -> None:
    group = parser.add_argument_group("redis")
    default = os.environ.get("STREAMER_REDIS")
    group.add_argument("--redis", metavar="URL", default=default, required=required and not default,
                       help="redis://[user:password@]host:port/db or rediss:// for TLS (env STREAMER_REDIS)")
    group.add_argument("--namespace", default="streamer", help="prefix of every key (default: streamer)")
    group.add_argument("--grace", type=float, default=10.0,
                       help="seconds to keep retrying when Redis goes away (default: 10)")


def add_frame_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("frames over redis")
    group.add_argument("--frame-codec", default="raw", help=f"{' | '.join(CODECS)} (default: raw, lossless)")
    group.add_argument("--quality", type=int, default=90, help="jpeg/webp quality (default: 90)")
    group.add_argument("--in-flight", type=int, default=64, help="frames of one job out at once (default: 64)")
    group.add_argument("--ttl", type=float, default=24 * 3600, help="seconds a finished job is kept (default: 1 day)")


def redis_config(args: argparse.Namespace) -> RedisConfig | None:
    if not args.redis:
        return None
    return RedisConfig(url=args.redis, namespace=args.namespace, grace=args.grace)


def check_frame_codec(codec: str) -> str:
    if codec not in CODECS:
        raise StreamerError(f"--frame-codec {codec}: choose one of {', '.join(CODECS)}")
    return codec


def producer_config(args: argparse.Namespace) -> RedisConfig | None:
    """RedisConfig with the options of the process that sends frames (add_frame_arguments)."""
    config = redis_config(args)
    if config is not None:
        if args.in_flight < 1:
            raise StreamerError("--in-flight: must be at least 1")
        config.frame_codec, config.quality = check_frame_codec(args.frame_codec), args.quality
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
