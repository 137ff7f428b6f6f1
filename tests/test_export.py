"""`streamer export`: exported models give the same masks as the Keras ones on a real frame, and an exported
ONNX or OpenVINO model runs in `process` and `worker` with TensorFlow absent (not importable, as in an image
without it)."""

import json
import signal
import subprocess
import sys

import numpy as np
import pytest
from media import probe
from redis_fixtures import ROOT, environment
from test_light_install import WITHOUT_MODELS
from test_light_install import streamer as without_tensorflow
from test_redis import KEYS, wait_for

from streamer.models import ModelConfig, load_model

pytest.importorskip("tf2onnx")


def road_frame(height=128, width=256):
    from workers.unet.synthetic import road_frames

    return next(road_frames(11, width, height, 25, 1))[0]


def shapes_frame():
    from workers.maskrcnn.shapes import render

    shapes = [("square", (230, 40, 40), (40, 50, 18)), ("circle", (40, 40, 230), (100, 80, 16))]
    return render(120, 160, (120, 140, 110), shapes)[0]


def worker_runs_a_job(tmp_path, redis_server, run_cli, clip, output, *model):
    """`streamer worker *model` with TensorFlow not importable runs a job submitted with the same model options
    to its end; the worker then stops cleanly (its check that no TensorFlow module got imported passed)."""
    command = [sys.executable, "-c", WITHOUT_MODELS, "worker", *map(str, model), "--redis", redis_server.url]
    command += ["--jobs", "1", "--allow-input", str(tmp_path), "--allow-output", str(tmp_path)]
    worker = subprocess.Popen(command, env=environment(), cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        code, out, err = run_cli("submit", clip, "-o", output, *model, "--redis", redis_server.url)
        assert code == 0, err
        job, client = out.strip(), redis_server.client()
        ended = lambda: client.hget(KEYS.job(job), "state") in (b"done", b"failed") or worker.poll() is not None
        wait_for(ended, timeout=90, what="the job's end")
        assert client.hget(KEYS.job(job), "state") == b"done", client.hget(KEYS.job(job), "reason")
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err[-2000:]


def test_exported_unet_gives_the_keras_masks_and_serves_without_tensorflow(tmp_path, run_cli, redis_server):
    """Every format gives the Keras model's masks (≥ 99.9 % of the pixels of real frames); process (OpenVINO's
    .xml) and worker (ONNX) run the exported files with TensorFlow not importable."""
    frames = np.stack([road_frame(), road_frame()[:, ::-1].copy()])
    keras_masks = [p.semantic for p in load_model(ModelConfig(name="unet", batch_size=2)).predict(frames)]
    for format, name in (
        ("savedmodel", "road"),
        ("onnx", "road.onnx"),
        ("openvino", "road.xml"),
        ("tflite", "road.tflite"),
    ):
        out = tmp_path / name
        code, stdout, err = run_cli("export", "unet", "-o", out)  # the format follows the name
        assert code == 0, err
        assert out.exists() and f"exported unet ({format})" in stdout
        exported = load_model(ModelConfig(name="semantic", weights=str(out), batch_size=2))
        for want, got in zip(keras_masks, exported.predict(frames)):
            assert want.any() and (got.semantic == want).mean() >= 0.999, format
    code, _, err = run_cli("export", "unet", "--format", "onnx", "-o", tmp_path / "road.onnx")
    assert code == 2 and "exists" in err  # never overwritten without -y
    assert (tmp_path / "road.bin").stat().st_size > 100_000  # OpenVINO's weights, beside its .xml
    clip = tmp_path / "road.mp4"
    code, _, err = run_cli("sample", "road", "-o", clip, "--seconds", "0.4", "--size", "200x120", "-q")
    assert code == 0, err
    done = without_tensorflow("process", clip, "-o", tmp_path / "xml.mp4", "--weights", tmp_path / "road.xml", "-q")
    assert done.returncode == 0, done.stderr
    assert probe(tmp_path / "xml.mp4")["frames"] == probe(clip)["frames"]
    # an in-process job on the ONNX file starts with only what it runs: no TensorFlow, no Redis client, no onnx
    # package (the file's metadata says what its graph gives), no cloud storage, no progress bar when quiet
    light = ("tensorflow", "keras", "h5py", "redis", "onnx", "fsspec", "rich")
    out = tmp_path / "onnx.mp4"
    done = without_tensorflow("process", clip, "-o", out, "--weights", tmp_path / "road.onnx", "-q", hide=light)
    assert done.returncode == 0, done.stderr
    assert probe(out)["frames"] == probe(clip)["frames"]
    worker_runs_a_job(
        tmp_path, redis_server, run_cli, clip, tmp_path / "worker.mp4", "--weights", tmp_path / "road.onnx"
    )
    assert probe(tmp_path / "worker.mp4")["frames"] == probe(clip)["frames"]


def decoded(path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def exported_detect(model, frame, run):
    """Mold `frame` as MaskRCNN.detect does, run the exported function, unmold: the same dict detect gives."""
    from workers.maskrcnn.boxes import norm_boxes

    molded, windows, _ = model.mold_inputs([frame])
    shape = molded.shape[1:3]
    detections, masks = run(molded.astype(np.float32), norm_boxes(windows, shape).astype(np.float32))
    return model.unmold_detections(detections[0], masks[0], frame.shape, shape, windows[0])


def test_exported_maskrcnn_gives_the_keras_detections_and_serves_without_tensorflow(tmp_path, run_cli, redis_server):
    """A SavedModel gives the Keras model's detections. An ONNX Mask R-CNN runs in process and worker with
    TensorFlow not importable and finds what the TensorFlow model finds on a real clip, one to one: the same
    classes, boxes within a pixel, scores within 0.001, masks equal on ≥ 99.9 % of their pixels; it refuses a
    threshold below the one it was exported with."""
    from pycocotools import mask as rle

    predictor = load_model(ModelConfig(name="maskrcnn", batch_size=1))
    frame = shapes_frame()
    want = predictor.model.detect([frame])[0]
    assert len(want["class_ids"]) >= 2
    out = tmp_path / "shapes.savedmodel"
    code, _, err = run_cli("export", "maskrcnn", "--format", "savedmodel", "-o", out)
    assert code == 0, err
    import tensorflow as tf

    assert json.loads((out / "maskrcnn_config.json").read_text())["CLASS_NAMES"][1] == "square"
    serve = tf.saved_model.load(str(out)).signatures["serving_default"]

    def run(images, windows):
        result = serve(images=tf.constant(images), windows=tf.constant(windows))
        return result["detections"].numpy(), result["masks"].numpy()

    got = exported_detect(predictor.model, frame, run)
    np.testing.assert_array_equal(got["class_ids"], want["class_ids"])
    assert np.abs(got["rois"] - want["rois"]).max() <= 1
    np.testing.assert_allclose(got["scores"], want["scores"], atol=1e-3)
    assert (got["masks"] == want["masks"]).mean() >= 0.999

    exported = tmp_path / "shapes.onnx"
    code, _, err = run_cli("export", "maskrcnn", "--format", "onnx", "-o", exported)
    assert code == 0, err
    clip = tmp_path / "shapes.mp4"
    assert run_cli("sample", "shapes", "-o", clip, "--seconds", "0.2", "--size", "240x160", "-q")[0] == 0
    frames = decoded(clip)
    options = ["--model", "maskrcnn", "--batch", "2", "--weights", exported]
    found_file = tmp_path / "found.jsonl"
    done = without_tensorflow("process", clip, "-o", tmp_path / "onnx.mp4", *options, "--detections", found_file)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in found_file.read_text().splitlines()]
    assert len(lines) == len(frames) == probe(clip)["frames"]
    found = 0
    for frame, got in zip(frames, lines):
        want = predictor.model.detect([frame])[0]
        assert got["class_ids"] == want["class_ids"].tolist()
        assert np.abs(np.array(got["boxes"]).reshape(-1, 4) - want["rois"]).max(initial=0) <= 1
        np.testing.assert_allclose(got["scores"], want["scores"], atol=1e-3)
        for index, mask in enumerate(got["masks"]):
            mask = rle.decode({"size": mask["size"], "counts": mask["counts"].encode()})
            assert (mask == want["masks"][..., index]).mean() >= 0.999
        found += len(want["class_ids"])
    assert found >= len(lines)  # the clip's shapes were found
    code, _, err = run_cli("process", clip, "-o", tmp_path / "low.mp4", *options, "--threshold", "0.1")
    assert code == 2 and "export it again with --set DETECTION_MIN_CONFIDENCE=0.1" in err
    worker_runs_a_job(tmp_path, redis_server, run_cli, clip, tmp_path / "worker.mp4", *options)
    assert probe(tmp_path / "worker.mp4")["frames"] == len(frames)


def test_export_refuses_what_it_cannot_write(tmp_path, run_cli):
    code, _, err = run_cli("export", "unet", "-o", tmp_path / "u.pt")
    assert code == 2 and "cannot tell the format from .pt" in err and "--format" in err
    code, _, err = run_cli("export", "maskrcnn", "--format", "tflite", "-o", tmp_path / "m.tflite")
    assert code == 2 and "no TFLite form" in err
    code, _, err = run_cli("export", "unet", "--format", "onnx", "-o", tmp_path / "missing" / "u.onnx")
    assert code == 2 and "does not exist" in err
