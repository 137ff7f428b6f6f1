"""Weight files: matterport / Keras 2 HDF5 layout by name (+ exclude, + mismatch report), our own format."""

import numpy as np
import pytest
from maskrcnn_helpers import TINY_MASKRCNN, write_keras2

from streamer.errors import StreamerError
from workers.maskrcnn.config import shapes_config
from workers.maskrcnn.model import MaskRCNN

TINY = dict(
    TINY_MASKRCNN,
    IMAGES_PER_GPU=2,
)


def tiny(**kw):
    return shapes_config(**{**TINY, **kw})


@pytest.fixture(scope="module")
def model():
    return MaskRCNN(tiny())


def _randomise(m, seed):
    rng = np.random.default_rng(seed)
    for v in m.keras_model.weights:
        v.assign(rng.normal(size=v.shape).astype(np.float32))


@pytest.mark.parametrize("chunked,nested", [(False, False), (True, True)])
def test_keras2_h5_loads_by_name_with_exclude(tmp_path, model, chunked, nested):
    source = MaskRCNN(tiny())
    _randomise(source, 1)
    path = tmp_path / "matterport.h5"
    write_keras2(path, source, chunked=chunked, nested=nested)
    before = model.layers_by_name()["mrcnn_class_logits"].kernel.numpy().copy()
    report = model.load_weights(str(path), by_name=True, exclude=["mrcnn_class_logits"])
    assert "mrcnn_class_logits" in report["excluded"] and "rpn_model" in report["loaded"]
    ours, theirs = model.layers_by_name(), source.layers_by_name()
    for name in ("conv1", "res3a_branch2a", "bn_conv1", "fpn_p2", "rpn_conv_shared", "rpn_bbox_pred", "mrcnn_mask"):
        for a, b in zip(ours[name].weights, theirs[name].weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(ours["mrcnn_class_logits"].kernel.numpy(), before)


def test_keras2_h5_mismatch_is_reported(tmp_path, model):
    source = MaskRCNN(tiny(NUM_CLASSES=6, CLASS_NAMES=None))
    path = tmp_path / "coco_like.h5"
    write_keras2(path, source)
    with pytest.raises(StreamerError) as info:
        model.load_weights(str(path))
    message = str(info.value)
    assert "mrcnn_class_logits: file has (32, 6), (6,), model wants (32, 4), (4,)" in message
    assert "mrcnn_bbox_fc: file has (32, 24)" in message and "mrcnn_mask" in message
    assert "--exclude mrcnn_class_logits,mrcnn_bbox_fc,mrcnn_mask" in message and "NUM_CLASSES" in message
    # excluding them makes it load
    report = model.load_weights(str(path), exclude="mrcnn_class_logits,mrcnn_bbox_fc,mrcnn_mask".split(","))
    assert len(report["excluded"]) == 3
    with pytest.raises(StreamerError, match="does not exist"):
        model.load_weights(str(tmp_path / "nope.h5"))


def test_own_format_round_trip_and_mismatch(tmp_path, model):
    from workers.maskrcnn.weights import read_config

    _randomise(model, 2)
    path = str(tmp_path / "mine.weights.h5")
    model.save_weights(path)
    saved = read_config(path)
    assert saved["NUM_CLASSES"] == 4 and saved["CLASS_NAMES"] == ["BG", "square", "circle", "triangle"]
    other = MaskRCNN(tiny())
    other.load_weights(path)
    for a, b in zip(model.keras_model.weights, other.keras_model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    wider = MaskRCNN(tiny(NUM_CLASSES=3, CLASS_NAMES=["BG", "a", "b"]))
    with pytest.raises(StreamerError, match=r"mrcnn_class_logits: file has \(32, 4\), \(4,\), model wants \(32, 3\)"):
        wider.load_weights(path)
    wider.load_weights(path, exclude=["mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_mask"])
    np.testing.assert_array_equal(
        wider.layers_by_name()["fpn_p3"].kernel.numpy(), model.layers_by_name()["fpn_p3"].kernel.numpy()
    )
