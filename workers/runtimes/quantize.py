"""INT8 models for CPUs: post-training static quantization with ONNX Runtime's own tools, calibrated on a video.

`quantize(onnx_bytes, batches)` gives an ONNX model with INT8 weights (per channel) and activations (QDQ
nodes), its ranges measured on `batches` (dicts of input name → array); ONNX Runtime runs it on the CPU's
integer instructions (VNNI where the CPU has them), and OpenVINO converts its QDQ nodes to its own INT8
layers. Only the op types asked for are quantized, by default the weighted layers (Conv, ConvTranspose, MatMul,
Gemm): the rest of a graph (Mask R-CNN's proposals, ROI crops and detection layer: TopK, NonMaxSuppression,
Loop, Resize, box arithmetic) stays float32.
`video_frames(path, count)` reads the frames to calibrate on, spread over a video, bounded.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from streamer.errors import StreamerError

WEIGHTED = ("Conv", "ConvTranspose", "MatMul", "Gemm")  # the layers with weights
# ... and the ops between them in a convolutional network, which then pass INT8 tensors on instead of converting
# back and forth around every convolution (a U-Net: faster, and agreeing as well or better)
CONVOLUTIONAL = (*WEIGHTED, "Add", "Concat", "MaxPool", "Relu", "Resize")
MAX_SECONDS = 600  # a calibration video is read for at most this long (frames are spread over what is read)


def video_frames(path: str | Path, count: int) -> np.ndarray:
    """Up to `count` RGB frames uint8[N,H,W,3] spread evenly over the video at `path` (its first MAX_SECONDS)."""
    import av

    try:
        with av.open(str(path), timeout=30) as container:
            stream = container.streams.video[0]
            total = stream.frames or int(float(stream.duration * stream.time_base if stream.duration else 0) * 30)
            step = max(1, total // count) if total else 1
            frames = []
            for index, frame in enumerate(container.decode(stream)):
                if frame.time is not None and frame.time > MAX_SECONDS:
                    break
                if index % step == 0:
                    frames.append(frame.to_ndarray(format="rgb24"))
                if len(frames) >= count:
                    break
    except (av.FFmpegError, IndexError, OSError) as error:
        raise StreamerError(f"--calibrate {path}: cannot read video frames from it ({error})") from None
    if len(frames) < 2:
        raise StreamerError(f"--calibrate {path}: {len(frames)} frame(s); give a video of a few seconds at least")
    return np.stack(frames)


def quantize(onnx_bytes: bytes, batches: Iterable[dict[str, np.ndarray]], ops: tuple[str, ...] = WEIGHTED) -> bytes:
    """The ONNX model in `onnx_bytes` with INT8 weights and activations calibrated on `batches`; `ops`: the op
    types quantized (the others stay float32)."""
    try:
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        raise StreamerError("--int8: needs onnxruntime; install it with pip install 'streamer[onnx]'") from None

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(batches)

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as folder:
        raw, source, target = (Path(folder) / name for name in ("raw.onnx", "f32.onnx", "int8.onnx"))
        raw.write_bytes(onnx_bytes)
        try:
            _prepare(quant_pre_process, raw, source)
            quantize_static(
                str(source),
                str(target),
                Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=list(ops),
                extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
            )
        except Exception as error:  # the quantizer's own failures
            reason = " ".join(str(error).split())[:300] or type(error).__name__
            raise StreamerError(f"--int8: ONNX Runtime's quantizer failed ({reason})") from None
        return target.read_bytes()


def _prepare(quant_pre_process, raw: Path, source: Path) -> None:
    """Shapes inferred and the graph folded, as the quantizer expects; ONNX's own shape inference where ONNX
    Runtime's symbolic one cannot follow the graph (Mask R-CNN's loops over sequences)."""
    try:
        quant_pre_process(str(raw), str(source))
    except Exception:  # the symbolic inference's assertions on types it does not handle
        quant_pre_process(str(raw), str(source), skip_symbolic_shape=True)
