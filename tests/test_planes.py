"""Effects drawn on decoded YUV 4:2:0 pictures look as the RGB effects do, in the picture's own colour matrix and
range, never touch the decoded picture, and models with a fixed input are handed decoded frames at that size."""

from __future__ import annotations

from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from streamer.effects import EFFECTS, EffectConfig, planes
from streamer.frames import Frame, rgb_of
from streamer.prediction import Prediction
from streamer.render import RenderStage


def picture(height: int, width: int, pix_fmt: str = "yuv420p", colorspace: str | None = None) -> av.VideoFrame:
    """A decoded-like picture: smooth colour gradients, converted by swscale into `pix_fmt` (and matrix)."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([40 + 150 * x // width, 200 - 120 * y // height, 90 + 0 * x], axis=-1).astype(np.uint8)
    frame = av.VideoFrame.from_ndarray(image, format="rgb24")
    return frame.reformat(format=pix_fmt, dst_colorspace=colorspace)


def disc(height: int, width: int) -> Prediction:
    semantic = np.zeros((height, width), np.uint8)
    cv2.circle(semantic, (width // 2, height // 2), min(height, width) // 3, 1, -1)
    return Prediction(semantic=semantic)


def inside_and_outside(prediction: Prediction) -> tuple[np.ndarray, np.ndarray]:
    """Pixels at least 3 px inside the mask, and at least 3 px outside it (chroma is shared by 2×2 blocks)."""
    where = prediction.semantic
    kernel = np.ones((7, 7), np.uint8)
    return cv2.erode(where, kernel).astype(bool), ~cv2.dilate(where, kernel).astype(bool)


@pytest.mark.parametrize("name", ["overlay", "mask", "splash"])
@pytest.mark.parametrize(
    "pix_fmt, colorspace, size",
    [("yuv420p", None, (72, 128)), ("yuvj420p", None, (72, 128)), ("yuv420p", "ITU709", (73, 127))],
)
def test_effects_on_planes_match_the_rgb_effects(name, pix_fmt, colorspace, size):
    decoded = picture(*size, pix_fmt, colorspace)
    before = [np.array(plane) for plane in decoded.planes]
    prediction = disc(*size)
    options = EffectConfig(color=(0, 255, 0), alpha=0.5)
    drawn = planes.EFFECTS[name](decoded, prediction, options)
    assert drawn is not decoded and (drawn.width, drawn.height, drawn.format.name) == (size[1], size[0], pix_fmt)
    assert (drawn.colorspace, drawn.color_range) == (decoded.colorspace, decoded.color_range)
    assert all(np.array_equal(a, np.array(b)) for a, b in zip(before, decoded.planes))  # the decoded one untouched
    expected = EFFECTS[name](rgb_of(decoded).copy(), prediction, options).astype(int)
    got = rgb_of(drawn).astype(int)
    inside, outside = inside_and_outside(prediction)
    assert np.abs(got - expected)[inside].max() <= 4
    if name == "splash" and colorspace == "ITU709":  # grey by the picture's own luma (BT.709), not BT.601's
        assert np.ptp(got[outside], axis=-1).max() <= 2
    else:
        assert np.abs(got - expected)[outside].max() <= 4
    if name == "overlay":  # outside the mask, the picture as it was
        assert np.abs(got - rgb_of(decoded).astype(int))[outside].max() <= 1


def test_overlay_with_nothing_found_is_the_picture_itself():
    decoded = picture(32, 48)
    empty = Prediction(semantic=np.zeros((32, 48), np.uint8))
    assert planes.overlay(decoded, empty, EffectConfig()) is decoded


def test_only_8_bit_planar_420_pictures_are_drawn_on():
    assert planes.drawable(picture(16, 16)) and planes.drawable(picture(16, 16, "yuvj420p"))
    assert not planes.drawable(picture(16, 16, "yuv444p")) and not planes.drawable(picture(16, 16, "nv12"))
    assert not planes.drawable(None)


class FixedInput:
    """A semantic model that resizes frames to 16×32 itself; it records what it is handed."""

    name = "fixed-input"

    def __init__(self):
        self.calls: list[tuple[tuple[int, ...], tuple[int, int] | None]] = []

    def takes_frames_at(self, height, width):
        return (16, 32)

    def predict(self, frames, frame_size=None):
        self.calls.append((frames.shape, frame_size))
        height, width = frame_size or frames.shape[1:3]
        semantic = np.zeros((height, width), np.uint8)
        semantic[:, : width // 2] = frames[:, :, : frames.shape[2] // 2].mean() > 0  # left half, read from pixels
        return [Prediction(semantic=semantic) for _ in frames]


def test_decoded_frames_reach_a_fixed_input_model_at_its_size_and_are_drawn_in_yuv():
    decoded = [picture(72, 128) for _ in range(3)]
    frames = [Frame(i, i, Fraction(1, 30), decoded=p) for i, p in enumerate(decoded)]
    model = FixedInput()
    rendered = RenderStage(model, EffectConfig(color=(255, 0, 0)))(frames)
    assert model.calls == [((3, 16, 32, 3), (72, 128))]
    small = frames[0].resized(16, 32)
    assert np.abs(small.astype(int) - cv2.resize(rgb_of(decoded[0]), (32, 16), interpolation=cv2.INTER_AREA)).max() <= 6
    for frame, out in zip(frames, rendered):
        assert out.index == frame.index and isinstance(out.picture(), av.VideoFrame)  # no RGB image made
        image = out.image
        assert image.shape == (72, 128, 3) and image[:, :60, 0].min() > 120  # tinted red on the left
        assert np.abs(image[:, 68:].astype(int) - rgb_of(frame.decoded)[:, 68:]).max() <= 1


def test_frames_without_a_decoded_picture_reach_the_model_whole():
    images = [np.full((72, 128, 3), 90, np.uint8) for _ in range(2)]
    frames = [Frame(i, i, Fraction(1, 30), image) for i, image in enumerate(images)]
    model = FixedInput()
    rendered = RenderStage(model, EffectConfig())(frames)
    assert model.calls == [((2, 72, 128, 3), None)]
    assert all(out.image.shape == (72, 128, 3) for out in rendered)


def test_a_fixed_input_model_gets_small_frames_through_the_whole_pipeline(tmp_path):
    """Through `process`, no frame is converted to RGB at its own size: the model gets each at its input size."""
    from media import make_video, probe

    from streamer.api import process

    source = make_video(tmp_path / "in.mp4", frames=9, width=96, height=64)
    model = FixedInput()
    process(str(source), str(tmp_path / "out.mp4"), model=model, overwrite=True, batch_size=4)
    assert sorted(shape[0] for shape, _ in model.calls) == [1, 4, 4]
    assert all(shape[1:] == (16, 32, 3) and size == (64, 96) for shape, size in model.calls)
    assert probe(tmp_path / "out.mp4")["frames"] == 9


def test_prepare_converts_only_what_the_model_reads():
    class Whole:
        name = "whole"

        def predict(self, frames):
            return [Prediction(semantic=np.zeros(frames.shape[1:3], np.uint8)) for _ in frames]

    small, whole = (Frame(i, i, Fraction(1, 30), decoded=picture(72, 128)) for i in range(2))
    RenderStage(FixedInput(), EffectConfig()).prepare(small)
    assert isinstance(small.picture(), av.VideoFrame)  # not converted: the model takes it at its own size
    RenderStage(Whole(), EffectConfig()).prepare(whole)
    assert isinstance(whole.picture(), np.ndarray)  # converted ahead, on the caller's thread
