"""`streamer inspect maskrcnn|unet INPUT -o DIR`: pictures of each stage, with captions in DIR/index.html."""

import hashlib
import html
import json

import cv2
import numpy as np
import pytest
from PIL import Image

from workers.maskrcnn.shapes import shapes_video


def check_pictures(folder, at_least):
    index = json.loads((folder / "index.json").read_text())
    page = (folder / "index.html").read_text()
    digests = set()
    for entry in index["pictures"]:
        path = folder / entry["file"]
        pixels = np.asarray(Image.open(path).convert("RGB"), np.float32)
        assert pixels.std() > 5, f"{entry['file']} is blank"
        assert entry["file"] in page and entry["caption"] and html.escape(entry["caption"])[:30] in page
        digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
    assert len(digests) == len(index["pictures"]) >= at_least
    return index


@pytest.fixture(scope="module")
def frame_file(tmp_path_factory):
    image, _, _ = next(shapes_video(3, 192, 160, 30.0, 1))
    path = tmp_path_factory.mktemp("inspect") / "shapes.png"
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def test_maskrcnn_pictures_of_every_stage(run_cli, frame_file, tmp_path):
    from workers.maskrcnn.anchors import anchor_count
    from workers.maskrcnn.config import Config
    from workers.maskrcnn.weights import DEMO_WEIGHTS, read_config

    out = tmp_path / "maskrcnn"
    code, _, err = run_cli("inspect", "maskrcnn", frame_file, "-o", out)
    assert code == 0, err
    index = check_pictures(out, at_least=6)
    names = {entry["file"] for entry in index["pictures"]}
    expected = {"anchors.png", "rpn_anchors.png", "proposals.png", "refinement.png", "detections.png"}
    assert expected | {"mask_head.png", "activations.png", "weights_1.png"} <= names
    config = Config.from_dict(read_config(DEMO_WEIGHTS))
    shape = index["anchors"]["image_shape"]
    assert index["anchors"]["total"] == anchor_count(config, shape) == sum(index["anchors"]["per_level"])
    assert f"{index['anchors']['total']} anchors" in (out / "index.html").read_text()


def test_unet_pictures_of_a_video_frame(run_cli, tmp_path):
    video = tmp_path / "road.mp4"
    assert run_cli("sample", "road", "-o", video, "--seconds", "0.2", "--size", "160x96", "-q")[0] == 0
    out = tmp_path / "unet"
    code, _, err = run_cli("inspect", "unet", video, "-o", out, "--frame", "3")
    assert code == 0, err
    index = check_pictures(out, at_least=5)
    names = [entry["file"] for entry in index["pictures"]]
    assert names == ["input.png", "probability.png", "mask.png", "overlay.png", "activations.png"]
    assert index["frame"] == 3 and 0.05 < index["road_fraction"] < 0.9


def test_inspect_mistakes_are_one_line_errors(run_cli, tmp_path):
    code, _, err = run_cli("inspect", "unet", tmp_path / "none.png", "-o", tmp_path / "x")
    assert code == 2 and "none.png" in err
    (tmp_path / "short.mp4").write_bytes(b"not a video")
    code, _, err = run_cli("inspect", "maskrcnn", tmp_path / "short.mp4", "-o", tmp_path / "x", "--frame", "2")
    assert code == 2 and "short.mp4" in err and "Traceback" not in err
