"""VIA and COCO loaders on files the test writes, their bad-input errors, the shapes dataset."""

import json

import cv2
import numpy as np
import pytest

from streamer.errors import StreamerError
from workers.maskrcnn.via import load_via


def _image(path, h=40, w=60):
    cv2.imwrite(str(path), np.full((h, w, 3), 127, np.uint8))


def _poly(xs, ys):
    return {"shape_attributes": {"name": "polygon", "all_points_x": xs, "all_points_y": ys}, "region_attributes": {}}


def _via_dir(tmp_path, regions_style="v1", entries=None):
    d = tmp_path / "balloon" / "train"
    d.mkdir(parents=True)
    _image(d / "a.jpg")
    _image(d / "b.jpg")
    r1 = [_poly([10, 30, 30, 10], [5, 5, 25, 25]), _poly([40, 55, 50], [10, 10, 30])]
    if regions_style == "v1":
        r1 = {str(i): r for i, r in enumerate(r1)}
        empty = {}
    else:
        empty = []
    data = entries or {
        "a.jpg1234": {"filename": "a.jpg", "size": 1234, "regions": r1, "file_attributes": {}},
        "b.jpg99": {"filename": "b.jpg", "size": 99, "regions": empty, "file_attributes": {}},
    }
    (d / "via_region_data.json").write_text(json.dumps(data))
    return d


@pytest.mark.parametrize("style", ["v1", "v2"])
def test_via_loader(tmp_path, style):
    ds = load_via(_via_dir(tmp_path, style))
    assert ds.class_names == ["BG", "balloon"]
    assert len(ds.image_ids) == 1  # the image without regions is skipped
    image = ds.load_image(0)
    masks, ids = ds.load_mask(0)
    assert image.shape == (40, 60, 3) and masks.shape == (40, 60, 2) and masks.dtype == bool
    np.testing.assert_array_equal(ids, [1, 1])
    assert masks[15, 20, 0] and not masks[15, 20, 1] and masks[15, 50, 1]
    assert ds.map_source_class_id("via.1") == 1


def test_via_bad_inputs(tmp_path):
    d = _via_dir(tmp_path, "v2", {"x": {"filename": "missing.jpg", "regions": [_poly([1, 2, 3], [1, 2, 3])]}})
    with pytest.raises(StreamerError, match=r"entry 'x'.*missing\.jpg does not exist"):
        load_via(d)
    d = _via_dir(tmp_path / "2", "v2", {"a": {"filename": "a.jpg", "regions": [_poly([10, 90, 30], [5, 5, 20])]}})
    with pytest.raises(StreamerError, match=r"entry 'a' region 0: polygon .*outside the 60×40 image"):
        load_via(d)
    d = _via_dir(tmp_path / "3", "v2", {"a": {"filename": "a.jpg", "regions": []}})
    with pytest.raises(StreamerError, match="no image with regions"):
        load_via(d)
    d = tmp_path / "4"
    d.mkdir()
    (d / "via_region_data.json").write_text(json.dumps([{"filename": "a.jpg"}]))
    with pytest.raises(StreamerError, match="wrong shape"):
        load_via(d)
    (d / "via_region_data.json").write_text(json.dumps({"a": {"file": "a.jpg"}}))
    with pytest.raises(StreamerError, match=r"entry 'a' has the wrong shape"):
        load_via(d)
    with pytest.raises(StreamerError, match="not found"):
        load_via(tmp_path / "nowhere")


