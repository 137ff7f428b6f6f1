"""Semantic models in every common format (.keras, Keras 2 .h5, SavedModel, ONNX, TFLite) and on every runtime
(TensorFlow, ONNX Runtime, OpenVINO): the same masks as TensorFlow on a real frame."""

import numpy as np
import pytest

from streamer.errors import StreamerError
from streamer.models import ModelConfig, load_model

pytest.importorskip("tf2onnx")


def tiny_model(classes: int = 3, size=(32, 48), channels: int = 3):
    """A small conv net with a fixed random init: image → per-pixel class scores."""
    import keras

    keras.utils.set_random_seed(1)
    image = keras.Input(size + (channels,))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(image)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    activation = "sigmoid" if classes == 1 else "softmax"
    return keras.Model(image, keras.layers.Conv2D(classes, 1, activation=activation)(x))


def write_formats(model, folder) -> dict:
    """The model saved as each format a user may bring: {format: path}."""
    import tensorflow as tf
    import tf2onnx

    paths = {
        "keras": folder / "model.keras",
        "h5": folder / "model.h5",
        "savedmodel": folder / "saved",
        "onnx": folder / "model.onnx",
        "tflite": folder / "model.tflite",
    }
    model.save(paths["keras"])
    model.save(paths["h5"])  # the legacy Keras 2 HDF5 full model
    model.export(str(paths["savedmodel"]), verbose=False)
    spec = [tf.TensorSpec((None,) + tuple(model.inputs[0].shape[1:]), tf.float32, name="image")]
    function = tf.function(lambda x: model(x, training=False), input_signature=spec)
    tf2onnx.convert.from_function(function, input_signature=spec, opset=17, output_path=str(paths["onnx"]))
    paths["tflite"].write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return paths


def real_frame(height=72, width=96) -> np.ndarray:
    """A frame with texture, edges and flat areas (a drawn scene, not noise)."""
    from workers.unet.synthetic import road_frames

    return next(road_frames(5, width, height, 25, 1))[0]


@pytest.fixture(scope="module")
def formats(tmp_path_factory):
    folder = tmp_path_factory.mktemp("formats")
    return write_formats(tiny_model(), folder)


@pytest.fixture(scope="module")
def expected(formats):
    """The masks of the Keras model on TensorFlow."""
    masks = segment(formats["keras"])[1]
    assert len(np.unique(masks)) == 3  # the scene gives every class somewhere
    return masks


def segment(weights, runtime="tf", model="semantic", batch=2):
    """Masks at float32 (what every runtime computes alike; --precision auto may measure bf16 faster)."""
    config = ModelConfig(name=model, weights=str(weights), runtime=runtime, batch_size=batch, precision="f32")
    predictor = load_model(config)
    frames = np.stack([real_frame(), real_frame()[::-1].copy()])
    return predictor, np.stack([p.semantic for p in predictor.predict(frames)])


@pytest.mark.parametrize(
    "kind,runtime",
    [
        ("h5", "tf"),
        ("savedmodel", "tf"),
        ("onnx", "onnx"),
        ("tflite", "tf"),
        ("keras", "openvino"),
        ("onnx", "openvino"),
    ],
)
def test_every_format_and_runtime_gives_tensorflows_masks(formats, expected, kind, runtime):
    if runtime == "openvino":
        pytest.importorskip("openvino")
    predictor, got = segment(formats[kind], runtime)
    assert (predictor.input_size, predictor.channels, predictor.classes) == ((32, 48), 3, 3)
    assert (got == expected).mean() >= 0.999


def test_the_demo_unet_on_onnx_and_openvino_matches_tensorflow():
    pytest.importorskip("openvino")
    frames = np.stack([real_frame(128, 256)] * 2)
    masks = {}
    for runtime in ("tf", "onnx", "openvino"):
        predictor = load_model(ModelConfig(name="unet", runtime=runtime, batch_size=2, precision="f32"))
        masks[runtime] = np.stack([p.semantic for p in predictor.predict(frames)])
    assert masks["tf"].any() and not masks["tf"].all()
    for runtime in ("onnx", "openvino"):
        assert (masks[runtime] == masks["tf"]).mean() >= 0.999


