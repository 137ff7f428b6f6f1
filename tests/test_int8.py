"""`streamer export unet --int8 --calibrate VIDEO`: an INT8 model quantized on a video's frames, its masks on
a held-out road clip compared with float32's and scored against its ground truth in a report written beside
it, and refused below the bound; an ONNX export is quantized as it is."""

import json

import numpy as np
import pytest

from streamer.models import ModelConfig, load_model
from workers.unet.synthetic import road_frames

pytest.importorskip("tf2onnx")
pytest.importorskip("onnxruntime")


def test_int8_export_writes_its_report_and_enforces_its_bound(tmp_path, run_cli):
    clip = tmp_path / "road.mp4"
    assert run_cli("sample", "road", "-o", clip, "--seconds", "1", "--size", "200x112", "-q")[0] == 0
    out = tmp_path / "road-int8.onnx"
    common = ["export", "unet", "--format", "onnx", "--int8", "--calibrate", clip]  # the demo weights
    code, stdout, err = run_cli(*common, "-o", out)
    assert code == 0, err
    report = json.loads((tmp_path / "road-int8.onnx.int8.json").read_text())
    assert report["calibration_frames"] >= 10 and report["bounds"] == {"min_agreement": 0.99, "max_drop": 0.01}
    assert 0.99 <= report["agreement"] <= 1 and report["int8_ms"] > 0 and report["graph_speedup"] > 0
    assert f"masks agree with f32 on {report['agreement'] * 100:.3f}%" in stdout
    # each model's road IoU against the truth of the held-out road clip, as `evaluate unet` scores that clip
    held = report["held_out"]
    assert held["sample"] == "road" and held["size"] == "200x112" and report["held_out_frames"] >= 10
    video, truth = tmp_path / "held.mp4", tmp_path / "held.json"
    sample = ["--seconds", held["seconds"], "--fps", held["fps"], "--seed", held["seed"], "--size", held["size"]]
    assert run_cli("sample", "road", "-o", video, "--annotations", truth, *sample, "-q")[0] == 0
    code, found, err = run_cli("evaluate", "unet", "--weights", out, "--data", f"video:{video}:{truth}", "--json")
    assert code == 0, err
    # (within the noise of the clip's H.264 coding, which differs a little from one encoding to the next)
    assert report["int8"]["road_iou"] == pytest.approx(json.loads(found)["mean_iou"], abs=0.01)
    assert report["change"] == pytest.approx(report["int8"]["road_iou"] - report["f32"]["road_iou"])
    assert report["f32"]["road_iou"] >= 0.8 and report["change"] >= -0.01  # the demo model finds the road
    assert f"road_iou {report['f32']['road_iou']:.4f} f32, {report['int8']['road_iou']:.4f} int8" in stdout
    import onnx

    types = {node.op_type for node in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= types  # INT8 weights and activations
    # served: the calibration clip's scene (seed 0) at another, odd size gives float32's masks
    frames = np.stack([image for image, _ in road_frames(0, 150, 90, 2, 3)])
    plain = load_model(ModelConfig(name="unet", batch_size=3, precision="f32"))
    small = load_model(ModelConfig(name="unet", weights=str(out), batch_size=3))
    agree = [(a.semantic == b.semantic).mean() for a, b in zip(plain.predict(frames), small.predict(frames))]
    assert min(agree) >= 0.98

    # an ONNX export is quantized as it is; above the agreement it reaches, refused unless forced
    f32 = tmp_path / "road.onnx"
    assert run_cli("export", "unet", "--format", "onnx", "-o", f32)[0] == 0
    strict = report["agreement"] + (1 - report["agreement"]) / 2
    refused = tmp_path / "strict.onnx"
    again = ["export", "unet", "--weights", f32, "--int8", "--calibrate", clip, "-o", refused, "--min-agreement"]
    code, _, err = run_cli(*again, strict)
    assert code == 2 and "below --min-agreement" in err and "--force" in err
    assert not refused.exists() and not (tmp_path / "strict.onnx.int8.json").exists()
    code, _, err = run_cli(*again, strict, "--force")
    assert code == 0 and refused.exists(), err
    forced = json.loads((tmp_path / "strict.onnx.int8.json").read_text())
    assert forced["agreement"] == pytest.approx(report["agreement"], abs=2e-3)

    code, _, err = run_cli("export", "unet", "--format", "onnx", "--int8", "-o", out, "-y")
    assert code == 2 and "--int8 and --calibrate VIDEO go together" in err
    for bound in (["--max-drop", "0.02"], ["--min-agreement", "0.9"], ["--force"]):
        code, _, err = run_cli("export", "unet", "--format", "onnx", "-o", tmp_path / "plain.onnx", *bound)
        assert code == 2 and "are --int8's bounds" in err and not (tmp_path / "plain.onnx").exists()
    for bound, wrong in (("--max-drop", "-0.1"), ("--min-agreement", "1.5")):
        code, _, err = run_cli(*common, "-o", tmp_path / "bad.onnx", bound, wrong)
        assert code == 2 and f"{bound} {float(wrong)}: give" in err and not (tmp_path / "bad.onnx").exists()
    code, _, err = run_cli(*common, "-o", tmp_path / "x.tflite", "--format", "tflite")
    assert code == 2 and "--int8: for --format onnx or openvino" in err
