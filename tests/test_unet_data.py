"""Data for training: KITTI folders (label 7 = road), synthetic scenes, and augmentation that keeps
image and mask aligned."""

from dataclasses import replace

import numpy as np
import pytest
from unet_helpers import write_kitti

from streamer.errors import StreamerError
from workers.unet.augment import augmentation
from workers.unet.data import training_sources
from workers.unet.props import Prop
from workers.unet.sources import SyntheticSource, kitti_source
from workers.unet.synthetic import RoadScene, road_frames


def test_kitti_pairs_sorted_and_label_7_is_road(tmp_path):
    masks = write_kitti(tmp_path, count=3)
    source = kitti_source(tmp_path)
    assert len(source) == 3
    for i, expected in enumerate(masks):
        image, mask, name = source.sample(i)
        assert image.shape == (40, 120, 3) and image.dtype == np.uint8
        assert name == f"{i:06d}_10"
        np.testing.assert_array_equal(mask, expected)


def test_kitti_validation_split_is_the_last_fraction(tmp_path):
    write_kitti(tmp_path, count=10)
    train, val = training_sources(f"kitti:{tmp_path}", None, 0.2, 0, (32, 64))
    assert [p.name for p in train.images] == [f"{i:06d}_10.png" for i in range(8)]
    assert [p.name for p in val.images] == ["000008_10.png", "000009_10.png"]


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda root: None, "not found"),
        (lambda root: (root / "image_2").mkdir(parents=True), "semantic: missing"),
        (lambda root: [(root / d).mkdir(parents=True) for d in ("image_2", "semantic")], "image_2: no .png files"),
        (
            lambda root: (write_kitti(root, 2), (root / "semantic" / "000001_10.png").unlink()),
            "2 images in image_2 but 1",
        ),
    ],
    ids=["no-folder", "no-semantic", "empty", "count-differs"],
)
def test_broken_kitti_folders_name_the_path(tmp_path, damage, message):
    root = tmp_path / "kitti"
    damage(root)
    with pytest.raises(StreamerError, match=message) as caught:
        training_sources(f"kitti:{root}", None, 0.1, 0, (32, 64))
    assert str(root) in str(caught.value)


def test_unknown_data_spec():
    with pytest.raises(StreamerError, match="expected kitti:DIR .* synthetic-roads or road-video"):
        training_sources("roads", None, 0.1, 0, (32, 64))


def _road_picture():
    """Red where the (asymmetric) mask is road, green elsewhere: colour tells the mask after any transform."""
    mask = np.zeros((90, 160), np.uint8)
    mask[40:, :60] = 1
    mask[60:, 60:100] = 1
    image = np.zeros((90, 160, 3), np.uint8)
    image[mask == 1] = (220, 0, 0)
    image[mask == 0] = (0, 200, 0)
    return image, mask


def test_training_augmentation_moves_image_and_mask_together():
    image, mask = _road_picture()
    plain = augmentation(image.shape, (32, 64), train=False)(image=image, mask=mask)["mask"]
    flipped = 0
    for seed in range(30):
        out = augmentation(image.shape, (32, 64), train=True, seed=seed)(image=image, mask=mask)
        assert out["image"].shape == (32, 64, 3) and out["mask"].shape == (32, 64)
        red = out["image"][..., 0].astype(int) > out["image"][..., 1]
        assert (red == (out["mask"] == 1)).mean() > 0.97  # only interpolated edge pixels may disagree
        flipped += (out["mask"][-1, -5:] == 1).all() and not (plain[-1, -5:] == 1).any()
    assert flipped > 3  # some samples really were mirrored


def test_augmentation_is_reproducible_by_seed():
    image, mask = _road_picture()
    a = augmentation(image.shape, (32, 64), train=True, seed=11)(image=image, mask=mask)
    b = augmentation(image.shape, (32, 64), train=True, seed=11)(image=image, mask=mask)
    np.testing.assert_array_equal(a["image"], b["image"])


def test_synthetic_splits_are_disjoint_and_deterministic():
    train, val = training_sources("synthetic-roads", 20, 0.25, 7, (32, 64))
    assert (len(train), len(val)) == (15, 5)
    first_train, first_val = train.sample(0), val.sample(0)
    assert not np.array_equal(first_train[0], first_val[0])
    np.testing.assert_array_equal(train.sample(3)[0], SyntheticSource(15, 7, "train", train.size).sample(3)[0])


