"""The three architectures build, map (H, W, 3) to (H, W, classes) probabilities, and reject bad sizes."""

import numpy as np
import pytest

from streamer.errors import StreamerError
from workers.unet.models import build_model, unet, unet_plus_plus

SHAPE = (32, 64, 3)


@pytest.mark.parametrize("arch", ["unet", "unetpp", "mobilenet"])
@pytest.mark.parametrize("classes", [1, 3])
def test_each_architecture_outputs_a_probability_map_at_input_size(arch, classes):
    model = build_model(arch, SHAPE, width=0.0625 if arch != "mobilenet" else 0.35, classes=classes)
    assert model.output_shape == (None, 32, 64, classes)
    out = np.asarray(model(np.random.default_rng(0).random((2, *SHAPE), dtype=np.float32)))
    assert out.shape == (2, 32, 64, classes)
    assert out.min() >= 0 and out.max() <= 1
    if classes > 1:  # softmax over classes
        np.testing.assert_allclose(out.sum(axis=-1), 1.0, atol=1e-4)


def test_width_scales_the_seed_filters():
    model = unet((32, 64, 3), width=0.25)
    assert model.get_layer("down1_conv1").filters == 16  # 64 · 0.25
    assert model.get_layer("down4_conv2").filters == 128
    assert model.get_layer("bottom_conv2").filters == 256  # 1024 · 0.25
    assert model.get_layer("up1_conv2").filters == 16
    assert model.get_layer("head").activation.__name__ == "sigmoid"
    assert [layer.name for layer in model.layers] == [layer.name for layer in unet((32, 64, 3), width=0.25).layers]


def test_unet_plus_plus_deep_supervision_has_one_head_per_nested_level():
    model = unet_plus_plus(SHAPE, width=0.0625, deep_supervision=True)
    assert model.output_names == ["head_1", "head_2", "head_3", "head_4"]
    assert all(tuple(o.shape) == (None, 32, 64, 1) for o in model.outputs)
    assert len(unet_plus_plus(SHAPE, width=0.0625).outputs) == 1


@pytest.mark.parametrize(
    "arch,shape", [("unet", (30, 64, 3)), ("unetpp", (32, 60, 3)), ("mobilenet", (48, 64, 3)), ("unet", (32, 64, 1))]
)
def test_input_sizes_the_pooling_cannot_halve_are_refused(arch, shape):
    with pytest.raises(StreamerError, match="divisible by"):
        build_model(arch, shape, width=0.0625)


def test_unknown_architecture_is_refused():
    with pytest.raises(StreamerError, match="choose one of unet, unetpp, mobilenet"):
        build_model("segnet", SHAPE)