def test_sizes_come_from_the_file(tmp_path):
    import tf2onnx  # noqa: F401

    binary = write_formats(tiny_model(classes=1, size=(24, 40), channels=1), tmp_path)
    predictor, masks = segment(binary["onnx"], "onnx", model="unet")
    assert (predictor.input_size, predictor.channels, predictor.classes) == ((24, 40), 1, 1)
    assert masks.shape == (2, 72, 96) and set(np.unique(masks)) <= {0, 1}


def test_files_that_are_not_segmentation_models_are_refused(tmp_path):
    import keras

    image = keras.Input((32, 32, 3))
    classifier = keras.Model(image, keras.layers.Dense(5)(keras.layers.GlobalAveragePooling2D()(image)))
    classifier.save(tmp_path / "classifier.h5")
    with pytest.raises(StreamerError, match=r"not a segmentation model: input \[None, 32, 32, 3\] but output"):
        load_model(ModelConfig(name="semantic", weights=str(tmp_path / "classifier.h5")))
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(StreamerError, match="not a model format"):
        load_model(ModelConfig(name="semantic", weights=str(tmp_path / "notes.txt")))
    (tmp_path / "folder").mkdir()
    with pytest.raises(StreamerError, match="without saved_model.pb"):
        load_model(ModelConfig(name="semantic", weights=str(tmp_path / "folder")))
    (tmp_path / "broken.onnx").write_bytes(b"not onnx")
    with pytest.raises(StreamerError, match="ONNX Runtime cannot load it"):
        load_model(ModelConfig(name="semantic", weights=str(tmp_path / "broken.onnx"), runtime="onnx"))
    with pytest.raises(StreamerError, match="a .weights.h5 Mask R-CNN runs on tf; export it"):
        load_model(ModelConfig(name="maskrcnn", runtime="onnx"))


def test_openvino_makes_no_usage_report(tmp_path):
    """Loading a model on OpenVINO starts no process and sends nothing (its import-time usage report is off)."""
    pytest.importorskip("openvino")
    import os
    import subprocess
    import sys

    path = tmp_path / "model.keras"
    tiny_model().save(path)
    script = (
        "import multiprocessing, sys\n"
        "import numpy as np\n"
        "from streamer.models import ModelConfig, load_model\n"
        f"model = load_model(ModelConfig(name='semantic', weights={str(path)!r}, runtime='openvino'))\n"
        "assert model.predict(np.zeros((1, 32, 48, 3), np.uint8))[0].semantic.shape == (32, 48)\n"
        "print(len(multiprocessing.active_children()), sys.modules['openvino_telemetry'])\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TF_BUILD", "JENKINS_URL")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["0", "None"]


def test_threads_bounds_the_cores_a_model_call_uses():
    """--threads 1 on every runtime: a model call keeps to one core, so several workers can share a machine;
    TensorFlow's number holds for the whole process, and a later model asking for another is told so."""
    pytest.importorskip("openvino")
    import subprocess
    import sys

    from redis_fixtures import ROOT, environment

    script = """
import logging, resource, sys, time
import numpy as np
from streamer.models import ModelConfig, load_model
logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
frames = np.random.default_rng(0).integers(0, 255, (4, 128, 256, 3), np.uint8)
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
for runtime in ("tf", "onnx", "openvino"):
    model = load_model(ModelConfig(name="unet", runtime=runtime, batch_size=4, threads=1))
    model.predict(frames)
    used, started, calls = cpu(), time.monotonic(), 0
    while time.monotonic() - started < 1.5:
        model.predict(frames)
        calls += 1
    print(runtime, calls, round((cpu() - used) / (time.monotonic() - started), 2))
load_model(ModelConfig(name="unet", batch_size=1, threads=2))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=environment(), cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-2000:]
    cores = {line.split()[0]: float(line.split()[2]) for line in done.stdout.splitlines()}
    assert set(cores) == {"tf", "onnx", "openvino"}
    assert all(used <= 1.25 for used in cores.values()), cores
    assert "--threads 2: TensorFlow has started in this process with --threads 1; keeping that" in done.stderr
