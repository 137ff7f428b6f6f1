"""Reading an MP4 whose index comes last from a pipe: it cannot be played without seeking, so its bytes are
spooled to an unnamed temporary file first (bounded, gone when closed, whatever the exit path).

Cameras and phones write MP4/MOV with the index (`moov`) after the media data (`mdat`); FFmpeg must read the
index before the first frame. A pipe cannot seek back, so such a file is read whole into a temporary file,
then decoded from there. An MP4 with its index first (`-movflags +faststart`), a fragmented MP4, MPEG-TS and
Matroska stream as they are.
"""

from __future__ import annotations

import logging
import os
import shutil
import struct
import tempfile

from streamer.errors import StreamerError

log = logging.getLogger(__name__)

LIMIT_VARIABLE = "STREAMER_SPOOL_LIMIT"  # bytes a spooled input may take (default: DEFAULT_LIMIT)
DEFAULT_LIMIT = 8 << 30
ADVICE = (
    "an MP4 on stdin needs its index first (remux it with ffmpeg -c copy -movflags +faststart), or pipe MPEG-TS "
    "or Matroska"
)


def index_at_end(head: bytes) -> bool | None:
    """Whether the top-level boxes of an MP4/MOV that starts with `head` put the media data before the index:
    True (`mdat` before `moov`), False (index first, fragments, or not an MP4), None (`head` ends before it
    can be told)."""
    offset = 0
    while offset + 8 <= len(head):
        size, kind = struct.unpack(">I4s", head[offset : offset + 8])
        if offset == 0 and kind not in (b"ftyp", b"styp", b"wide", b"free", b"skip", b"moov", b"mdat"):
            return False  # not an ISO media file: MPEG-TS, Matroska, …
        if kind in (b"moov", b"moof"):
            return False
        if kind == b"mdat":
            return True
        if size == 1:  # a 64-bit size follows
            if offset + 16 > len(head):
                return None
            size = struct.unpack(">Q", head[offset + 8 : offset + 16])[0]
        if size < 8:  # 0: to the end of the file; smaller: not a box
            return False
        offset += size
    return None


def spool_limit() -> int:
    text = os.environ.get(LIMIT_VARIABLE)
    try:
        return int(float(text)) if text else DEFAULT_LIMIT
    except ValueError:
        raise StreamerError(f"{LIMIT_VARIABLE}={text}: give a number of bytes such as 4e9") from None


def spool(pipe, name: str, limit: int | None = None):
    """The whole input (what `pipe.read` gives until its end) in an unnamed temporary file,
    positioned at its start. More than `limit` bytes, or not enough free space, is refused with ADVICE."""
    limit = spool_limit() if limit is None else limit
    folder = tempfile.gettempdir()
    room = shutil.disk_usage(folder).free - (256 << 20)  # leave the disk some room
    bound = min(limit, room)
    log.warning(
        "%s: an MP4 with its index at the end; reading it into a temporary file in %s first (up to %.1f GB). "
        "To stream it, pipe it with its index first (ffmpeg -movflags +faststart) or as MPEG-TS/Matroska",
        name,
        folder,
        bound / 1e9,
    )
    file = tempfile.TemporaryFile(dir=folder)  # unnamed (or unlinked at once): nothing is left behind
    try:
        written = 0
        while True:
            chunk = pipe.read(1 << 20)
            if not chunk:
                break
            written += len(chunk)
            if written > bound:
                what = f"{LIMIT_VARIABLE}={limit}" if bound == limit else f"the free space in {folder}"
                raise StreamerError(f"{name}: the input is larger than {what} allows to hold; {ADVICE}")
            file.write(chunk)
        file.seek(0)
        log.info("%s: spooled %d bytes", name, written)
        return file
    except BaseException:
        file.close()
        raise
