"""Frame and result messages: a versioned typed header plus an encoded image payload.

Only plain fields are parsed (integers, a fraction, a shape, JSON for detections) and images
are decoded by codec: nothing a writer to Redis puts in a message can run code here.

With the lossless `raw` codec a frame that is a decoded 8-bit planar YUV picture (4:2:0, 4:2:2 or 4:4:4, whose
RGB pixels nobody has drawn on) travels as its three planes, with its colour matrix and range (4:2:0: half the
bytes of RGB), and the worker converts, scales and draws on it as the embedded pipeline does, so both give the
same output, pixel for pixel.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from fractions import Fraction

import av
import cv2
import numpy as np
import PIL.Image

from streamer.detections import prediction_of, record
from streamer.distributed.connection import CODECS
from streamer.effects.planes import plane_views
from streamer.frames import Frame, Rendered

VERSION = b"1"
PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
MAX_SIDE = 8192
MAX_PAYLOAD = 128 * 1024 * 1024
MAX_DETECTIONS = 64 * 1024 * 1024
MAX_NESTING = 32
NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))
COLORSPACES = range(18)  # FFmpeg's AVColorSpace values
COLOR_RANGES = range(3)  # unspecified, limited (MPEG), full (JPEG)
# 8-bit planar YUV a decoded picture may travel in as its planes (raw codec), by chroma subsampling (rows, columns):
# the worker then converts and scales it exactly as the embedded pipeline does the decoded picture itself
PLANES = {
    "yuv420p": (2, 2),
    "yuvj420p": (2, 2),
    "yuv422p": (1, 2),
    "yuvj422p": (1, 2),
    "yuv444p": (1, 1),
    "yuvj444p": (1, 1),
}


class MessageError(ValueError):
    """A message that is malformed, of an unknown version, or too large."""


@dataclass(frozen=True)
class Message:
    """A job id plus a frame: on its way to a worker (no detections) or rendered on its way back."""

    job: str
    frame: Frame | Rendered


def encode(message: Message, codec: str = "raw", quality: int = 90) -> dict[str, bytes]:
    """Stream entry fields for XADD."""
    frame = message.frame
    picture = frame.picture()
    fields = {
        b"v": VERSION,
        b"job": message.job.encode(),
        b"index": str(frame.index).encode(),
        b"pts": str(frame.pts).encode(),
        b"tb": f"{frame.time_base.numerator}/{frame.time_base.denominator}".encode(),
        b"shape": ",".join(map(str, frame.shape)).encode(),
        b"codec": codec.encode(),
    }
    if codec == "raw" and isinstance(picture, av.VideoFrame) and picture.format.name in PLANES:
        fields[b"pix"] = f"{picture.format.name},{int(picture.colorspace)},{int(picture.color_range)}".encode()
        fields[b"data"] = b"".join(plane.tobytes() for plane in plane_views(picture))
    else:
        fields[b"data"] = _compress(frame.image, codec, quality)
    if isinstance(frame, Rendered) and frame.prediction is not None:
        fields[b"detections"] = json.dumps(record(frame.prediction), separators=(",", ":")).encode()
    return fields


def decode(fields: dict[bytes, bytes], max_payload: int = MAX_PAYLOAD) -> Message:
    """Parse and check a stream entry; raise MessageError on anything unexpected."""
    try:
        if fields.get(b"v") != VERSION:
            raise MessageError(f"unknown message version {fields.get(b'v')!r}")
        data = fields[b"data"]
        if len(data) > max_payload:
            raise MessageError(f"payload of {len(data)} bytes is over the {max_payload} byte limit")
        shape = tuple(int(part) for part in fields[b"shape"].split(b","))
        if len(shape) != 3 or shape[2] != 3 or not all(0 < side <= MAX_SIDE for side in shape[:2]):
            raise MessageError(f"bad frame shape {shape}")
        numerator, denominator = (int(part) for part in fields[b"tb"].split(b"/"))
        codec = fields[b"codec"].decode()
        found = _detections(fields.get(b"detections"))
        index = int(fields[b"index"])
        if index < 0:
            raise MessageError(f"negative frame index {index}")
        if b"pix" in fields:
            if codec != "raw":
                raise MessageError(f"planes travel with the raw codec only, not {codec!r}")
            image, picture = None, _picture(data, fields[b"pix"], shape)
        else:
            image, picture = _decompress(data, codec, shape), None
        frame = Rendered(
            index=index,
            pts=int(fields[b"pts"]),
            time_base=Fraction(numerator, denominator),
            image=image,
            prediction=None if found is None else prediction_of(found, shape[0], shape[1]),
            decoded=picture,
        )
        return Message(job=fields[b"job"].decode(), frame=frame)
    except MessageError:
        raise
    except Exception as error:  # whatever hostile bytes make a parser raise: the message is refused, never fatal
        raise MessageError(f"malformed message: {type(error).__name__}: {str(error)[:200]}") from None


def _detections(raw: bytes | None) -> dict | None:
    """A detection record: a JSON object of bounded size and nesting (deep nesting is refused before parsing)."""
    if raw is None:
        return None
    if len(raw) > MAX_DETECTIONS:
        raise MessageError(f"detections of {len(raw)} bytes are over the {MAX_DETECTIONS} byte limit")
    depth = deepest = 0
    for byte in raw.translate(None, NOT_BRACKETS):  # strings may hold brackets: this bound errs safe
        depth += 1 if byte in b"[{" else -1
        deepest = max(deepest, depth)
    if deepest > MAX_NESTING:
        raise MessageError(f"detections nested {deepest} deep (at most {MAX_NESTING})")
    detections = json.loads(raw)
    if not isinstance(detections, dict):
        raise MessageError("detections must be a JSON object")
    return detections


def job_of(fields: dict[bytes, bytes]) -> tuple[str, int] | None:
    """The (job, index) a message claims to belong to, if those two fields parse."""
    try:
        return fields[b"job"].decode(), int(fields[b"index"])
    except (KeyError, ValueError, UnicodeDecodeError):
        return None


def _picture(data: bytes, pix: bytes, shape: tuple[int, int, int]) -> av.VideoFrame:
    """A YUV 4:2:0 picture from its packed planes, after checking its format, colour tags and payload size."""
    name, colorspace, color_range = pix.decode().split(",")
    colorspace, color_range = int(colorspace), int(color_range)
    if name not in PLANES or colorspace not in COLORSPACES or color_range not in COLOR_RANGES:
        raise MessageError(f"bad picture format {pix[:64]!r}: planes are {', '.join(PLANES)}")
    height, width = shape[:2]
    down_rows, down_columns = PLANES[name]
    chroma = (-(-height // down_rows), -(-width // down_columns))
    sizes = [height * width, chroma[0] * chroma[1], chroma[0] * chroma[1]]
    if len(data) != sum(sizes):
        raise MessageError(f"planes payload of {len(data)} bytes does not fit a {width}x{height} {name} picture")
    picture = av.VideoFrame(width, height, name)
    picture.colorspace, picture.color_range = colorspace, color_range
    start = 0
    for plane, size in zip(plane_views(picture), sizes, strict=True):
        plane[...] = np.frombuffer(data, np.uint8, size, start).reshape(plane.shape)
        start += size
    return picture


def _compress(image: np.ndarray, codec: str, quality: int) -> bytes:
    if codec == "raw":
        return np.ascontiguousarray(image).tobytes()
    if codec not in CODECS:
        raise MessageError(f"unknown frame codec {codec!r}: choose one of {', '.join(CODECS)}")
    params = {
        "png": [cv2.IMWRITE_PNG_COMPRESSION, 1],
        "jpeg": [cv2.IMWRITE_JPEG_QUALITY, quality],
        "webp": [cv2.IMWRITE_WEBP_QUALITY, quality],
    }[codec]
    ok, encoded = cv2.imencode(f".{codec}", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise MessageError(f"could not encode a frame as {codec}")
    return encoded.tobytes()


def _decompress(data: bytes, codec: str, shape: tuple[int, int, int]) -> np.ndarray:
    if codec == "raw":
        if len(data) != shape[0] * shape[1] * shape[2]:
            raise MessageError(f"raw payload of {len(data)} bytes does not fit shape {shape}")
        return np.frombuffer(data, np.uint8).reshape(shape)
    if codec not in CODECS:
        raise MessageError(f"unknown frame codec {codec!r}")
    declared = _declared_size(data, codec)
    if declared != (shape[1], shape[0]):
        raise MessageError(
            f"{codec} payload declares {declared[0]}x{declared[1]}, not the frame's {shape[1]}x{shape[0]}"
        )
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.shape != shape:
        raise MessageError(f"{codec} payload does not decode to shape {shape}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _declared_size(data: bytes, codec: str) -> tuple[int, int]:
    """(width, height) from the image header alone, so a small file declaring a huge image is refused
    before anything is decoded."""
    try:
        with PIL.Image.open(io.BytesIO(data), formats=[PIL_FORMATS[codec]]) as image:
            return image.size
    except (PIL.UnidentifiedImageError, PIL.Image.DecompressionBombError, OSError, ValueError, SyntaxError) as error:
        raise MessageError(f"{codec} payload is not a {codec} image ({type(error).__name__})") from None
