"""RenderStage: predict → select classes → effect → detection record → Rendered, with a stub model."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from streamer.detections import record
from streamer.effects import EffectConfig
from streamer.errors import StreamerError
from streamer.frames import Frame
from streamer.prediction import Prediction
from streamer.render import RenderStage

H, W = 48, 96
TB = Fraction(1, 90000)
PERSON_BOX = (4, 4, 20, 28)  # y1, x1, y2, x2
CAR_BOX = (28, 60, 44, 90)


class Instances:
    """A 'person' top-left and a 'car' bottom-right in every frame."""

    name = "stub-instances"
    class_names = ("BG", "person", "car")

    def __init__(self):
        self.batches: list[np.ndarray] = []

    def predict(self, frames: np.ndarray) -> list[Prediction]:
        self.batches.append(frames.copy())
        masks = np.zeros((H, W, 2), bool)
        for i, (y1, x1, y2, x2) in enumerate((PERSON_BOX, CAR_BOX)):
            masks[y1 + 2 : y2 - 2, x1 + 2 : x2 - 2, i] = True
        return [
            Prediction(
                masks=masks.copy(),
                class_ids=np.array([1, 2], np.int32),
                scores=np.array([0.9, 0.8], np.float32),
                boxes=np.array([PERSON_BOX, CAR_BOX], np.int32),
            )
            for _ in frames
        ]


class LeftHalf:
    """A semantic model without class names: the left half is foreground."""

    name = "stub-left-half"

    def predict(self, frames: np.ndarray) -> list[Prediction]:
        semantic = np.zeros((H, W), np.uint8)
        semantic[:, : W // 2] = 1
        return [Prediction(semantic=semantic) for _ in frames]


class OneShort(LeftHalf):
    name = "one-short"

    def predict(self, frames):
        return super().predict(frames)[:-1]


def frames(count: int = 3, first: int = 10) -> list[Frame]:
    rng = np.random.default_rng(first)
    result = []
    for i in range(first, first + count):
        image = np.empty((H, W, 3), np.uint8)
        image[:] = (200, 40, 90)  # saturated: greyscale differs from it everywhere
        image += rng.integers(0, 20, (H, W, 3), dtype=np.uint8)
        result.append(Frame(i, 1000 + 3000 * i, TB, image))
    return result


def inside(box, margin: int = 0):
    y1, x1, y2, x2 = box
    return slice(y1 - margin, y2 + margin), slice(x1 - margin, x2 + margin)


def is_grey(pixels: np.ndarray) -> bool:
    return bool((pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all())


def test_one_rendered_per_frame_with_index_pts_and_time_base_kept():
    model = LeftHalf()
    stage = RenderStage(model, EffectConfig(name="overlay", color=(0, 255, 0), alpha=1.0))
    batch = frames(4)
    originals = [frame.image.copy() for frame in batch]
    out = stage(batch)

    assert [(r.index, r.pts, r.time_base) for r in out] == [(f.index, f.pts, f.time_base) for f in batch]
    for frame, original, result in zip(batch, originals, out):
        assert result.image.shape == (H, W, 3) and result.image.dtype == np.uint8
        assert (result.image[:, : W // 2] == (0, 255, 0)).all()  # the foreground is drawn
        assert (result.image[:, W // 2 :] == original[:, W // 2 :]).all()  # the rest is the frame itself
        assert (frame.image == original).all()  # the input is not drawn on
        assert result.prediction is None


def test_the_model_gets_the_frames_as_one_batch():
    model = Instances()
    batch = frames(3)
    RenderStage(model, EffectConfig(name="instances"))(batch)
    assert len(model.batches) == 1
    assert model.batches[0].shape == (3, H, W, 3)
    assert all((model.batches[0][i] == frame.image).all() for i, frame in enumerate(batch))


def test_predictions_travel_with_frames_only_when_asked_for():
    assert all(r.prediction is None for r in RenderStage(Instances(), EffectConfig(name="instances"))(frames(2)))
    found = RenderStage(Instances(), EffectConfig(name="instances"), detections=True)(frames(2))
    for result in found:
        detections = record(result.prediction)
        assert detections["classes"] == ["person", "car"]
        assert detections["class_ids"] == [1, 2]
        assert detections["boxes"] == [list(PERSON_BOX), list(CAR_BOX)]
        assert detections["scores"] == pytest.approx([0.9, 0.8])
        assert len(detections["masks"]) == 2


def test_classes_selection_drops_other_instances_from_the_detections():
    stage = RenderStage(Instances(), EffectConfig(name="instances", classes=("car",)), detections=True)
    for result in stage(frames(2)):
        detections = record(result.prediction)
        assert detections["classes"] == ["car"]
        assert detections["class_ids"] == [2]
        assert detections["boxes"] == [list(CAR_BOX)]
        assert detections["scores"] == pytest.approx([0.8])
        assert len(detections["masks"]) == 1


def test_classes_selection_under_instances_leaves_a_dropped_instance_undrawn():
    batch = frames(2)
    everything = RenderStage(Instances(), EffectConfig(name="instances"))(batch)
    people = RenderStage(Instances(), EffectConfig(name="instances", classes=("person",)))(batch)
    for frame, all_drawn, person_drawn in zip(batch, everything, people):
        car, person = inside(CAR_BOX, margin=2), inside(PERSON_BOX)
        assert (all_drawn.image[car] != frame.image[car]).any()  # without --classes the car is drawn
        assert (person_drawn.image[car] == frame.image[car]).all()  # with --classes person, not a pixel of it
        assert (person_drawn.image[person] != frame.image[person]).any()  # the person still is


def test_classes_selection_under_splash_keeps_colour_only_for_selected_instances():
    batch = frames(2)
    y1, x1, y2, x2 = CAR_BOX
    car_mask = (slice(y1 + 2, y2 - 2), slice(x1 + 2, x2 - 2))
    y1, x1, y2, x2 = PERSON_BOX
    person_mask = (slice(y1 + 2, y2 - 2), slice(x1 + 2, x2 - 2))
    everything = RenderStage(Instances(), EffectConfig(name="splash"))(batch)
    people = RenderStage(Instances(), EffectConfig(name="splash", classes=("person",)))(batch)
    for frame, all_kept, person_kept in zip(batch, everything, people):
        assert (all_kept.image[car_mask] == frame.image[car_mask]).all()
        assert is_grey(person_kept.image[car_mask])  # the dropped car is background, like the rest
        assert (person_kept.image[person_mask] == frame.image[person_mask]).all()
        assert is_grey(person_kept.image[:2, :])  # background


def test_unknown_classes_fail_at_construction():
    model = Instances()
    with pytest.raises(StreamerError, match="dog"):
        RenderStage(model, EffectConfig(name="instances", classes=("person", "dog")))
    assert model.batches == []


def test_wrong_number_of_predictions_is_a_streamer_error():
    stage = RenderStage(OneShort(), EffectConfig())
    with pytest.raises(StreamerError, match="2 predictions for 3 frames"):
        stage(frames(3))


def test_unknown_effect_fails_at_construction():
    with pytest.raises(StreamerError, match="unknown effect"):
        RenderStage(LeftHalf(), EffectConfig(name="sparkle"))
