"""`streamer export`: exported models give the same masks as the Keras ones on a real frame."""

import numpy as np
import pytest

from streamer.models import ModelConfig, load_model

pytest.importorskip("tf2onnx")


def road_frame(height=128, width=256):
    from workers.unet.synthetic import road_frames

    return next(road_frames(11, width, height, 25, 1))[0]


def shapes_frame():
    from workers.maskrcnn.shapes import render

    shapes = [("square", (230, 40, 40), (40, 50, 18)), ("circle", (40, 40, 230), (100, 80, 16))]
    return render(120, 160, (120, 140, 110), shapes)[0]


def test_exported_unet_gives_the_keras_masks(tmp_path, run_cli):
    frames = np.stack([road_frame(), road_frame()[:, ::-1].copy()])
    keras_masks = [p.semantic for p in load_model(ModelConfig(name="unet", batch_size=2)).predict(frames)]
    for format, name in (("savedmodel", "road"), ("onnx", "road.onnx"), ("tflite", "road.tflite")):
        out = tmp_path / name
        code, stdout, err = run_cli("export", "unet", "-o", out)  # the format follows the name
        assert code == 0, err
        assert out.exists() and f"exported unet ({format})" in stdout
        exported = load_model(ModelConfig(name="semantic", weights=str(out), batch_size=2))
        for want, got in zip(keras_masks, exported.predict(frames)):
            assert want.any() and (got.semantic == want).mean() >= 0.999, format
    code, _, err = run_cli("export", "unet", "--format", "onnx", "-o", tmp_path / "road.onnx")
    assert code == 2 and "exists" in err  # never overwritten without -y


def exported_detect(model, frame, run):
    """Mold `frame` as MaskRCNN.detect does, run the exported function, unmold: the same dict detect gives."""
    from workers.maskrcnn.boxes import norm_boxes

    molded, windows, _ = model.mold_inputs([frame])
    shape = molded.shape[1:3]
    detections, masks = run(molded.astype(np.float32), norm_boxes(windows, shape).astype(np.float32))
    return model.unmold_detections(detections[0], masks[0], frame.shape, shape, windows[0])


@pytest.mark.parametrize("format", ["savedmodel", "onnx"])
def test_exported_maskrcnn_gives_the_keras_masks(tmp_path, run_cli, format):
    out = tmp_path / f"shapes.{format}"
    code, _, err = run_cli("export", "maskrcnn", "--format", format, "-o", out)
    assert code == 0, err
    predictor = load_model(ModelConfig(name="maskrcnn", batch_size=1))
    frame = shapes_frame()
    want = predictor.model.detect([frame])[0]
    assert len(want["class_ids"]) >= 2
    if format == "savedmodel":
        import json

        import tensorflow as tf

        assert json.loads((out / "maskrcnn_config.json").read_text())["CLASS_NAMES"][1] == "square"
        serve = tf.saved_model.load(str(out)).signatures["serving_default"]

        def run(images, windows):
            result = serve(images=tf.constant(images), windows=tf.constant(windows))
            return result["detections"].numpy(), result["masks"].numpy()
    else:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]

        def run(images, windows):
            result = dict(zip(names, session.run(None, {"images": images, "windows": windows})))
            return result["detections"], result["masks"]

    got = exported_detect(predictor.model, frame, run)
    np.testing.assert_array_equal(got["class_ids"], want["class_ids"])
    assert np.abs(got["rois"] - want["rois"]).max() <= 1
    np.testing.assert_allclose(got["scores"], want["scores"], atol=1e-3)
    assert (got["masks"] == want["masks"]).mean() >= 0.999


def test_export_refuses_what_it_cannot_write(tmp_path, run_cli):
    code, _, err = run_cli("export", "unet", "-o", tmp_path / "u.pt")
    assert code == 2 and "cannot tell the format from .pt" in err and "--format" in err
    code, _, err = run_cli("export", "maskrcnn", "--format", "tflite", "-o", tmp_path / "m.tflite")
    assert code == 2 and "no TFLite form" in err
    code, _, err = run_cli("export", "unet", "--format", "onnx", "-o", tmp_path / "missing" / "u.onnx")
    assert code == 2 and "does not exist" in err
