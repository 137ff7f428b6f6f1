"""Instance effects, class selection and the detections file, with a model of known output."""

import json

import numpy as np
from media import make_video, probe
from pycocotools import mask as rle

MODEL = "tests.models:two_instances"


def test_splash_keeps_colour_only_in_selected_classes(tmp_path, run_cli):
    source = make_video(tmp_path / "in.mp4", frames=4, width=64, height=48)  # right half green, left half grey
    original = probe(source)["images"][0].astype(int)
    circle = (slice(30, 46), slice(40, 62))  # the circle instance lies in the green half
    assert (original[circle][..., 1] - original[circle][..., 0] > 60).all()
    for classes, circle_kept in (("circle", True), ("square", False)):
        output = tmp_path / f"out-{classes}.mkv"
        code, _, err = run_cli(
            "process",
            source,
            "-o",
            output,
            "--model",
            MODEL,
            "--effect",
            "splash",
            "--classes",
            classes,
            "--pix-fmt",
            "yuv444p",
            "--crf",
            "0",
            "-q",
        )
        assert code == 0, err
        drawn = probe(output)["images"][0].astype(int)[circle]
        if circle_kept:
            assert np.abs(drawn - original[circle]).max() <= 3  # colour kept in the selected circle
        else:
            assert (np.abs(drawn[..., 0] - drawn[..., 1]) <= 2).all()  # the circle, not selected, is grey


def test_instances_effect_draws_on_the_instances(tmp_path, run_cli):
    source = make_video(tmp_path / "in.mp4", frames=3, width=96, height=64)
    output = tmp_path / "out.mkv"
    code, _, err = run_cli("process", source, "-o", output, "--model", MODEL, "--effect", "instances", "-q")
    assert code == 0, err
    drawn, original = probe(output)["images"][0].astype(int), probe(source)["images"][0].astype(int)
    assert np.abs(drawn[20:28, 10:40] - original[20:28, 10:40]).mean() > 20


def test_unknown_class_is_refused(tmp_path, run_cli):
    source = make_video(tmp_path / "in.mp4", frames=3)
    code, _, err = run_cli("process", source, "--model", MODEL, "--classes", "balloon")
    assert code == 2 and "balloon" in err and "square, circle" in err


def test_detections_file_has_one_record_per_frame(tmp_path, run_cli):
    source = make_video(tmp_path / "in.mp4", frames=7, width=64, height=48)
    detections = tmp_path / "found.jsonl"
    code, _, err = run_cli(
        "process",
        source,
        "-o",
        tmp_path / "out.mp4",
        "--model",
        MODEL,
        "--batch",
        "3",
        "--detections",
        detections,
        "-q",
    )
    assert code == 0, err
    records = [json.loads(line) for line in detections.read_text().splitlines()]
    assert [record["frame"] for record in records] == list(range(7))
    assert [record["time"] for record in records] == [round(i / 30, 6) for i in range(7)]
    first = records[0]
    assert first["classes"] == ["square", "circle"] and first["scores"] == [0.9, 0.8]
    assert first["boxes"] == [[0, 0, 24, 32], [24, 32, 48, 64]]
    square = rle.decode({"size": first["masks"][0]["size"], "counts": first["masks"][0]["counts"].encode()})
    assert square.shape == (48, 64) and square[:24, :32].all() and square.sum() == 24 * 32


def test_detections_file_in_a_missing_folder_is_refused_before_any_work(tmp_path, run_cli):
    source = make_video(tmp_path / "in.mp4", frames=3)
    output = tmp_path / "out.mp4"
    code, _, err = run_cli(
        "process",
        source,
        "-o",
        output,
        "--model",
        MODEL,
        "--effect",
        "instances",
        "--detections",
        tmp_path / "missing" / "found.jsonl",
        "-q",
    )
    assert code == 2 and "missing" in err and "does not exist" in err
    assert not output.exists() and list(tmp_path.iterdir()) == [source]


def test_instances_blends_each_mask_inside_its_box_and_nothing_else():
    from types import SimpleNamespace

    import cv2

    from streamer.effects.instances import instances, random_colors
    from streamer.prediction import Prediction

    frame = np.full((60, 80, 3), (40, 120, 200), np.uint8)
    masks = np.zeros((60, 80, 2), bool)
    masks[10:30, 10:30, 0] = cv2.circle(np.zeros((20, 20), np.uint8), (10, 10), 8, 1, -1).astype(bool)
    masks[35:55, 50:75, 1] = True
    boxes = np.array([[10, 10, 30, 30], [35, 50, 55, 75]], np.int32)
    prediction = Prediction(masks=masks, boxes=boxes, class_ids=np.array([1, 2]), scores=np.array([0.9, 0.8]))
    out = instances(frame, prediction, SimpleNamespace(alpha=0.5, show_boxes=False, show_labels=False))
    interiors = cv2.erode(masks.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)  # away from the outlines
    for i, color in enumerate(random_colors(2)):
        expected = np.rint(frame[0, 0] * 0.5 + np.array(color) * 0.5)
        assert (out[interiors[:, :, i]] == expected).all()
    near = cv2.dilate(masks.any(axis=-1).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert (out[~near] == frame[~near]).all()  # outside the instances (and their outlines) nothing changes
    assert (frame == (40, 120, 200)).all()  # the input frame is not modified
