"""One trip through the H.264 encoder for training images, so models learn on what `streamer sample` videos
look like after encoding (blocking, chroma subsampling, ringing at edges)."""

from __future__ import annotations

import numpy as np


def encode_h264(image: np.ndarray, crf: int = 23) -> np.ndarray:
    """The RGB image after libx264 (yuv420p, veryfast, `crf`) and back, as `streamer sample` writes.

    An odd last row or column (yuv420p needs even sizes) is kept as it was."""
    import av

    height, width = image.shape[:2]
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height = width - width % 2, height - height % 2
    codec.pix_fmt = "yuv420p"
    codec.options = {"crf": str(crf), "preset": "veryfast"}
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[: codec.height, : codec.width]), format="rgb24")
    packets = list(codec.encode(frame)) + list(codec.encode(None))
    decoder = av.CodecContext.create("h264", "r")
    decoded = []
    for packet in packets:
        decoded += decoder.decode(packet)
    decoded += decoder.decode(None)
    out = image.copy()
    out[: codec.height, : codec.width] = decoded[-1].to_ndarray(format="rgb24")
    return out
