"""`--detections` for semantic and instance models, as JSON lines and as a COCO results file."""

import json

import numpy as np
import pytest
from media import make_video
from pycocotools import mask as rle
from pycocotools.coco import COCO

import streamer

LEFT_HALF = "tests.models:left_half"
TWO = "tests.models:two_instances"
WIDTH, HEIGHT = 64, 48


def detections(tmp_path, run_cli, model, fmt="jsonl", frames=3):
    source = make_video(tmp_path / "in.mp4", frames=frames, width=WIDTH, height=HEIGHT)
    target = tmp_path / f"d.{fmt}"
    code, _, err = run_cli(
        "process",
        source,
        "-o",
        tmp_path / "out.mp4",
        "--model",
        model,
        "--detections",
        target,
        "--detections-format",
        fmt,
        "-q",
    )
    assert code == 0, err
    return target


def ground_truth(frames: int, categories) -> COCO:
    coco = COCO()
    coco.dataset = {
        "images": [{"id": i, "width": WIDTH, "height": HEIGHT} for i in range(frames)],
        "categories": [{"id": i, "name": name} for i, name in categories],
        "annotations": [],
    }
    coco.createIndex()
    return coco


def test_semantic_model_writes_one_mask_per_class_present(tmp_path, run_cli):
    rows = [json.loads(line) for line in detections(tmp_path, run_cli, LEFT_HALF).read_text().splitlines()]
    assert [row["frame"] for row in rows] == [0, 1, 2]
    for row in rows:
        assert row["class_ids"] == [1]
        assert row["pixels"] == [WIDTH * HEIGHT // 2]
        (mask,) = row["masks"]
        decoded = rle.decode({"size": mask["size"], "counts": mask["counts"].encode()})
        assert decoded[:, : WIDTH // 2].all() and not decoded[:, WIDTH // 2 :].any()


def test_coco_results_load_in_pycocotools(tmp_path, run_cli):
    path = detections(tmp_path, run_cli, TWO, "coco", frames=4)
    coco = ground_truth(4, [(1, "square"), (2, "circle")])
    results = coco.loadRes(str(path))
    anns = results.loadAnns(results.getAnnIds())
    assert len(anns) == 8
    assert sorted({ann["image_id"] for ann in anns}) == [0, 1, 2, 3]
    square = next(ann for ann in anns if ann["category_id"] == 1)
    circle = next(ann for ann in anns if ann["category_id"] == 2)
    assert square["bbox"] == [0, 0, WIDTH // 2, HEIGHT // 2]  # [x, y, w, h]
    assert circle["bbox"] == [WIDTH // 2, HEIGHT // 2, WIDTH // 2, HEIGHT // 2]
    assert square["score"] == 0.9
    assert square["area"] == WIDTH * HEIGHT // 4
    decoded = results.annToMask(circle)
    assert decoded[HEIGHT // 2 :, WIDTH // 2 :].all() and decoded.sum() == WIDTH * HEIGHT // 4


def test_coco_results_of_a_semantic_model(tmp_path, run_cli):
    path = detections(tmp_path, run_cli, LEFT_HALF, "coco", frames=2)
    results = ground_truth(2, [(1, "1")]).loadRes(str(path))
    anns = results.loadAnns(results.getAnnIds())
    assert [ann["image_id"] for ann in anns] == [0, 1]
    assert all(np.allclose(ann["bbox"], [0, 0, WIDTH // 2, HEIGHT]) for ann in anns)


def test_unknown_detections_format_is_refused(tmp_path, run_cli, capsys):
    source = make_video(tmp_path / "in.mp4", frames=1, width=WIDTH, height=HEIGHT)
    with pytest.raises(SystemExit) as stopped:  # argparse: usage and "invalid choice", exit 2
        run_cli("process", source, "--detections", tmp_path / "d", "--detections-format", "xml")
    assert stopped.value.code == 2 and "--detections-format" in capsys.readouterr().err
    with pytest.raises(streamer.StreamerError, match="--detections-format xml: choose one of jsonl, coco"):
        streamer.process(source, tmp_path / "o.mp4", model=LEFT_HALF, detections="d.xml", detections_format="xml")
