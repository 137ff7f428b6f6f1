"""Cloud and remote paths (s3://, gs://, az://, …) through fsspec.

FFmpeg reads local files and its own protocols (http, rtsp, …) itself; everything else is
opened here: reads stream through a seekable fsspec file, writes go to a local temporary
file that is uploaded when complete, so an object appears only whole.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import fsspec
from fsspec.core import url_to_fs

from streamer.errors import StreamerError

FFMPEG_PROTOCOLS = {"http", "https", "rtsp", "rtsps", "rtmp", "rtmps", "udp", "rtp", "srt", "tcp", "file"}
GLOB_CHARS = "*?["


def is_remote(url: str) -> bool:
    """A URL that only fsspec can read or write (cloud buckets, memory://, …)."""
    return "://" in url and url.split("://", 1)[0].lower() not in FFMPEG_PROTOCOLS


def filesystem(url: str, options: dict | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    try:
        return url_to_fs(url, **(options or {}))
    except (ImportError, ValueError) as error:
        scheme = url.split("://", 1)[0]
        raise StreamerError(f"{url}: cannot use {scheme}:// ({error}); install its fsspec package, e.g. "
                            "pip install 'streamer[cloud]'") from None


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


def is_object_store(fs: fsspec.AbstractFileSystem) -> bool:
    """Buckets publish an object only when its upload completes; file systems need a rename for that."""
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
    return not any(protocol in ("file", "local", "memory") for protocol in protocols)


def upload(local: str, url: str, options: dict | None = None) -> None:
    """Put a finished local file at `url` so that it appears only whole."""
    fs, path = filesystem(url, options)
    staging = path if is_object_store(fs) else f"{path}.part-{os.getpid()}"
    try:
        fs.put_file(local, staging)
        if staging != path:
            fs.mv(staging, path)
    except Exception as error:
        try:
            fs.rm(staging)
        except Exception:
            pass
        raise StreamerError(f"{url}: upload failed ({type(error).__name__}: {error}); check the credentials "
                            "and the bucket") from None


def write_whole(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Replace a small file in one step: a single PUT on a bucket, write-then-rename elsewhere."""
    if is_object_store(fs):
        fs.pipe_file(path, data)
        return
    staging = f"{path}.part-{os.getpid()}"
    fs.pipe_file(staging, data)
    fs.mv(staging, path)
