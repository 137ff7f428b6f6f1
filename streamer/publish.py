"""Write under a temporary name, publish whole: a file appears at its target only when complete.

A local target is written to a hidden temporary file in its own folder and renamed over the target
(`os.replace`, atomic on one file system). A bucket URL (s3://, gs://, az://, …) is written to a local
temporary file and uploaded in one piece to the target's key: a bucket shows an object only once its
upload completes, so no staging object exists, even when the process is killed. Other fsspec file
systems (memory://, …) get a hidden staging file beside the target, then a rename.

    with atomic_path("out/model.keras") as tmp:
        model.save(tmp)

The temporary name keeps the target's extensions (FFmpeg picks the container from them, Keras wants
.keras or .weights.h5): out.mp4 is written as .out.<random>.part.mp4.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from streamer.errors import StreamerError
from streamer.storage import filesystem, is_remote

if TYPE_CHECKING:
    import fsspec

PART = "part"
ATTEMPTS = 100
log = logging.getLogger(__name__)
_UNFINISHED: set[Path] = set()  # temporary files not yet published or removed: removed at exit whatever happens


@atexit.register
def _remove_unfinished() -> None:
    """A second Ctrl-C, or an error while cleaning up, can skip `abort()`: no temporary file outlives the process."""
    for path in list(_UNFINISHED):
        _discard(path)


def _discard(path: Path) -> bool:
    """Remove a temporary file; where its folder forbids that, empty it so nothing complete stays hidden."""
    _UNFINISHED.discard(path)
    try:
        path.unlink(missing_ok=True)
        return True
    except OSError as error:
        with contextlib.suppress(OSError):
            os.truncate(path, 0)
        log.info("%s: cannot remove this temporary file (%s); emptied it", path, error.strerror or error)
        return False


def temp_name(name: str) -> str:
    """out.mp4 → .out.<random>.part.mp4: hidden, unique, with the target's extensions."""
    head, dot, rest = name.partition(".")
    if not head:  # a hidden name such as .env: no extension to keep
        head, rest = name.lstrip("."), ""
    return f".{head}.{secrets.token_hex(4)}.{PART}" + (f".{rest}" if rest else "")


def partial_name(target: str | os.PathLike) -> Path:
    """Where a job stopped early keeps its valid but shorter output: out.mp4 → out.partial.mp4."""
    path = Path(target)
    return path.with_name(f"{path.stem}.partial{path.suffix}")


def is_object_store(fs: fsspec.AbstractFileSystem) -> bool:
    """Buckets publish an object only when its upload completes; file systems need a rename for that."""
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
    return not any(protocol in ("file", "local", "memory") for protocol in protocols)