def _coco(tmp_path, annotations=None, images=None):
    pytest.importorskip("pycocotools")
    from pycocotools import mask as mask_utils

    folder = tmp_path / "images"
    folder.mkdir(parents=True, exist_ok=True)
    _image(folder / "1.png")
    _image(folder / "2.png")
    rle_mask = np.zeros((40, 60), np.uint8, order="F")
    rle_mask[20:30, 40:50] = 1
    rle = mask_utils.encode(np.asfortranarray(rle_mask))
    rle["counts"] = rle["counts"].decode()
    data = {
        "images": images
        or [
            {"id": 1, "file_name": "1.png", "width": 60, "height": 40},
            {"id": 2, "file_name": "2.png", "width": 60, "height": 40},
        ],
        "annotations": annotations
        if annotations is not None
        else [
            {"id": 1, "image_id": 1, "category_id": 7, "iscrowd": 0, "segmentation": [[5, 5, 25, 5, 25, 15, 5, 15]]},
            {"id": 2, "image_id": 1, "category_id": 9, "iscrowd": 0, "segmentation": rle},
            {
                "id": 3,
                "image_id": 2,
                "category_id": 7,
                "iscrowd": 1,
                "segmentation": {"counts": [100, 50, 2250], "size": [40, 60]},
            },
        ],
        "categories": [{"id": 7, "name": "cat"}, {"id": 9, "name": "dog"}],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    return str(path), str(folder)


def test_coco_loader(tmp_path):
    from workers.maskrcnn.coco import load_coco

    ds = load_coco(*_coco(tmp_path))
    assert ds.class_names == ["BG", "cat", "dog"]
    assert len(ds.image_ids) == 2
    masks, ids = ds.load_mask(0)
    assert masks.shape == (40, 60, 2)
    np.testing.assert_array_equal(ids, [ds.map_source_class_id("coco.7"), ds.map_source_class_id("coco.9")])
    assert masks[10, 15, 0] and masks[25, 45, 1] and masks[:, :, 1].sum() == 100
    masks, ids = ds.load_mask(1)
    assert ids.tolist() == [-1]  # crowd → negative class id
    assert masks[:, :, 0].sum() == 50
    train, val = ds.split(0.5, seed=0)
    assert len(train.image_ids) + len(val.image_ids) == 2


def test_coco_bad_inputs(tmp_path):
    from workers.maskrcnn.coco import load_coco

    bad = [{"id": 1, "image_id": 1, "category_id": 7, "segmentation": [[5, 5, 95, 5, 25, 15]]}]
    with pytest.raises(StreamerError, match=r"annotations\[0\].*outside the 60×40 image"):
        load_coco(*_coco(tmp_path / "a", bad))
    missing = [{"id": 1, "file_name": "nope.png", "width": 60, "height": 40}]
    ok = [{"id": 1, "image_id": 1, "category_id": 7, "segmentation": [[5, 5, 25, 5, 25, 15]]}]
    with pytest.raises(StreamerError, match=r"image id 1: file .*nope\.png does not exist"):
        load_coco(*_coco(tmp_path / "b", ok, missing))
    with pytest.raises(StreamerError, match="no annotations"):
        load_coco(*_coco(tmp_path / "c", []))
    empty = [{"id": 1, "image_id": 1, "category_id": 7, "segmentation": []}]
    with pytest.raises(StreamerError, match="empty segmentation"):
        load_coco(*_coco(tmp_path / "d", empty))
    ann, images = _coco(tmp_path / "e")
    (tmp_path / "e" / "instances.json").write_text(json.dumps({"images": {}, "annotations": []}))
    with pytest.raises(StreamerError, match="wrong shape"):
        load_coco(ann, images)


def test_shapes_dataset_and_frames():
    from workers.maskrcnn.shapes import ShapesDataset, shapes_frames

    ds = ShapesDataset()
    ds.load_shapes(5, 128, 128, seed=4)
    ds.prepare()
    assert ds.class_names == ["BG", "square", "circle", "triangle"]
    a, b = ds.load_image(2), ds.load_image(2)
    np.testing.assert_array_equal(a, b)  # generated on the fly, deterministically
    masks, ids = ds.load_mask(2)
    assert masks.shape[:2] == (128, 128) and masks.shape[-1] == len(ids) >= 1
    assert not (masks.sum(axis=-1) > 1).any()  # occlusion: one owner per pixel
    frames = list(shapes_frames(seed=1, width=96, height=64, fps=10, count=3))
    assert len(frames) == 3
    image, truth = frames[0]
    assert image.shape == (64, 96, 3) and image.dtype == np.uint8
    assert truth.masks.shape[:2] == (64, 96) and len(truth.class_ids) == truth.masks.shape[-1] == len(truth.boxes)
    assert not np.array_equal(frames[0][0], frames[2][0])  # the shapes move
