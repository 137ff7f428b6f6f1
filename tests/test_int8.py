"""`streamer export unet --int8 --calibrate VIDEO`: an INT8 model quantized on a video's frames, its masks on
held-out frames compared with float32's in a report written beside it, and refused below the bound."""

import json

import numpy as np
import pytest
from unet_helpers import save_channel_model

from streamer.models import ModelConfig, load_model

pytest.importorskip("tf2onnx")
pytest.importorskip("onnxruntime")


def test_int8_export_writes_its_report_and_enforces_its_bound(tmp_path, run_cli):
    weights = save_channel_model(tmp_path / "rgb.keras", size=(48, 80))
    clip = tmp_path / "road.mp4"
    assert run_cli("sample", "road", "-o", clip, "--seconds", "1", "--size", "200x112", "-q")[0] == 0
    out = tmp_path / "rgb-int8.onnx"
    common = ["export", "unet", "--weights", weights, "--format", "onnx", "--int8", "--calibrate", clip]
    code, stdout, err = run_cli(*common, "-o", out)
    assert code == 0, err
    report = json.loads((tmp_path / "rgb-int8.onnx.int8.json").read_text())
    assert report["held_out_frames"] >= 10 and report["calibration_frames"] >= 10 and report["bound"] == 0.99
    assert 0.99 <= report["agreement"] <= 1 and 0.9 <= report["road_iou"] <= 1 and report["int8_ms"] > 0
    assert f"masks agree with f32 on {report['agreement'] * 100:.3f}%" in stdout
    import onnx

    types = {node.op_type for node in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= types  # INT8 weights and activations
    frames = np.stack([np.full((60, 90, 3), value, np.uint8) for value in (0, 90, 200)])
    frames[:, :, :30, 0] = 220
    plain = load_model(ModelConfig(name="semantic", weights=str(weights), batch_size=3, precision="f32"))
    small = load_model(ModelConfig(name="semantic", weights=str(out), batch_size=3))
    agree = [(a.semantic == b.semantic).mean() for a, b in zip(plain.predict(frames), small.predict(frames))]
    assert min(agree) >= 0.98

    strict = report["agreement"] + (1 - report["agreement"]) / 2  # above what it reaches
    refused = tmp_path / "strict.onnx"
    code, _, err = run_cli(*common, "-o", refused, "--min-agreement", str(strict))
    assert code == 2 and "below --min-agreement" in err and "--force" in err
    assert not refused.exists() and not (tmp_path / "strict.onnx.int8.json").exists()
    code, _, err = run_cli(*common, "-o", refused, "--min-agreement", str(strict), "--force")
    assert code == 0 and refused.exists(), err

    code, _, err = run_cli("export", "unet", "--weights", weights, "--format", "onnx", "--int8", "-o", out, "-y")
    assert code == 2 and "--int8 and --calibrate VIDEO go together" in err
    code, _, err = run_cli(*common, "-o", tmp_path / "x.tflite", "--format", "tflite")
    assert code == 2 and "--int8: for --format onnx or openvino" in err
