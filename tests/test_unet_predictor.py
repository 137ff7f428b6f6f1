"""The U-Net predictor: one Prediction per frame at the frame's size, and clear errors for bad weights files."""

import zipfile

import numpy as np
import pytest
from unet_helpers import save_channel_model, save_gray_model, save_tiny_unet

from streamer.errors import StreamerError
from streamer.models import ModelConfig, load_model
from workers.unet.predictor import load


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    return {
        "tiny": save_tiny_unet(folder / "tiny.keras"),
        "gray": save_gray_model(folder / "gray.keras"),
        "rgb": save_channel_model(folder / "rgb.keras"),
    }


def test_predictions_match_frame_count_size_and_type_with_partial_batch(weights):
    model = load_model(ModelConfig(name="unet", weights=str(weights["tiny"]), batch_size=2))
    frames = np.random.default_rng(0).integers(0, 256, (3, 719, 1279, 3), dtype=np.uint8)
    predictions = model.predict(frames)
    assert len(predictions) == 3  # two full batches' worth of calls, the last one padded
    for prediction in predictions:
        assert prediction.semantic.shape == (719, 1279)
        assert prediction.semantic.dtype == np.uint8
        assert set(np.unique(prediction.semantic)) <= {0, 1}


def test_binary_threshold_is_applied_to_probabilities_resized_to_the_frame(weights):
    """Grey model: probability = brightness/255, so a bright left half is road, the dark right half is not."""
    frame = np.zeros((90, 161, 3), np.uint8)
    frame[:, :80] = 230
    frame[:, 80:] = 20
    for threshold, expected_left in ((0.5, 1), (0.95, 0)):
        model = load(ModelConfig(weights=str(weights["gray"]), batch_size=4, threshold=threshold))
        (prediction,) = model.predict(frame[None])
        assert prediction.semantic.shape == (90, 161)
        assert (prediction.semantic[:, :70] == expected_left).all()
        assert (prediction.semantic[:, 90:] == 0).all()


def test_multi_class_model_gives_the_argmax_class(weights):
    frames = np.zeros((2, 50, 75, 3), np.uint8)
    frames[0, ..., 1] = 200  # green → class 1
    frames[1, ..., 2] = 200  # blue → class 2
    model = load(ModelConfig(weights=str(weights["rgb"]), batch_size=4))
    first, second = model.predict(frames)
    assert (first.semantic == 1).all() and (second.semantic == 2).all()


def test_mixed_precision_computes_in_float16_and_moves_the_road_edge_by_a_pixel_at_most(weights):
    """A grey ramp across the frame: probability 0.5 falls mid-frame, where float16 rounding could flip pixels."""
    ramp = np.round(np.linspace(96, 160, 128)).astype(np.uint8)
    frame = np.broadcast_to(ramp[None, None, :, None], (1, 64, 128, 3)).copy()
    plain = load(ModelConfig(weights=str(weights["gray"]))).predict(frame)[0].semantic
    model = load(ModelConfig(weights=str(weights["gray"]), mixed_precision=True, device="/CPU:0"))
    assert model.model.get_layer("gray").compute_dtype == "float16"
    assert model.model.get_layer("head").compute_dtype == "float32"  # outputs stay float32
    mixed = model.predict(frame)[0].semantic

    def road_starts(semantic):
        """The column where the road (the bright right-hand side) starts; the same in every row."""
        assert (semantic == semantic[:1]).all()
        start = int(np.argmax(semantic[0]))
        assert not semantic[0, :start].any() and semantic[0, start:].all()
        return start

    assert 54 <= road_starts(plain) <= 74
    assert abs(road_starts(mixed) - road_starts(plain)) <= 1


def test_missing_device_is_a_user_error(weights):
    with pytest.raises(StreamerError, match="GPU:3.*not available"):
        load(ModelConfig(weights=str(weights["gray"]), device="/GPU:3"))


def _classifier(path):
    import keras

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x)).save(path)
    return path


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda p: p, "not found"),
        (lambda p: (p.write_bytes(b"\x00garbage" * 100), p)[1], "not a Keras archive"),
        (lambda p: (p.write_text("hello"), p.rename(p.with_suffix(".h5")))[1], "expected a .keras file"),
        (lambda p: (zipfile.ZipFile(p, "w").close(), p)[1], "missing config.json"),
        (_classifier, "not a segmentation map"),
    ],
    ids=["missing", "corrupt", "not-keras", "empty-zip", "classifier"],
)
def test_unusable_weights_file_raises_streamer_error_naming_it(tmp_path, make, message):
    path = make(tmp_path / "model.keras")
    with pytest.raises(StreamerError, match=message) as caught:
        load(ModelConfig(weights=str(path)))
    assert str(path) in str(caught.value)
    assert "streamer train unet" in str(caught.value)


def test_truncated_keras_file_raises_streamer_error(tmp_path, weights):
    path = tmp_path / "cut.keras"
    path.write_bytes(weights["tiny"].read_bytes()[:5000])
    with pytest.raises(StreamerError, match=str(path)):
        load(ModelConfig(weights=str(path)))


def test_frames_must_be_uint8_rgb(weights):
    model = load(ModelConfig(weights=str(weights["gray"])))
    with pytest.raises(StreamerError, match="uint8"):
        model.predict(np.zeros((1, 10, 10, 3), np.float32))


def test_warm_up_builds_the_graph_the_frames_then_use():
    """After warm_up for a frame size, frames of that size (handed at the model's size) run the same graph."""
    model = load(ModelConfig(batch_size=2))
    size = model.takes_frames_at(360, 640)
    assert size is not None and size[0] < 360 and size[1] < 640
    model.warm_up(360, 640)
    traced = model._infer.experimental_get_tracing_count()
    frames = np.zeros((2, *size, 3), np.uint8)
    (first, _) = model.predict(frames, frame_size=(360, 640))
    assert first.semantic.shape == (360, 640)
    assert model._infer.experimental_get_tracing_count() == traced == 1
