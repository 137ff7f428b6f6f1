"""overlay, mask and splash drawn straight on a decoded 8-bit YUV 4:2:0 picture (`av.VideoFrame`), in the
picture's own colour matrix and range, so a frame whose RGB image nobody needs never becomes RGB at full size.

Luma takes the mask pixel by pixel; each chroma sample (one per 2×2 pixels) takes it in proportion to how
much of its block the mask covers, as an RGB drawing subsampled to 4:2:0 would. The decoded picture is never
written to (a decoder may still reference it); the drawing goes into a new picture.
"""

from __future__ import annotations

import functools
from dataclasses import replace

import av
import cv2
import numpy as np

from streamer.effects.config import EffectConfig
from streamer.effects.masks import blend_table, mask_of, palette
from streamer.prediction import Prediction

PLANAR_420 = ("yuv420p", "yuvj420p")  # 8-bit planar 4:2:0: what H.264, HEVC, VP9 and AV1 files decode to


def drawable(picture: av.VideoFrame | None) -> bool:
    """Whether the effects here can draw on this decoded picture."""
    return picture is not None and picture.format.name in PLANAR_420


def overlay(picture: av.VideoFrame, prediction: Prediction, options: EffectConfig) -> av.VideoFrame:
    """The colour blended over the picture where the mask is; every other pixel as it was (a semantic map of
    several classes: each in its own colour, masks.palette)."""
    parts = palette(prediction, options)
    if parts is not None:
        for part, colour in parts:
            picture = overlay(picture, part, replace(options, color=colour))
        return picture
    where = mask_of(prediction)
    if not where.any():
        return picture
    colour = _yuv_of(options.color, *_matrix(picture))
    out, source, target = _new_like(picture)
    cover = _chroma_cover(where, source[1].shape)
    for plane, (src, dst) in enumerate(zip(source, target)):
        tinted = cv2.LUT(src, blend_table((colour[plane],), options.alpha))
        if plane == 0:
            np.copyto(dst, src)
            cv2.copyTo(tinted, where, dst)
        else:
            _mix(src, tinted, cover, dst)
    return out


def mask(picture: av.VideoFrame, prediction: Prediction, options: EffectConfig) -> av.VideoFrame:
    """The mask itself: white where the foreground is, black elsewhere."""
    where = mask_of(prediction)
    matrix = _matrix(picture)
    white, black = _yuv_of((255, 255, 255), *matrix), _yuv_of((0, 0, 0), *matrix)
    out, _, target = _new_like(picture)
    target[0][...] = black[0]
    target[0][where.view(bool)] = white[0]
    target[1][...] = white[1]
    target[2][...] = white[2]
    return out


def splash(picture: av.VideoFrame, prediction: Prediction, options: EffectConfig) -> av.VideoFrame:
    """Colour splash: colour where the mask is, grey elsewhere (luma kept, chroma moved to neutral)."""
    where = mask_of(prediction)
    neutral = _yuv_of((128, 128, 128), *_matrix(picture))
    out, source, target = _new_like(picture)
    np.copyto(target[0], source[0])
    cover = _chroma_cover(where, source[1].shape)
    for plane in (1, 2):
        _mix(neutral[plane], source[plane], cover, target[plane])
    return out


EFFECTS = {"overlay": overlay, "mask": mask, "splash": splash}


def plane_views(picture: av.VideoFrame) -> list[np.ndarray]:
    """Views of the picture's three planes (height × width, over rows that may be padded)."""
    return [
        np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
        for plane in picture.planes
    ]


def _new_like(picture: av.VideoFrame) -> tuple[av.VideoFrame, list[np.ndarray], list[np.ndarray]]:
    """A new picture of the same size, format and colour tags; with views of the old and the new planes."""
    out = av.VideoFrame(picture.width, picture.height, picture.format.name)
    out.colorspace = picture.colorspace
    out.color_range = picture.color_range
    return out, plane_views(picture), plane_views(out)


def _chroma_cover(where: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """How much of each chroma sample's block the 0/1 mask covers, 0..255."""
    return cv2.resize(where * np.uint8(255), (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


def _mix(outside: np.ndarray | int, inside: np.ndarray, cover: np.ndarray, out: np.ndarray) -> None:
    """out = outside + (inside - outside) · cover / 255, rounded (integer arithmetic); `outside` a plane or one
    value for all of it."""
    outside16 = np.asarray(outside, np.int16)
    mixed = outside16 + ((inside.astype(np.int16) - outside16) * cover.astype(np.int16) + 127) // 255
    np.copyto(out, mixed, casting="unsafe")


def _matrix(picture: av.VideoFrame) -> tuple[str, int, int]:
    return picture.format.name, int(picture.colorspace), int(picture.color_range)


@functools.lru_cache(maxsize=64)
def _yuv_of(rgb: tuple[int, int, int], pix_fmt: str, colorspace: int, color_range: int) -> tuple[int, int, int]:
    """An RGB colour's (Y, U, V) in a picture's format, colour matrix and range, as swscale converts it."""
    swatch = av.VideoFrame.from_ndarray(np.full((2, 2, 3), rgb, np.uint8), format="rgb24")
    converted = swatch.reformat(
        format=pix_fmt,
        dst_colorspace=colorspace or None,
        dst_color_range=color_range or None,
    )
    return tuple(int(plane[0, 0]) for plane in plane_views(converted))
