"""Weights by URL: `local_weights(value)` is the local file for `--weights VALUE`, fetched once when it is a URL.

VALUE may be a local path (returned as it is), a name from `aliases` (a model's published release files, e.g.
maskrcnn's `coco`), or a URL: `https://`, `http://`, `s3://`, `gs://` or any other fsspec scheme. A URL is
fetched once into the cache folder, `STREAMER_CACHE` (default `~/.cache/streamer`, or `$XDG_CACHE_HOME/streamer`),
as `weights/<key>/<file name>`, and reused from there with no network. A fetch

* shows a progress bar on a terminal (a line at the start and the end elsewhere);
* resumes: a broken connection is retried from where it stopped (an HTTP Range request, validated by the
  server's ETag; an fsspec seek), and a fetch that failed leaves its `.part` file for the next one to go on;
* is checked by size (the server's Content-Length or the object's size) and, with `URL#sha256=HEX`, by digest,
  before the file takes its name: a mismatch discards it;
* is shared: processes that want the same file wait for the one fetching it (a lock file).

Without a network the error names the URL that could not be reached and the path to put the file at.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from streamer.errors import StreamerError
from streamer.secrets import redact

CHUNK = 1 << 20
TIMEOUT = 30.0  # seconds to connect, and for each read
ATTEMPTS = 4  # tries of one fetch; each try after a broken connection resumes where the last one stopped
STALL = 120.0  # seconds another process's fetch of the same file may make no progress before waiting gives up
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_DIGEST = re.compile(r"sha256[=:]([0-9a-fA-F]{64})")


def is_url(value: str) -> bool:
    return bool(_URL.match(value))


def cache_dir() -> Path:
    """The cache folder: STREAMER_CACHE, else $XDG_CACHE_HOME/streamer, else ~/.cache/streamer."""
    folder = os.environ.get("STREAMER_CACHE")
    if folder:
        return Path(folder).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "streamer"


def local_weights(value: str | None, aliases: dict[str, str] | None = None, cached_only: bool = False) -> str | None:
    """The local file of `value` (see the module's doc); None stays None. With `cached_only`, a URL not yet in
    the cache gives None instead of being fetched."""
    if not value:
        return value
    if aliases and value in aliases and not os.path.exists(value):
        value = aliases[value]
    if not is_url(value):
        return value
    url, digest = split_digest(value)
    if url.lower().startswith("file://"):
        return unquote(urlsplit(url).path)
    target = cached_path(url)
    if target.is_file() and (digest is None or _matches(target, digest)):
        return str(target)
    if cached_only:
        return None
    _fetch(url, target, digest)
    return str(target)


def split_digest(value: str) -> tuple[str, str | None]:
    """`URL#sha256=HEX` → (URL, hex digest); a URL without that fragment → (URL, None)."""
    url, _, fragment = value.partition("#")
    if not fragment:
        return url, None
    match = _DIGEST.fullmatch(fragment)
    if not match:
        raise StreamerError(f"weights {redact(value)}: after # give sha256=HEX (64 hex digits), e.g. URL#sha256=ab12…")
    return url, match.group(1).lower()


def cached_path(url: str) -> Path:
    """Where the file of `url` is kept: weights/<16 hex digits of the URL (without credentials)>/<its name>."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    plain = urlunsplit((parts.scheme.lower(), netloc, parts.path, parts.query, ""))
    key = hashlib.sha256(plain.encode()).hexdigest()[:16]
    name = re.sub(r"[^A-Za-z0-9._-]", "_", unquote(parts.path.rstrip("/").rsplit("/", 1)[-1])) or "weights"
    return cache_dir() / "weights" / key / name.lstrip(".")


def _matches(path: Path, digest: str) -> bool:
    """Whether the file's sha256 is `digest` (remembered beside it once checked)."""
    mark = path.with_name(path.name + ".sha256")
    stat = path.stat()
    stamp = f"{digest} {stat.st_size} {stat.st_mtime_ns}"
    if mark.is_file() and mark.read_text().strip() == stamp:
        return True
    if _sha256(path) != digest:
        return False
    mark.write_text(stamp)
    return True


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(url: str, target: Path, digest: str | None) -> None:
    """Fetch `url` into `target` (through `target.part`), once across processes."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StreamerError(
            f"weights cache {target.parent}: cannot create it ({error.strerror}); set STREAMER_CACHE to a folder "
            "this process may write"
        ) from None
    with _locked(target):
        if target.is_file() and (digest is None or _matches(target, digest)):
            return  # another process fetched it meanwhile
        part = target.with_name(target.name + ".part")
        _download(url, part, target)
        if digest is not None:
            actual = _sha256(part)
            if actual != digest:
                part.unlink(missing_ok=True)
                _state(part).unlink(missing_ok=True)
                raise StreamerError(
                    f"weights {redact(url)}: its sha256 is {actual}, not {digest} as #sha256= says; the download was "
                    "discarded: check the URL and the digest"
                )
        os.replace(part, target)
        _state(part).unlink(missing_ok=True)
        if digest is not None:
            _matches(target, digest)


@contextlib.contextmanager
def _locked(target: Path):
    """Hold `target`'s lock file; while another process holds it, wait as long as its `.part` file grows."""
    lock = open(target.with_name(f".{target.name}.lock"), "a")  # held until the with block ends
    try:
        part = target.with_name(target.name + ".part")
        last, since = None, time.monotonic()
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                size = part.stat().st_size if part.exists() else None
                if size != last:
                    last, since = size, time.monotonic()
                elif time.monotonic() - since > STALL:
                    raise StreamerError(
                        f"weights cache {target}: another process is fetching it and made no progress for "
                        f"{STALL:.0f} s; try again, or remove {part}"
                    ) from None
                time.sleep(0.2)
        yield
    finally:
        lock.close()


def _download(url: str, part: Path, target: Path) -> None:
    """Fill `part` with the whole file at `url`, resuming what it already holds; up to ATTEMPTS tries."""
    scheme = urlsplit(url).scheme.lower()
    reason = ""
    for attempt in range(ATTEMPTS):
        if attempt:
            time.sleep(min(0.5 * 2 ** (attempt - 1), 4.0))
        try:
            if scheme in ("http", "https"):
                _http(url, part)
            else:
                _fsspec(url, part)
            return
        except _Broken as error:
            reason = str(error)
    raise StreamerError(
        f"weights {redact(url)}: cannot fetch it ({reason}); without a network, download it elsewhere and put it at "
        f"{target}, or give --weights a local file"
    )


class _Broken(Exception):
    """A try that may succeed when repeated: no connection, a connection that broke, a short file."""


def _state(part: Path) -> Path:
    """Beside a `.part` file: what the server said of the file (size, ETag), so a resumed fetch checks it."""
    return part.with_name(part.name + ".json")


def _http(url: str, part: Path) -> None:
    import urllib.error  # here, not at the top: `streamer.models` imports this module, and light commands it
    import urllib.request

    parts = urlsplit(url)
    headers = {"User-Agent": "streamer"}
    if parts.username is not None:  # credentials in the URL: basic authentication, not part of the address
        user = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(user.encode()).decode()
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    offset = part.stat().st_size if part.exists() else 0
    saved = _read_state(part) if offset else {}
    if offset and saved.get("validator"):
        headers["Range"] = f"bytes={offset}-"
        headers["If-Range"] = saved["validator"]
    elif offset:
        offset = 0  # nothing says the server's file is the same one: start again
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset and saved.get("size") == offset:
            return  # all of it was there already
        if error.code == 416:
            part.unlink(missing_ok=True)  # more than the server has: start again
            raise _Broken("the server has less than was fetched before") from None
        if error.code in (408, 429) or error.code >= 500:
            raise _Broken(f"HTTP {error.code} {error.reason}") from None
        raise StreamerError(f"weights {redact(url)}: HTTP {error.code} {error.reason}; check the URL") from None
    except (urllib.error.URLError, OSError) as error:
        raise _Broken(_why(error)) from None
    with response:
        if response.status == 206:
            match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != offset:
                part.unlink(missing_ok=True)
                raise _Broken("the server answered another range than asked")
            total = int(match.group(2)) if match.group(2) != "*" else None
        else:
            offset = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            validator = response.headers.get("ETag") or response.headers.get("Last-Modified")
            _state(part).write_text(json.dumps({"size": total, "validator": validator}))
        _copy(response, part, offset, total, url)


def _fsspec(url: str, part: Path) -> None:
    from streamer.storage import filesystem

    fs, path = filesystem(url)
    try:
        info = fs.info(path)
    except FileNotFoundError:
        raise StreamerError(f"weights {redact(url)}: no such file; check the URL") from None
    except PermissionError:
        raise StreamerError(f"weights {redact(url)}: access denied; check the credentials") from None
    except Exception as error:  # the file system's own errors: no connection, a timeout, an endpoint down
        raise _Broken(_why(error)) from None
    if info.get("type") == "directory":
        raise StreamerError(f"weights {redact(url)}: a folder; give the URL of one weights file")
    total = int(info["size"]) if info.get("size") is not None else None
    version = str(info.get("ETag") or info.get("etag") or info.get("generation") or info.get("mtime") or "")
    offset = part.stat().st_size if part.exists() else 0
    if offset and (_read_state(part).get("validator") != version or (total is not None and offset > total)):
        offset = 0
    _state(part).write_text(json.dumps({"size": total, "validator": version}))
    try:
        with fs.open(path, "rb", block_size=CHUNK) as source:
            if offset:
                source.seek(offset)
            _copy(source, part, offset, total, url)
    except _Broken:
        raise
    except Exception as error:
        raise _Broken(_why(error)) from None


def _copy(source, part: Path, offset: int, total: int | None, url: str) -> None:
    """Append `source`'s bytes to `part` (from `offset`, which it is cut to) with progress; a short file breaks."""
    import urllib.error

    done = offset
    with open(part, "r+b" if offset and part.exists() else "wb") as out, _Progress(url, total, offset) as progress:
        out.truncate(offset)
        out.seek(offset)
        while True:
            try:
                chunk = source.read(CHUNK)
            except (OSError, urllib.error.URLError) as error:
                raise _Broken(_why(error)) from None
            if not chunk:
                break
            out.write(chunk)
            done += len(chunk)
            progress.advance(len(chunk))
        if total is not None and done != total:
            raise _Broken(f"the connection broke after {done} of {total} bytes")


def _read_state(part: Path) -> dict:
    try:
        return json.loads(_state(part).read_text())
    except (OSError, ValueError):
        return {}


def _why(error: BaseException) -> str:
    reason = getattr(error, "reason", None) or error
    return " ".join(str(reason).split())[:200] or type(error).__name__


class _Progress:
    """A rich bar of bytes on a terminal; elsewhere a line when the fetch starts and one when it ends; nothing
    with -q (the root logger at ERROR)."""

    def __init__(self, url: str, total: int | None, done: int) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.name = redact(url)
        self.total, self.done = total, done
        self.bar = None
        self.shown = logging.getLogger().isEnabledFor(logging.WARNING)

    def __enter__(self) -> _Progress:
        size = f" ({self.total / 1e6:.1f} MB)" if self.total else ""
        resumed = f", resuming at {self.done / 1e6:.1f} MB" if self.done else ""
        if not self.shown:
            return self
        if self.console.is_terminal:
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

            self.bar = Progress(
                TextColumn("fetching weights"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                console=self.console, transient=True,
            )  # fmt: skip
            self.task = self.bar.add_task("weights", total=self.total, completed=self.done)
            self.bar.start()
        else:
            print(f"fetching weights {self.name}{size}{resumed}", file=sys.stderr, flush=True)
        return self

    def advance(self, count: int) -> None:
        self.done += count
        if self.bar is not None:
            self.bar.update(self.task, advance=count)

    def __exit__(self, *error) -> None:
        if self.bar is not None:
            self.bar.stop()
        elif not self.shown:
            return
        elif error[0] is None:
            print(f"fetched weights {self.name} ({self.done / 1e6:.1f} MB)", file=sys.stderr, flush=True)
        elif isinstance(error[1], _Broken):
            print(f"fetching weights {self.name}: {error[1]}", file=sys.stderr, flush=True)
