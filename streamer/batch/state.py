"""Per-video state of a batch: DEST/.streamer/<name>.json, and the claims that give each attempt to one runner."""

from __future__ import annotations

import hashlib
import json
import os
import threading

import redis

from streamer.distributed.jobs import DONE, RUNNING
from streamer.errors import StreamerError
from streamer.publish import atomic_write
from streamer.storage import Entry, filesystem, is_remote, join

MANIFEST = "manifest.json"
STATE_FOLDER = ".streamer"
STALE = 60.0
POLL = 0.5


class StateStore:
    """DEST/.streamer/: one state object and a few claim objects per input; counts the bytes it writes."""

    def __init__(self, dest: str, storage: dict | None = None, locks: redis.Redis | None = None, namespace: str = ""):
        """`locks`: a Redis that makes claims exclusive on stores without a conditional create."""
        self.dest, self.storage = dest, storage or {}
        self.locks, self.namespace = locks, namespace
        self.fs, folder = filesystem(dest, self.storage)
        self.remote = is_remote(dest)
        self.folder = f"{folder.rstrip('/')}/{STATE_FOLDER}" if self.remote else os.path.join(folder, STATE_FOLDER)
        self.written = 0
        self._lock = threading.Lock()
        if not self.remote or not _object_store(self.fs):
            self.fs.makedirs(self.folder, exist_ok=True)

    def _path(self, file: str) -> str:
        return f"{self.folder}/{file}"

    def _cat(self, path: str) -> bytes:
        """The object as it is now (s3fs answers sizes from a cached listing of the folder)."""
        if self.remote:
            self.fs.invalidate_cache(path)
        return self.fs.cat_file(path)

    def read(self, name: str) -> dict | None:
        try:
            return json.loads(self._cat(self._path(f"{name}.json")))
        except FileNotFoundError:
            return None
        except ValueError:  # a torn or foreign file: treat as an interrupted run
            return {"state": RUNNING, "attempt": 0, "heartbeat": 0}

    def read_all(self) -> dict[str, dict]:
        """Every state object, by input name (one listing and one batched read)."""
        if self.remote:
            self.fs.invalidate_cache(self.folder)
        try:
            paths = [path for path in self.fs.ls(self.folder, detail=False) if path.endswith(".json")]
        except FileNotFoundError:
            return {}
        records: dict[str, dict] = {}
        if not paths:
            return records
        for path, data in self.fs.cat(paths, on_error="omit").items():
            try:
                records[path.rsplit("/", 1)[-1].removesuffix(".json")] = json.loads(data)
            except ValueError:
                continue
        return records

    def write(self, name: str, record: dict) -> None:
        data = json.dumps(record, separators=(",", ":")).encode()
        atomic_write(join(self.dest, f"{STATE_FOLDER}/{name}.json"), data, self.storage)
        with self._lock:
            self.written += len(data)

    def create(self, file: str, record: dict) -> bool:
        """Create `file` only if it does not exist yet; False when another runner made it first."""
        data = json.dumps(record, separators=(",", ":")).encode()
        path = self._path(file)
        try:
            if not self.remote:
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                with os.fdopen(descriptor, "wb") as out:
                    out.write(data)
            elif _conditional(self.fs) or self.locks is None:
                self.fs.pipe_file(path, data, mode="create")  # S3: If-None-Match: *; memory: exclusive open
            else:  # a store without a conditional create (fsspec checks, then writes): a Redis lock decides
                lock = f"{self.namespace}:claim:{batch_id(self.dest)}:{file}"
                if not self.locks.set(lock, data, nx=True, ex=30 * 24 * 3600):
                    return False
                self.fs.pipe_file(path, data)
        except FileExistsError:
            return False
        except OSError as error:
            raise StreamerError(
                f"{self.dest}: cannot write {STATE_FOLDER}/{file} ({error}); check permissions"
            ) from None
        with self._lock:
            self.written += len(data)
        return True

    def claim_time(self, name: str, attempt: int) -> float | None:
        try:
            return float(json.loads(self._cat(self._path(f"{name}.{attempt}.claim")))["time"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None

    def exists(self, url: str) -> bool:
        fs, path = filesystem(url, self.storage)
        if self.remote:
            fs.invalidate_cache(path)
        return fs.exists(path)


def _conditional(fs) -> bool:
    """Stores whose exclusive create is atomic: S3 (If-None-Match: *) and fsspec's memory store."""
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
    return any(protocol in ("s3", "s3a", "memory") for protocol in protocols)


def _object_store(fs) -> bool:
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
    return not any(protocol in ("file", "local", "memory") for protocol in protocols)


def unchanged(record: dict | None, entry: Entry) -> bool:
    return bool(record) and record.get("size") == entry.size and record.get("version") == entry.version


def is_done(record: dict | None, entry: Entry) -> bool:
    return unchanged(record, entry) and record.get("state") == DONE


def batch_id(dest: str) -> str:
    """A batch is named by its destination, so every command over it shares its claims and keys."""
    return hashlib.sha1(dest.rstrip("/").encode()).hexdigest()[:12]
