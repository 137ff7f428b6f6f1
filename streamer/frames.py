"""The records a frame travels in: decoded (`Frame`), then rendered (`Rendered`, what the muxer takes).

A frame from a decoder keeps the decoded picture (`decoded`, an `av.VideoFrame`, e.g. YUV 4:2:0) and makes
its RGB `image` only when something reads it (a model, an effect, a callback). A frame the effect leaves as
it is, whose rendered image nobody reads afterwards (a callback might draw on it), goes to the encoder as the
decoded picture itself: no YUV → RGB → YUV round trip.
"""

from __future__ import annotations

import threading
from fractions import Fraction

import av
import numpy as np

from streamer.prediction import Prediction

_local = threading.local()  # one reformatter (and its swscale context) per thread that converts


def rgb_of(picture: av.VideoFrame, height: int | None = None, width: int | None = None) -> np.ndarray:
    """The picture as H×W×3 uint8 RGB (a view of the converted frame's plane: no copy beyond the conversion);
    at `height` × `width` when given, scaled in the same swscale pass (area averaging when shrinking)."""
    reformatter = getattr(_local, "reformatter", None)
    if reformatter is None:
        reformatter = _local.reformatter = av.video.reformatter.VideoReformatter()
    scaled = height is not None and (height, width) != (picture.height, picture.width)
    interpolation = "AREA" if scaled and height <= picture.height and width <= picture.width else None
    if scaled and picture.format.name in SITED:
        picture = _sited(picture)
    return reformatter.reformat(picture, width, height, "rgb24", interpolation=interpolation).to_ndarray()


# Formats whose chroma is subsampled: where a scaled conversion reads the picture's chroma siting
SITED = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv411p", "yuv410p", "yuv440p", "nv12", "nv21"})


def _sited(picture: av.VideoFrame) -> av.VideoFrame:
    """The picture (its planes shared, not copied) with its chroma sited left, as H.264, HEVC and MPEG-2 site it.

    Scaling reads a decoder's chroma siting, which a picture made from its planes elsewhere (a worker's, from
    Redis) does not carry; siting every picture the same before it is scaled gives a model the same pixels in
    every path, to the bit."""
    graphs = getattr(_local, "graphs", None)
    if graphs is None:
        graphs = _local.graphs = {}
    key = (picture.format.name, picture.width, picture.height)
    graph = graphs.get(key)
    if graph is None:
        if len(graphs) > 8:
            graphs.clear()
        graph = av.filter.Graph()
        source = graph.add_buffer(
            width=picture.width, height=picture.height, format=picture.format.name, time_base=Fraction(1, 90000)
        )
        siting = graph.add("setparams", "chroma_location=left")
        sink = graph.add("buffersink")
        source.link_to(siting)
        siting.link_to(sink)
        graph.configure()
        graphs[key] = graph
    graph.push(picture)
    return graph.pull()


class Frame:
    """One frame: its index in the job, its timestamp and its pixels, as an RGB `image` (H×W×3 uint8) and,
    for a frame straight from a decoder, the `decoded` picture it is converted from on first read."""

    __slots__ = ("index", "pts", "time_base", "decoded", "_image", "_read")

    def __init__(
        self,
        index: int,
        pts: int,
        time_base: Fraction,
        image: np.ndarray | None = None,
        *,
        decoded: av.VideoFrame | None = None,
    ):
        if image is None and decoded is None:
            raise ValueError("a frame needs its image or its decoded picture")
        self.index = index
        self.pts = pts
        self.time_base = time_base
        self.decoded = decoded
        self._image = image
        self._read = False

    @property
    def image(self) -> np.ndarray:
        """H×W×3 uint8 RGB, converted from the decoded picture the first time it is asked for."""
        if self._image is None:
            self._image = rgb_of(self.decoded)
        self._read = True
        return self._image

    def resized(self, height: int, width: int) -> np.ndarray | None:
        """H×W×3 uint8 RGB at height × width, made straight from the decoded picture in one swscale pass (no
        RGB image at the frame's own size); None for a frame without a decoded picture, or whose image has been
        read (and so may have been drawn on)."""
        return None if self.decoded is None or self._read else rgb_of(self.decoded, height, width)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(height, width, 3) without converting anything."""
        if self._image is not None:
            return self._image.shape
        return (self.decoded.height, self.decoded.width, 3)

    @property
    def seconds(self) -> float:
        return float(self.pts * self.time_base)

    def numbered(self, index: int, pts: int | None = None, time_base: Fraction | None = None) -> Frame:
        """The same pixels under another index (and timestamp, when given): the decoded picture and any converted
        image travel along, nothing is converted."""
        pts, time_base = (self.pts, self.time_base) if pts is None else (pts, time_base or self.time_base)
        return Frame(index, pts, time_base, self._image, decoded=self.decoded)

    def unchanged(self, prediction: Prediction | None = None) -> Rendered:
        """This frame rendered as it is: its pixels pass untouched (the decoded picture goes to the encoder
        while nobody reads the rendered frame's image)."""
        return Rendered(self.index, self.pts, self.time_base, self._image, prediction, decoded=self.decoded)

    def picture(self) -> np.ndarray | av.VideoFrame:
        """What to encode: the decoded picture while nobody has read this frame's image (so nobody can have
        drawn on it), else the RGB image."""
        if self.decoded is not None and not self._read:
            return self.decoded
        return self.image

    def __repr__(self) -> str:
        height, width, _ = self.shape
        return (
            f"{type(self).__name__}(index={self.index}, pts={self.pts}, time_base={self.time_base}, {width}x{height})"
        )


class Rendered(Frame):
    """A frame after the model and the effect, with what the model found in it (`prediction`) when something
    downstream reads it (tracking, the detections file, the API's callback)."""

    __slots__ = ("prediction",)

    def __init__(
        self,
        index: int,
        pts: int,
        time_base: Fraction,
        image: np.ndarray | None = None,
        prediction: Prediction | None = None,
        *,
        decoded: av.VideoFrame | None = None,
    ):
        super().__init__(index, pts, time_base, image, decoded=decoded)
        self.prediction = prediction