class AtomicFile:
    """A file being written at `path` (local, temporary) that `publish()` puts at `target` whole.

    `abort()` removes it, and does nothing once published or aborted; publishing twice, or after an
    abort, is an error. With `overwrite=False` publishing refuses to replace an existing target (locally
    without a race). As a context manager it gives `path`, publishes on a clean exit and aborts on any
    exception.
    """

    def __init__(self, target: str | os.PathLike, storage: dict | None = None, overwrite: bool = True):
        self.target = str(target)
        self.overwrite = overwrite
        self.remote = is_remote(self.target)
        self.state = "open"  # open | published | aborted
        if self.remote:
            self._fs, self._key = filesystem(self.target, storage)
            name = self.target.rstrip("/").rsplit("/", 1)[-1]
            folder = Path(tempfile.gettempdir())
        else:
            local = Path(self.target.removeprefix("file://"))
            self._destination = local
            name, folder = local.name, local.parent
        self.path = _create(folder, name, self.target)
        _UNFINISHED.add(self.path)

    def publish(self) -> Path | str:
        """Put the finished file at its target: a Path for a local target, the URL for a remote one."""
        self._check_open()
        try:
            if self.remote:
                self._upload()
            else:
                self._rename(self._destination)
        except StreamerError as error:
            self._abort_saying(error)
        except BaseException:
            self.abort()
            raise
        self.state = "published"
        _UNFINISHED.discard(self.path)
        return self.target if self.remote else self._destination

    def keep_partial(self) -> Path | None:
        """After an early stop: keep what was written as `<stem>.partial.<ext>` beside a local target.
        A remote target gets nothing (half a job is not published to a bucket); returns where it went."""
        self._check_open()
        if self.remote:
            self.abort()
            return None
        partial = partial_name(self._destination)
        try:
            self._rename(partial, overwrite=True)
        except StreamerError as error:
            self._abort_saying(error)
        except BaseException:
            self.abort()
            raise
        self.state = "published"
        _UNFINISHED.discard(self.path)
        return partial

    def abort(self) -> bool:
        """Remove the temporary file; nothing appears at the target. False: it could only be emptied."""
        if self.state == "open":
            self.state = "aborted"
            return _discard(self.path)
        return True

    def _abort_saying(self, error: StreamerError):
        """Abort after a failed publish; the one error line also says when an empty temporary file stays."""
        if self.abort():
            raise error
        raise StreamerError(f"{error} (left an empty temporary file {self.path.name})") from None

    def _check_open(self) -> None:
        if self.state != "open":
            raise StreamerError(f"{self.target}: already {self.state}")

    def _rename(self, destination: Path, overwrite: bool | None = None) -> None:
        overwrite = self.overwrite if overwrite is None else overwrite
        try:
            if overwrite:
                os.replace(self.path, destination)
                return
            try:
                os.link(self.path, destination)  # fails if the target exists, so nothing is overwritten
            except FileExistsError:
                raise StreamerError(f"{destination}: already exists; not overwritten") from None
            except OSError:
                if destination.exists():  # no hard links on this file system: check, then rename
                    raise StreamerError(f"{destination}: already exists; not overwritten") from None
                os.replace(self.path, destination)
                return
            self.path.unlink()
        except OSError as error:
            raise StreamerError(
                f"{destination}: cannot publish ({error.strerror or error}); check free space and permissions"
            ) from None

    def _upload(self) -> None:
        fs, key = self._fs, self._key
        if not self.overwrite and fs.exists(key):
            raise StreamerError(f"{self.target}: already exists; not overwritten")
        if is_object_store(fs):
            try:
                fs.put_file(str(self.path), key)
            except Exception as error:
                raise StreamerError(
                    f"{self.target}: upload failed ({type(error).__name__}: {error}); check the "
                    "credentials and the bucket"
                ) from None
        else:
            folder, _, name = key.rpartition("/")
            staging = f"{folder}/{temp_name(name)}" if folder else temp_name(name)
            try:
                fs.put_file(str(self.path), staging)
                fs.mv(staging, key)
            except BaseException as error:
                with contextlib.suppress(Exception):
                    fs.rm(staging)
                if isinstance(error, Exception):
                    raise StreamerError(
                        f"{self.target}: upload failed ({type(error).__name__}: {error}); check "
                        "the path and the credentials"
                    ) from None
                raise
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, kind, error, trace) -> None:
        if error is None:
            self.publish()
        else:
            self.abort()


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, storage: dict | None = None, overwrite: bool = True) -> Iterator[Path]:
    """A local temporary path to write `target` into; published on a clean exit, removed on any exception."""
    with AtomicFile(target, storage, overwrite) as path:
        yield path


def atomic_write(target: str | os.PathLike, data: bytes, storage: dict | None = None) -> None:
    """Replace a small file in one step: a single PUT on a bucket, write-then-rename elsewhere."""
    target = str(target)
    if is_remote(target):
        fs, key = filesystem(target, storage)
        if is_object_store(fs):
            try:
                fs.pipe_file(key, data)
            except Exception as error:
                raise StreamerError(
                    f"{target}: upload failed ({type(error).__name__}: {error}); check the credentials and the bucket"
                ) from None
            return
    with atomic_path(target, storage) as path:
        path.write_bytes(data)


def _create(folder: Path, name: str, target: str) -> Path:
    """A new empty file with a temporary name in `folder` (created exclusively: never someone else's file)."""
    for _ in range(ATTEMPTS):
        path = folder / temp_name(name)
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return path
        except FileExistsError:
            continue
        except OSError as error:
            raise StreamerError(
                f"{target}: cannot write in {folder} ({error.strerror or error}); check that the "
                "folder exists and is writable"
            ) from None
    raise StreamerError(f"{target}: cannot find a free temporary name in {folder}")
