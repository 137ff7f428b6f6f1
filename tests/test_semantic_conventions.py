"""Any segmentation model's conventions: input range, mean/std and channel order, output as probabilities,
logits or class indices, and class names, read from TFLite and ONNX metadata or given with --set; small models
in each convention (Keras, ONNX, TFLite, with and without metadata) give the masks they should, and classes
above one get a palette overlay."""

import io
import json
import warnings
import zipfile

import numpy as np
import pytest

from streamer.effects import EffectConfig
from streamer.errors import StreamerError
from streamer.models import ModelConfig
from streamer.prediction import Prediction

IMAGENET = {"INPUT_MEAN": [0.485, 0.456, 0.406], "INPUT_STD": [0.229, 0.224, 0.225]}
SIZE = (32, 48)


def frames(rng, reds) -> np.ndarray:
    """One frame per red level in `reds`: the left half that red, the right half 255 - it; green and blue random."""
    out = rng.integers(0, 256, (len(reds), *SIZE, 3), dtype=np.uint8)
    for frame, red in zip(out, reds):
        frame[:, : SIZE[1] // 2, 0] = red
        frame[:, SIZE[1] // 2 :, 0] = 255 - red
    return out


def keras_model(weights, bias, activation=None):
    """A 1×1 convolution over the (normalised) channels: the score of each pixel."""
    import keras

    inputs = keras.Input((*SIZE, 3))
    layer = keras.layers.Conv2D(len(bias), 1, activation=activation, name="head")
    model = keras.Model(inputs, layer(inputs))
    layer.set_weights([np.asarray(weights, np.float32).reshape(1, 1, 3, len(bias)), np.asarray(bias, np.float32)])
    return model


def argmax_of(model):
    """The model's class index per pixel (an ArgMax as its last operation, an integer output)."""
    import tensorflow as tf

    return lambda x: tf.argmax(model(x, training=False), axis=-1, output_type=tf.int32)


def signature(batch: int | None = None):
    import tensorflow as tf

    return [tf.TensorSpec([batch, *SIZE, 3], tf.float32, name="image")]


def to_tflite(call) -> bytes:
    import tensorflow as tf

    function = tf.function(call, input_signature=signature())
    return tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()]).convert()


def to_quantised_tflite(call) -> bytes:
    """Full integer quantisation: uint8 input and output, calibrated on inputs normalised to [-1, 1]."""
    import tensorflow as tf

    def calibration():
        rng = np.random.default_rng(0)
        for _ in range(8):
            yield [(rng.integers(0, 256, (1, *SIZE, 3)).astype(np.float32) - 127.5) / 127.5]

    function = tf.function(call, input_signature=signature())
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = calibration
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.uint8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its note on input statistics: the calibration data gives them
        return converter.convert()


