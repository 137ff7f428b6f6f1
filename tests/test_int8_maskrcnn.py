"""`streamer export maskrcnn --format onnx --int8 --calibrate VIDEO`: a Mask R-CNN quantized on a video's molded
frames (the convolutions INT8, the detection ops float32), its detections on a held-out shapes clip matched
with float32's and scored against the clip's ground truth in a report written beside it, refused when its mAP
drops by more than the bound; quantizing an ONNX export needs no TensorFlow, and the INT8 file serves."""

import json

import av
import numpy as np
import pytest
from test_light_install import streamer as without_tensorflow

from streamer.models import ModelConfig, load_model

pytest.importorskip("tf2onnx")
pytest.importorskip("onnxruntime")

SMALL = ["--set", "IMAGE_MAX_DIM=128", "--set", "IMAGE_MIN_DIM=128"]  # the demo weights on a 128×128 input


def test_maskrcnn_int8_export_reports_against_the_truth_and_enforces_its_bound(tmp_path, run_cli):
    f32 = tmp_path / "shapes.onnx"
    code, _, err = run_cli("export", "maskrcnn", "--format", "onnx", "-o", f32, *SMALL)
    assert code == 0, err
    clip = tmp_path / "shapes.mp4"
    assert run_cli("sample", "shapes", "-o", clip, "--seconds", "1", "--fps", "12", "--size", "176x112", "-q")[0] == 0
    out = tmp_path / "int8.onnx"
    quantize = ["export", "maskrcnn", "--weights", f32, "--format", "onnx", "--int8"]
    done = without_tensorflow(*quantize, "--calibrate", clip, "-o", out, "--max-drop", "0.05", timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "int8.onnx.int8.json").read_text())
    held = report["held_out"]
    assert held["sample"] == "shapes" and held["size"] == "176x112" and report["calibration_frames"] == 12
    assert report["held_out_frames"] == round(held["seconds"] * held["fps"])
    assert report["score"] == "mAP" and report["bounds"] == {"min_agreement": 0.0, "max_drop": 0.05}
    assert report["f32"]["mAP"] >= 0.3  # the demo weights find the clip's shapes
    assert report["change"] == pytest.approx(report["int8"]["mAP"] - report["f32"]["mAP"]) and report["change"] >= -0.05
    assert 0 <= report["int8"]["coco_mask_AP"] <= 1 and 0 <= report["f32"]["coco_mask_AP50"] <= 1
    matched, counts = report["matched"], (report["f32_detections"], report["int8_detections"])
    assert report["held_out_frames"] <= min(counts) and 0.8 * max(counts) <= matched <= min(counts)
    assert report["agreement"] == pytest.approx(matched / max(counts))
    for prefix in ("", "graph_"):  # predict (frames to predictions) and the ONNX graph alone, each model timed
        f32_ms, int8_ms = report[f"{prefix}f32_ms"], report[f"{prefix}int8_ms"]
        assert f32_ms > 0 and int8_ms > 0 and report[f"{prefix}speedup"] == pytest.approx(f32_ms / int8_ms)
    line = f"int8: {matched} detections matched one to one (same class, box IoU ≥ 0.5) of {counts[0]} f32 and "
    scores = f"mAP {report['f32']['mAP']:.4f} f32, {report['int8']['mAP']:.4f} int8"
    speed = f"({report['speedup']:.2f}x; the graph alone {report['graph_speedup']:.2f}x)"
    assert line in done.stdout and scores in done.stdout and speed in done.stdout

    # the report's scores are `evaluate maskrcnn`'s on the held-out clip, as `sample shapes` renders it
    video, truth = tmp_path / "held.mp4", tmp_path / "held.json"
    sample = ["--seconds", held["seconds"], "--fps", held["fps"], "--seed", held["seed"], "--size", held["size"]]
    assert run_cli("sample", "shapes", "-o", video, "--annotations", truth, *sample, "-q")[0] == 0
    data = ["--data", f"video:{video}:{truth}", "--batch", "4", "--json"]
    code, found, err = run_cli("evaluate", "maskrcnn", "--weights", out, *data)
    assert code == 0, err
    # (within the noise of the clip's H.264 coding, which differs a little from one encoding to the next)
    assert json.loads(found)["mAP"] == pytest.approx(report["int8"]["mAP"], abs=0.03)

    import onnx

    graph = onnx.load(str(out)).graph
    dequantized = {node.output[0] for node in graph.node if node.op_type == "DequantizeLinear"}
    convolutions = [node for node in graph.node if node.op_type == "Conv"]
    assert convolutions and all(node.input[1] in dequantized for node in convolutions)  # INT8 weights
    types = {node.op_type for node in graph.node}  # INT8 activations; the detection ops as they were
    assert {"QuantizeLinear", "NonMaxSuppression", "TopK", "Loop"} <= types
    frames = np.stack([shapes_frame(seed) for seed in (1, 2)])
    plain = load_model(ModelConfig(name="maskrcnn", weights=str(f32), batch_size=2))
    small = load_model(ModelConfig(name="maskrcnn", weights=str(out), batch_size=2))
    for a, b in zip(plain.predict(frames), small.predict(frames)):
        assert len(a.class_ids) >= 1 and sorted(a.class_ids) == sorted(b.class_ids)

    # calibrated on black frames, the INT8 model loses shapes: refused, nothing written, unless forced
    flat = black_video(tmp_path / "black.mp4", 176, 112)
    refused = tmp_path / "flat-int8.onnx"
    code, _, err = run_cli(*quantize, "--calibrate", flat, "-o", refused)
    assert code == 2 and "more than --max-drop 0.01; nothing written (pass --force to write it)" in err
    assert len(err.strip().splitlines()) == 1 and "mAP on the held-out clip drops by" in err
    assert not refused.exists() and not (tmp_path / "flat-int8.onnx.int8.json").exists()
    code, _, err = run_cli(*quantize, "--calibrate", flat, "-o", refused, "--force")
    assert code == 0 and refused.exists(), err
    assert json.loads((tmp_path / "flat-int8.onnx.int8.json").read_text())["change"] < -0.01

    code, _, err = run_cli(*quantize, "--calibrate", clip, "-o", tmp_path / "x.onnx", "--set", "IMAGE_MAX_DIM=64")
    assert code == 2 and "exported graph, which fixes its settings" in err
    code, _, err = run_cli("export", "maskrcnn", "--weights", f32, "--format", "onnx", "-o", tmp_path / "y.onnx")
    assert code == 2 and "already exported" in err


def shapes_frame(seed: int) -> np.ndarray:
    from workers.maskrcnn.shapes import shapes_frames

    return next(shapes_frames(seed, 176, 112, 10, 1))[0]


def black_video(path, width: int, height: int, frames: int = 8):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(np.zeros((height, width, 3), np.uint8), format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path
