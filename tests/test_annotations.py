"""`streamer sample … --annotations`: the ground truth of every rendered frame as COCO json."""

import json

import av
import numpy as np
from pycocotools import mask as mask_utils

from workers.maskrcnn.shapes import shapes_video


def decode(path):
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def rle_mask(annotation):
    rle = dict(annotation["segmentation"])
    rle["counts"] = rle["counts"].encode("ascii")
    return mask_utils.decode(rle).astype(bool)


def test_shapes_annotations_follow_each_object_through_the_video(run_cli, tmp_path):
    video, truth = tmp_path / "shapes.mp4", tmp_path / "shapes.json"
    code, _, err = run_cli(
        "sample",
        "shapes",
        "-o",
        video,
        "--seconds",
        "0.4",
        "--size",
        "192x128",
        "--seed",
        "4",
        "--annotations",
        truth,
        "-q",
    )
    assert code == 0, err
    data = json.loads(truth.read_text())
    frames = decode(video)
    assert [image["frame"] for image in data["images"]] == list(range(len(frames))) == list(range(12))
    assert all((image["width"], image["height"]) == (192, 128) and image["file_name"] for image in data["images"])
    assert [(c["id"], c["name"]) for c in data["categories"]] == [(1, "square"), (2, "circle"), (3, "triangle")]

    rendered = list(shapes_video(4, 192, 128, 30.0, 12))
    by_id = {image["id"]: image["frame"] for image in data["images"]}
    colours: dict[int, list] = {}
    classes: dict[int, set] = {}
    for annotation in data["annotations"]:
        frame = by_id[annotation["image_id"]]
        mask = rle_mask(annotation)
        assert mask.sum() == annotation["area"] > 0
        ys, xs = np.nonzero(mask)
        x, y, w, h = annotation["bbox"]
        assert (x, y, x + w - 1, y + h - 1) == (xs.min(), ys.min(), xs.max(), ys.max())
        # the mask is exactly the rendered object's visible pixels
        _, gt, instances = rendered[frame]
        k = list(instances).index(annotation["instance"])
        assert np.array_equal(mask, gt.masks[:, :, k]) and gt.class_ids[k] == annotation["category_id"]
        # and in the video, one object keeps its colour and its class from frame to frame
        inner = mask & np.roll(mask, 2, 0) & np.roll(mask, -2, 0) & np.roll(mask, 2, 1) & np.roll(mask, -2, 1)
        if inner.sum() > 30:
            colours.setdefault(annotation["instance"], []).append(frames[frame][inner].mean(axis=0))
        classes.setdefault(annotation["instance"], set()).add(annotation["category_id"])
    per_frame = [sum(a["image_id"] == image["id"] for a in data["annotations"]) for image in data["images"]]
    assert per_frame == [len(r[2]) for r in rendered]
    assert all(len(c) == 1 for c in classes.values())
    assert len(colours) >= 3
    for values in colours.values():
        assert np.abs(np.array(values) - values[0]).max() < 12


def test_road_annotations_one_road_per_frame(run_cli, tmp_path):
    video, truth = tmp_path / "road.mp4", tmp_path / "road.json"
    code, _, err = run_cli(
        "sample", "road", "-o", video, "--seconds", "0.2", "--size", "160x96", "--annotations", truth, "-q"
    )
    assert code == 0, err
    data = json.loads(truth.read_text())
    assert data["categories"] == [{"id": 1, "name": "road"}]
    assert len(data["images"]) == len(decode(video)) == 6
    assert [a["image_id"] for a in data["annotations"]] == [image["id"] for image in data["images"]]
    for annotation in data["annotations"]:
        mask = rle_mask(annotation)
        assert annotation["instance"] == 1 and annotation["category_id"] == 1
        assert mask[-1, 80] and not mask[0].any()  # road under the camera, sky at the top


def test_annotations_refuse_an_existing_file(run_cli, tmp_path):
    truth = tmp_path / "taken.json"
    truth.write_text("{}")
    code, _, err = run_cli("sample", "shapes", "-o", tmp_path / "s.mp4", "--seconds", "0.1", "--annotations", truth)
    assert code == 2 and "taken.json" in err and "-y" in err
    assert truth.read_text() == "{}"