def to_onnx(call, properties: dict | None = None, batch: int | None = None) -> bytes:
    import tensorflow as tf
    import tf2onnx

    proto, _ = tf2onnx.convert.from_function(tf.function(call), input_signature=signature(batch), opset=17)
    for key, value in (properties or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto.SerializeToString()


def with_tflite_metadata(data: bytes, mean: list[float], std: list[float], labels: list[str] | None) -> bytes:
    """`data` with TFLite metadata as tflite-support's MetadataPopulator writes it: a ModelMetadata flatbuffer
    (metadata_schema.fbs) in the TFLITE_METADATA buffer, the input's NormalizationOptions, the output's label
    file (TENSOR_AXIS_LABELS) packed as a zip appended to the model."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    b = flatbuffers.Builder(256)

    def vector(offsets):
        b.StartVector(4, len(offsets), 4)
        for offset in reversed(offsets):
            b.PrependUOffsetTRelative(offset)
        return b.EndVector()

    def floats(values):
        b.StartVector(4, len(values), 4)
        for value in reversed(values):
            b.PrependFloat32(value)
        return b.EndVector()

    means, stds = floats(mean), floats(std)
    b.StartObject(2)  # NormalizationOptions
    b.PrependUOffsetTRelativeSlot(0, means, 0)
    b.PrependUOffsetTRelativeSlot(1, stds, 0)
    normalization = b.EndObject()
    b.StartObject(2)  # ProcessUnit: options_type NormalizationOptions (1), options
    b.PrependUint8Slot(0, 1, 0)
    b.PrependUOffsetTRelativeSlot(1, normalization, 0)
    units = vector([b.EndObject()])
    b.StartObject(7)  # input TensorMetadata: process_units
    b.PrependUOffsetTRelativeSlot(4, units, 0)
    inputs = vector([b.EndObject()])
    files = None
    if labels:
        name = b.CreateString("labels.txt")
        b.StartObject(4)  # AssociatedFile: name, type TENSOR_AXIS_LABELS (2)
        b.PrependUOffsetTRelativeSlot(0, name, 0)
        b.PrependInt8Slot(2, 2, 0)
        files = vector([b.EndObject()])
    b.StartObject(7)  # output TensorMetadata: associated_files
    if files is not None:
        b.PrependUOffsetTRelativeSlot(6, files, 0)
    outputs = vector([b.EndObject()])
    b.StartObject(9)  # SubGraphMetadata
    b.PrependUOffsetTRelativeSlot(2, inputs, 0)
    b.PrependUOffsetTRelativeSlot(3, outputs, 0)
    subgraphs = vector([b.EndObject()])
    b.StartObject(8)  # ModelMetadata
    b.PrependUOffsetTRelativeSlot(3, subgraphs, 0)
    b.Finish(b.EndObject(), file_identifier=b"M001")

    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(bytes(b.Output()), np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = "TFLITE_METADATA", len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), entry]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    out = bytes(builder.Output())
    if labels:
        packed = io.BytesIO()
        with zipfile.ZipFile(packed, "w") as archive:
            archive.writestr("labels.txt", "\n".join(labels) + "\n")
        out += packed.getvalue()
    return out


def predict(path, rng_frames, **options):
    from workers.unet.predictor import UNetPredictor

    model = UNetPredictor(ModelConfig(name="semantic", weights=str(path), batch_size=2, **options))
    return model, [p.semantic for p in model.predict(rng_frames)]


def expected_left(reds, cut) -> np.ndarray:
    """The mask of frames(reds): 1 where the red level is above `cut`."""
    out = np.zeros((len(reds), *SIZE), np.uint8)
    for mask, red in zip(out, reds):
        mask[:, : SIZE[1] // 2] = red > cut
        mask[:, SIZE[1] // 2 :] = 255 - red > cut
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The same decision, "red above 123.7" (0.485 · 255), made by models in several conventions."""
    folder = tmp_path_factory.mktemp("conventions")
    # ImageNet normalisation: x_R = (p/255 − 0.485) / 0.229 > 0 ⇔ p > 123.7; a steep sigmoid of it
    imagenet = keras_model([[50.0], [0.0], [0.0]], [0.0], activation="sigmoid")
    imagenet.save(folder / "imagenet.keras")
    (folder / "imagenet.onnx").write_bytes(
        to_onnx(imagenet, {"INPUT_MEAN": json.dumps(IMAGENET["INPUT_MEAN"]), "INPUT_STD": "0.229,0.224,0.225",
                           "CLASS_NAMES": json.dumps(["background", "red"])})
    )  # fmt: skip
    (folder / "imagenet_bare.onnx").write_bytes(to_onnx(imagenet))
    (folder / "one_at_a_time.onnx").write_bytes(to_onnx(imagenet, {"INPUT_MEAN": "0.485", "INPUT_STD": "0.229"}, 1))
    # TFLite's usual (p − 127.5) / 127.5 > 0 ⇔ p > 127.5, said by its metadata, with a packed label file
    halves = keras_model([[50.0], [0.0], [0.0]], [0.0], activation="sigmoid")
    tflite = to_tflite(halves)
    (folder / "halves.tflite").write_bytes(with_tflite_metadata(tflite, [127.5], [127.5], ["background", "red"]))
    (folder / "quantised.tflite").write_bytes(with_tflite_metadata(to_quantised_tflite(halves), [127.5], [127.5], None))
    (folder / "halves_bare.tflite").write_bytes(tflite)
    # BGR input in [0, 1] minus 0.5: the red channel comes last
    keras_model([[0.0], [0.0], [50.0]], [0.0], activation="sigmoid").save(folder / "bgr.keras")
    # logits: 10 · (p/255 − 0.5), no activation
    keras_model([[10.0], [0.0], [0.0]], [-5.0]).save(folder / "logits.keras")
    # class indices: the argmax of (red, green, blue) after [0, 1] scaling
    indices = argmax_of(keras_model(np.eye(3), [0.0, 0.0, 0.0]))
    (folder / "indices.tflite").write_bytes(to_tflite(indices))
    (folder / "indices.onnx").write_bytes(to_onnx(indices, {"labels": "{0: 'red', 1: 'green', 2: 'blue'}"}))
    return folder


REDS = (200, 124, 140, 30, 250, 0)


def test_input_normalisation_from_onnx_metadata_or_set(files):
    batch = frames(np.random.default_rng(1), REDS)
    model, masks = predict(files / "imagenet.onnx", batch)
    np.testing.assert_array_equal(masks, expected_left(REDS, 123.7))
    assert model.class_names == ("background", "red")
    _, plain = predict(files / "imagenet_bare.onnx", batch)  # no metadata: [0, 1], every pixel above 0
    assert all(mask.all() for mask in plain)
    settings = {key: json.dumps(value) for key, value in IMAGENET.items()}
    in_pixels = {"INPUT_MEAN": "[123.675 116.28 103.53]", "INPUT_STD": "58.395,57.12,57.375"}  # mmseg's way
    for path, told_as in ((files / "imagenet_bare.onnx", settings), (files / "imagenet.keras", in_pixels)):
        model, told = predict(path, batch, settings=told_as)
        np.testing.assert_array_equal(told, expected_left(REDS, 123.7))
    assert model.conventions.scale == 1.0  # a mean in pixel values applies to raw pixels


@pytest.mark.parametrize("runtime", ["onnx", "openvino"])
@pytest.mark.parametrize("batch", [1, 3, 4])
def test_a_model_made_for_one_frame_at_a_time_serves_any_batch(files, runtime, batch):
    """An ONNX file whose input takes exactly one image (batch dimension 1, as many exports have it)."""
    from workers.unet.predictor import UNetPredictor

    reds = REDS[:5]  # a batch and a part of one
    model = UNetPredictor(
        ModelConfig(name="semantic", weights=str(files / "one_at_a_time.onnx"), batch_size=batch, runtime=runtime)
    )
    masks = [p.semantic for p in model.predict(frames(np.random.default_rng(batch), reds))]
    np.testing.assert_array_equal(masks, expected_left(reds, 123.7))


def test_tflite_metadata_normalisation_and_labels(files):
    batch = frames(np.random.default_rng(2), REDS)
    model, masks = predict(files / "halves.tflite", batch)
    np.testing.assert_array_equal(masks, expected_left(REDS, 127.5))
    assert model.class_names == ("background", "red")
    assert model.conventions.mean == (127.5,) and model.conventions.scale == 1.0
    _, plain = predict(files / "halves_bare.tflite", batch)
    assert all(mask.all() for mask in plain)
    _, quantised = predict(files / "quantised.tflite", batch)  # uint8 in and out, in their quantisation steps
    np.testing.assert_array_equal(quantised, expected_left(REDS, 127.5))
    _, told = predict(
        files / "halves_bare.tflite", batch, settings={"INPUT_SCALE": "1", "INPUT_MEAN": 127.5, "INPUT_STD": 127.5}
    )
    np.testing.assert_array_equal(told, expected_left(REDS, 127.5))


def test_channel_order_and_logits(files):
    batch = frames(np.random.default_rng(3), REDS)
    centred = {"INPUT_MEAN": 0.5}
    _, masks = predict(files / "bgr.keras", batch, settings={**centred, "CHANNEL_ORDER": "bgr"})
    np.testing.assert_array_equal(masks, expected_left(REDS, 127.5))
    _, wrong = predict(files / "bgr.keras", batch, settings=centred)  # read as RGB: it looks at blue
    assert not np.array_equal(wrong, expected_left(REDS, 127.5))
    # logits 10 · (p/255 − 0.5): > 0 ⇔ p > 127.5; read as probabilities, p = 140 (logit 0.49) would be < 0.5
    _, masks = predict(files / "logits.keras", batch, settings={"OUTPUT": "logits"})
    np.testing.assert_array_equal(masks, expected_left(REDS, 127.5))
    _, taken_as_probabilities = predict(files / "logits.keras", batch)
    assert not np.array_equal(taken_as_probabilities, expected_left(REDS, 127.5))


@pytest.mark.parametrize("name", ["indices.tflite", "indices.onnx"])
def test_class_index_outputs(files, name):
    rng = np.random.default_rng(4)
    batch = np.zeros((3, *SIZE, 3), np.uint8)
    truth = rng.integers(0, 3, (3, *SIZE))
    for channel in range(3):
        batch[..., channel][truth == channel] = 220
    batch += rng.integers(0, 30, batch.shape, dtype=np.uint8)
    model, masks = predict(files / name, batch)
    assert model.conventions.output == "indices"
    np.testing.assert_array_equal(masks, truth)
    if name.endswith(".onnx"):
        assert model.class_names == ("red", "green", "blue")
    # at another frame size: nearest class, no blending of indices into classes in between
    (bigger,) = model.predict(np.repeat(np.repeat(batch[:1], 2, axis=1), 2, axis=2))
    np.testing.assert_array_equal(bigger.semantic, np.repeat(np.repeat(truth[0], 2, axis=0), 2, axis=1))


def test_bad_settings_are_one_line_errors(files):
    for settings, message in (
        ({"IMAGE_MAX_DIM": 512}, "IMAGE_MAX_DIM is not a setting of a semantic model; it takes INPUT_SCALE"),
        ({"CHANNEL_ORDER": "gbr"}, "CHANNEL_ORDER gbr: choose rgb or bgr"),
        ({"OUTPUT": "boxes"}, "OUTPUT boxes: choose one of probabilities, logits, indices"),
        ({"INPUT_STD": "[1, 0, 1]"}, "INPUT_STD .* must not be 0"),
        ({"INPUT_MEAN": "[1, 2]"}, "INPUT_MEAN \\[1.0, 2.0\\] .* give 1 value or 3"),
        ({"INPUT_SCALE": "x"}, "INPUT_SCALE 'x': give a number"),
    ):
        with pytest.raises(StreamerError, match=message):
            predict(files / "imagenet.keras", frames(np.random.default_rng(0), [1]), settings=settings)


def test_a_multi_class_map_gets_a_palette_and_classes_select():
    from streamer.effects import selected
    from streamer.effects.masks import overlay, voc_colour

    rng = np.random.default_rng(5)
    frame = rng.integers(0, 256, (36, 50, 3), dtype=np.uint8)
    semantic = rng.integers(0, 4, (36, 50)).astype(np.uint8)
    options = EffectConfig(color=(255, 0, 255), alpha=0.5)
    out = overlay(frame, Prediction(semantic=semantic), options).astype(int)
    for class_id in range(4):
        where = semantic == class_id
        colour = np.array((255, 0, 255) if class_id == 1 else voc_colour(class_id))
        wanted = frame[where].astype(int) if class_id == 0 else np.rint(frame[where] * 0.5 + colour * 0.5)
        assert np.abs(out[where] - wanted).max() <= 1, class_id
    assert voc_colour(15) == (192, 128, 128)  # PASCAL VOC's person
    names = ("background", "road", "car", "person")
    picked = selected(Prediction(semantic=semantic), EffectConfig(classes=("car", "person"), class_names=names))
    np.testing.assert_array_equal(picked.semantic, np.where(semantic >= 2, semantic, 0))


def test_a_multi_class_palette_on_yuv_planes_matches_rgb():
    import av

    from streamer.effects.masks import overlay
    from streamer.effects.planes import overlay as overlay_planes

    rng = np.random.default_rng(6)
    semantic = np.zeros((48, 64), np.uint8)
    semantic[:, 16:32], semantic[:, 32:48], semantic[:, 48:] = 1, 2, 5
    frame = np.full((48, 64, 3), 120, np.uint8) + rng.integers(0, 3, (48, 64, 3), dtype=np.uint8)
    options = EffectConfig(color=(0, 200, 0), alpha=0.6)
    rgb = overlay(frame, Prediction(semantic=semantic), options).astype(int)
    picture = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p")
    yuv = overlay_planes(picture, Prediction(semantic=semantic), options).to_ndarray(format="rgb24").astype(int)
    for columns in (slice(2, 14), slice(18, 30), slice(34, 46), slice(50, 62)):  # inside each class's band
        assert np.abs(rgb[:, columns].mean((0, 1)) - yuv[:, columns].mean((0, 1))).max() < 6


def test_classes_and_detections_of_a_semantic_model(files, tmp_path, run_cli):
    import av
    from media import probe

    source = tmp_path / "in.mp4"
    with av.open(str(source), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = SIZE[1] * 2, SIZE[0] * 2, "yuv444p"
        stream.options = {"crf": "0"}
        image = np.zeros((SIZE[0] * 2, SIZE[1] * 2, 3), np.uint8)
        image[:, : SIZE[1]] = (230, 10, 10)  # red left, green middle, blue right
        image[:, SIZE[1] : SIZE[1] * 3 // 2] = (10, 230, 10)
        image[:, SIZE[1] * 3 // 2 :] = (10, 10, 230)
        for index in range(2):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    detections = tmp_path / "d.jsonl"
    code, _, err = run_cli(
        "process", source, "-o", tmp_path / "out.mkv", "--model", "semantic", "--weights", files / "indices.onnx",
        "--classes", "blue", "--effect", "mask", "--detections", detections, "--pix-fmt", "yuv444p", "--crf", "0", "-q",
    )  # fmt: skip
    assert code == 0, err
    rows = [json.loads(line) for line in detections.read_text().splitlines()]
    assert len(rows) == 2 and all(row["classes"] == ["blue"] for row in rows)
    for picture in probe(tmp_path / "out.mkv")["images"]:
        assert (picture[:, SIZE[1] * 3 // 2 + 2 :] > 200).all() and (picture[:, : SIZE[1] * 3 // 2 - 2] < 50).all()
    code, _, err = run_cli(
        "process", source, "--model", "semantic", "--weights", files / "indices.onnx", "--classes", "purple"
    )
    assert code == 2 and "--classes purple: not classes of this model" in err