def test_road_video_frames_are_the_same_scenes_through_h264_at_camera_aspects():
    train, val = training_sources("road-video", 24, 0.25, 7, (32, 64))
    assert train.video and val.video and (len(train), len(val)) == (18, 6)
    assert train.size[0] == 90  # 2.8 × the input height: shrunk to the input about as a 720p video's frames are
    shapes = set()
    for index in range(len(train)):
        image, mask, name = train.sample(index)
        assert image.shape[:2] == mask.shape and image.shape[0] == train.size[0] and name.endswith("-video")
        shapes.add(image.shape[1])
    assert len(shapes) >= 3  # several aspect ratios
    image, mask, _ = train.sample(5)
    clean, clean_mask, _ = SyntheticSource(18, 7, "train", (image.shape[0], image.shape[1])).sample(5)
    np.testing.assert_array_equal(mask, clean_mask)  # the same scene and time, rendered at the frame's shape
    difference = np.abs(image.astype(int) - clean.astype(int))
    assert 0 < difference.mean() < 12  # encoding artefacts, not another picture
    np.testing.assert_array_equal(image, train.sample(5)[0])  # deterministic


def test_synthetic_scene_has_a_plausible_road_mask():
    image, mask, _ = SyntheticSource(1, 0, "train", (180, 320)).sample(0)
    assert image.shape == (180, 320, 3) and image.dtype == np.uint8
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    assert 0.05 < mask.mean() < 0.9
    assert mask[:20].sum() == 0  # the top of the frame is sky


def test_a_car_on_the_road_is_not_road_but_its_lane_is():
    rng = np.random.default_rng(3)
    scene = RoadScene.random(rng)
    straight = dict(
        curvature=0.0,
        curve_drift=0.0,
        sway=0.0,
        lane_offset=0.0,
        bob=0.0,
        center_shift=0.0,
        focal=0.8,
        horizon=0.45,
        camera_height=1.5,
        road_width=8.0,
        shoulders=(None, None),
    )
    car = Prop(
        "car", d=0.0, phase=0.1, speed=0.0, width=1.8, height=1.5, depth=0.0, color=(200, 0, 0), color2=(30, 30, 30)
    )
    empty = replace(scene, **straight, props=(), prop_period=200.0)
    with_car = replace(empty, props=(car,))
    _, road = empty.render(180, 320)
    _, masked = with_car.render(180, 320)
    # the car stands 20 m ahead in the middle of the road (bottom at row 81 + 0.8·320·1.5/20 ≈ 100, about
    # ±12 px wide); 6 rows up the road surface behind it lies ~28 m away and spans ±37 px around column 160
    row = 94
    assert road[row, 160] == 1 and masked[row, 160] == 0
    assert masked[row, 128:144].all() and masked[row, 177:193].all()  # beside the car: still road
    assert masked.sum() < road.sum()


def test_video_frames_move_forward_smoothly():
    frames = list(road_frames(seed=4, width=160, height=90, fps=10, count=3))
    assert len(frames) == 3
    a, b = (f[0].astype(int) for f in frames[:2])
    assert 0 < np.abs(a - b).mean() < 40  # consecutive frames differ, but are the same scene
    assert not np.array_equal(frames[0][1], np.zeros((90, 160)))


def test_batches_are_scaled_images_and_masks():
    from workers.unet.data import SegmentationBatches

    train, val = training_sources("synthetic-roads", 10, 0.2, 0, (32, 64))
    batches = SegmentationBatches(train, (32, 64), batch_size=4, train=True, seed=0)
    x, y = batches[0]
    assert x.shape == (4, 32, 64, 3) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert y.shape == (4, 32, 64, 1) and set(np.unique(y)) <= {0.0, 1.0}
    assert len(batches) == 2  # 8 samples, last batch partial
    assert batches[1][0].shape[0] == 4
    again = SegmentationBatches(train, (32, 64), batch_size=4, train=True, seed=0)[0][0]
    np.testing.assert_array_equal(x, again)  # same seed and epoch: same batch
    batches.on_epoch_end()
    assert not np.array_equal(batches[0][0], x)  # next epoch: reshuffled and re-augmented
    multi = SegmentationBatches(val, (32, 64), batch_size=2, train=False, seed=0, classes=3)
    assert multi[0][1].shape == (2, 32, 64) and multi[0][1].dtype == np.int32


@pytest.mark.parametrize("width,height", [(1280, 720), (1921, 1081), (640, 360), (203, 97)])
def test_tall_video_frames_are_drawn_at_most_288_lines_high(monkeypatch, width, height):
    """`streamer sample road` at 720p draws each frame 288 lines high and scales it up (over 4× less work);
    image and mask come out at the size asked for, the mask still 0/1 and the road where the picture has it."""
    from workers.unet import synthetic

    drawn = []
    render = synthetic.RoadScene.render
    monkeypatch.setattr(
        synthetic.RoadScene, "render", lambda self, h, w, t=0.0: drawn.append((h, w)) or render(self, h, w, t)
    )
    image, mask = next(road_frames(3, width, height, 30.0, 1))
    assert image.shape == (height, width, 3) and mask.shape == (height, width)
    assert set(np.unique(mask)) <= {0, 1} and 0.05 < mask.mean() < 0.95
    scale = min(1.0, 288 / height)
    assert drawn == [(round(height * scale), round(width * scale))]
