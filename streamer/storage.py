"""Cloud and remote paths (s3://, gs://, az://, …) through fsspec.

FFmpeg reads local files and its own protocols (http, rtsp, …) itself; everything else is
opened here: reads stream through a seekable fsspec file. Writes go through streamer.publish,
so an object appears only whole.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from streamer.errors import StreamerError

if TYPE_CHECKING:  # fsspec is loaded by the first remote path: local files start without it
    import fsspec

FFMPEG_PROTOCOLS = {"http", "https", "rtsp", "rtsps", "rtmp", "rtmps", "udp", "rtp", "srt", "tcp", "file"}
GLOB_CHARS = "*?["


def is_remote(url: str) -> bool:
    """A URL that only fsspec can read or write (cloud buckets, memory://, …)."""
    return "://" in url and url.split("://", 1)[0].lower() not in FFMPEG_PROTOCOLS


def filesystem(url: str, options: dict | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    from fsspec.core import url_to_fs

    try:
        return url_to_fs(url, **(options or {}))
    except (ImportError, ValueError) as error:
        scheme = url.split("://", 1)[0]
        raise StreamerError(
            f"{url}: cannot use {scheme}:// ({error}); install its fsspec package, e.g. pip install 'streamer[cloud]'"
        ) from None


@dataclass(frozen=True)
class Entry:
    """One input found by a glob, with what tells whether it changed since last time."""

    url: str
    size: int
    version: str  # etag, or mtime where the store has no etag

    @property
    def name(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]


def expand(patterns: list[str], options: dict | None = None) -> list[Entry]:
    """Every file the patterns name, sorted; a pattern that matches nothing is an error."""
    found: dict[str, Entry] = {}
    for pattern in patterns:
        fs, path = filesystem(pattern, options)
        paths = fs.glob(path) if any(char in path for char in GLOB_CHARS) else [path]
        matched = 0
        for item in paths:
            try:
                info = fs.info(item)
            except FileNotFoundError:
                continue
            if info.get("type") == "directory":
                continue
            url = fs.unstrip_protocol(item) if is_remote(pattern) else item
            found[url] = Entry(url, int(info.get("size") or 0), _version(info))
            matched += 1
        if not matched:
            raise StreamerError(f"{pattern}: matches no file; check the path, the glob and the credentials")
    return [found[url] for url in sorted(found)]


def _version(info: dict) -> str:
    for key in ("ETag", "etag", "md5Hash", "generation", "LastModified", "mtime", "last_modified", "created"):
        if info.get(key) is not None:
            return str(info[key]).strip('"')
    return ""


def join(folder: str, name: str) -> str:
    return folder.rstrip("/") + "/" + name if "://" in folder else os.path.join(folder, name)
