"""Detection records: one JSON line per frame, in frame order, published whole."""

import json
from fractions import Fraction

import numpy as np
from pycocotools import mask as rle

from streamer.detections import DetectionsWriter, record
from streamer.prediction import Prediction

TIME_BASE = Fraction(1, 30)


def names(folder):
    return sorted(path.name for path in folder.iterdir())


def test_one_line_per_frame_in_order(tmp_path):
    target = tmp_path / "out.jsonl"
    writer = DetectionsWriter(target)
    for index in range(5):
        found = Prediction(class_ids=np.array([1]), scores=np.array([0.5 + index / 10], np.float32))
        writer.write(index, index * 2, TIME_BASE, found if index % 2 else None)
        assert not target.exists()
    assert writer.close() == target
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert [line["frame"] for line in lines] == [0, 1, 2, 3, 4]
    assert [line["pts"] for line in lines] == [0, 2, 4, 6, 8]
    assert lines[3] == {"frame": 3, "pts": 6, "time": 0.2, "class_ids": [1], "scores": [0.8]}
    assert "scores" not in lines[2]
    assert names(tmp_path) == ["out.jsonl"]


def test_abort_leaves_nothing(tmp_path):
    writer = DetectionsWriter(tmp_path / "out.jsonl")
    writer.write(0, 0, TIME_BASE, Prediction(class_ids=np.array([1]), scores=np.array([0.9])))
    writer.abort()
    assert names(tmp_path) == []


def test_a_bucket_target_is_uploaded_on_close(s3):
    writer = DetectionsWriter("s3://videos/out/a.jsonl", s3.storage)
    writer.write(0, 0, TIME_BASE, None)
    writer.write(1, 1, TIME_BASE, None)
    assert not s3.exists("videos/out/a.jsonl")
    assert writer.close() == "s3://videos/out/a.jsonl"
    assert [json.loads(line)["frame"] for line in s3.cat_file("videos/out/a.jsonl").splitlines()] == [0, 1]


def test_record_encodes_masks_and_names_classes():
    masks = np.zeros((4, 6, 1), bool)
    masks[1:3, 2:5, 0] = True
    prediction = Prediction(
        masks=masks,
        boxes=np.array([[1, 2, 3, 5]]),
        class_ids=np.array([1]),
        scores=np.array([0.91234], np.float32),
        class_names=("bg", "square"),
    )
    result = record(prediction)
    assert result["classes"] == ["square"] and result["boxes"] == [[1, 2, 3, 5]]
    assert np.float32(result["scores"][0]) == np.float32(0.91234)  # exact: the same after the Redis wire
    decoded = rle.decode({"size": result["masks"][0]["size"], "counts": result["masks"][0]["counts"].encode()})
    assert (decoded.astype(bool) == masks[:, :, 0]).all()
