"""What a user moving from matterport has: the listing `config.display()` printed, `--exclude`, files that are
not Mask R-CNN weights at all, and every command reading a matterport file for what it is."""

import json
import os
from unittest import mock

import h5py
import numpy as np
import pytest
from maskrcnn_helpers import TINY_MASKRCNN
from media import probe
from test_users_models import layer_arrays, resnet_layout, square_video, two_class_file, write_keras2

from streamer.errors import StreamerError
from streamer.models import ModelConfig
from streamer.settings import listing, parse_value, read_settings_file
from workers.maskrcnn.config import Config, shapes_config, user_settings
from workers.maskrcnn.model import MaskRCNN
from workers.maskrcnn.predictor import saved_settings
from workers.maskrcnn.weights import DEMO_WEIGHTS, read_config

USE_RPN_ROIS = True  # a matterport setting this Config has no field for


def display(config: Config, indent: str = "") -> str:
    """What matterport's `config.display()` prints for `config`: "Configurations:", then `{:30} {}` of every
    setting in name order, NumPy arrays as NumPy prints them, the computed ones and USE_RPN_ROIS too."""
    values = {name: getattr(config, name) for name in Config.__dataclass_fields__ if name not in ("CLASS_NAMES",)}
    values.update(
        BATCH_SIZE=config.BATCH_SIZE,
        IMAGE_SHAPE=config.IMAGE_SHAPE,
        IMAGE_META_SIZE=config.IMAGE_META_SIZE,
        USE_RPN_ROIS=USE_RPN_ROIS,
    )
    lines = [f"{indent}Configurations:"]
    lines += [f"{indent}{name:30} {value}" for name, value in sorted(values.items())]
    return "\n".join(lines) + "\n\n"


def test_the_listing_of_config_display_is_read_as_numbers(tmp_path):
    config = shapes_config(MEAN_PIXEL=np.array([123.7, 116.8, 103.9]), DETECTION_MIN_CONFIDENCE=0.9)
    path = tmp_path / "config.txt"
    path.write_text(display(config, indent="    "))  # as a notebook's output cell shows it
    read = read_settings_file(str(path))
    assert read["MEAN_PIXEL"] == [123.7, 116.8, 103.9] and read["IMAGE_SHAPE"] == [128, 128, 3]
    assert read["MINI_MASK_SHAPE"] == (28, 28) and read["COMPUTE_BACKBONE_SHAPE"] is None
    assert read["TRAIN_BN"] is None and read["USE_RPN_ROIS"] is True and read["BACKBONE"] == "light"
    again = Config.from_dict(user_settings(read))
    for name in Config.__dataclass_fields__:
        if name != "CLASS_NAMES":
            np.testing.assert_equal(getattr(again, name), getattr(config, name), err_msg=name)
    assert isinstance(again.MINI_MASK_SHAPE, tuple) and again.MEAN_PIXEL.dtype == np.float64


@pytest.mark.parametrize("seed", range(40))
def test_numpy_printed_arrays_of_any_length_and_wrapping(seed):
    rng = np.random.default_rng(seed)
    scale = 10.0 ** rng.integers(-5, 7)  # tiny to huge: plain, padded and scientific notation
    array = rng.normal(0, scale, rng.integers(1, 41)).astype(np.float32).astype(np.float64)
    printed = str(array)  # NumPy wraps long arrays onto indented lines
    indent = " " * int(rng.integers(0, 9))
    text = f"{indent}MEAN_PIXEL{' ' * 21}{printed}\n{indent}NAME   x\n"
    read = listing(text)
    np.testing.assert_allclose(read["MEAN_PIXEL"], array, rtol=1e-3, atol=1e-3 * np.abs(array).max())
    assert read["NAME"] == "x"
    whole = (array * 10).astype(int)
    assert parse_value(str(whole)) == whole.tolist()


def test_yaml_and_set_values_printed_by_numpy_are_numbers(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "MEAN_PIXEL: [123.7 116.8 103.9]\nMINI_MASK_SHAPE: (56, 56)\nRPN_ANCHOR_SCALES: (8, 16, 32, 64, 128)\n"
    )
    settings = user_settings(read_settings_file(str(path)))
    assert settings == {
        "MEAN_PIXEL": [123.7, 116.8, 103.9],
        "MINI_MASK_SHAPE": (56, 56),
        "RPN_ANCHOR_SCALES": (8, 16, 32, 64, 128),
    }
    assert user_settings({"BBOX_STD_DEV": "[0.1 0.1 0.2 0.2]", "IMAGE_MAX_DIM": 512.0}) == {
        "BBOX_STD_DEV": [0.1, 0.1, 0.2, 0.2],
        "IMAGE_MAX_DIM": 512,
    }
    for bad, message in (
        ({"IMAGE_MAX_DIM": "big"}, "IMAGE_MAX_DIM 'big': expected a whole number"),
        ({"MEAN_PIXEL": "[1 2 x]"}, "MEAN_PIXEL '\\[1 2 x\\]': expected a list of numbers"),
        ({"USE_MINI_MASK": 3}, "USE_MINI_MASK 3: expected a bool"),
        ({"IMAGE_MAX_DIMS": 512}, "did you mean IMAGE_MAX_DIM"),
    ):
        with pytest.raises(StreamerError, match=message):
            user_settings(bad)
    bad = tmp_path / "bad.txt"
    bad.write_text("IMAGE_MAX_DIM 512\n= oops\n")
    with pytest.raises(StreamerError, match="line 2 .* is not KEY value"):
        read_settings_file(str(bad))


def test_matterport_settings_without_a_field_are_left_out_with_a_note(caplog):
    assert user_settings({"USE_RPN_ROIS": True, "BATCH_SIZE": 8, "NAME": "balloon"}) == {"NAME": "balloon"}
    assert not caplog.records
    assert user_settings({"USE_RPN_ROIS": "False"}) == {}
    assert "USE_RPN_ROIS False is ignored" in caplog.text


def test_process_runs_with_a_display_listing_and_exclude(tmp_path, run_cli):
    """A balloon file that lacks a layer, with the settings as config.display() printed them (read as Config's
    values: test_the_listing_of_config_display_is_read_as_numbers), and --exclude on process for that layer
    (refused without it, naming --exclude: test_maskrcnn_weights)."""
    weights = tmp_path / "mask_rcnn_balloon.h5"
    two_class_file(weights)
    arrays = layer_arrays_of(weights)
    del arrays["fpn_p5"]
    partial = tmp_path / "partial.h5"
    write_keras2(partial, arrays)
    balloon = Config.from_dict(read_config(DEMO_WEIGHTS), NUM_CLASSES=2, CLASS_NAMES=None, NAME="balloon")
    settings_file = tmp_path / "balloon_config.txt"
    settings_file.write_text(display(balloon, indent="    "))
    source = tmp_path / "video.mp4"
    square_video(source)
    code, _, err = run_cli(
        "process", source, "-o", tmp_path / "out.mp4", "--model", "maskrcnn", "--weights", partial,
        "--config", settings_file, "--class-names", "BG,balloon", "--exclude", "fpn_p5", "--batch", "2", "-q",
    )  # fmt: skip
    assert code == 0, err
    assert len(probe(tmp_path / "out.mp4")["images"]) == 3


def layer_arrays_of(path) -> dict:
    """{layer: [(weight name, array)]} of a Keras 2 file."""
    from workers.maskrcnn.weights import read_keras2_h5

    return {name: weights for name, weights in read_keras2_h5(str(path)).items() if weights}


def test_exclude_parses_on_every_command_and_travels_to_workers():
    from streamer.cli import build_parser
    from streamer.cli.common import model_config, model_settings
    from streamer.distributed.connection import RedisConfig
    from streamer.distributed.spawn import MODEL_VARIABLE, spawned_model, worker_environment

    parser = build_parser()
    model = model_config(parser.parse_args(["process", "in.mp4", "--model", "maskrcnn", "--exclude", "a, mrcnn_.*"]))
    assert model.exclude == ("a", "mrcnn_.*")
    handed = worker_environment(model, RedisConfig(url="redis://localhost:1/0"))[MODEL_VARIABLE]
    with mock.patch.dict(os.environ, {MODEL_VARIABLE: handed}):  # what `process --workers N` hands its workers
        assert spawned_model().exclude == ("a", "mrcnn_.*")
    by_hand = ["worker", "--model", "maskrcnn", "--exclude", "a, mrcnn_.*", "--redis", "redis://localhost:1/0"]
    assert model_config(parser.parse_args(by_hand)).exclude == ("a", "mrcnn_.*")
    submit = parser.parse_args(["submit", "in.mp4", "-o", "o.mp4", "--exclude", "fpn_p5", "--redis", "redis://x:1/0"])
    assert model_settings(submit)["exclude"] == ("fpn_p5",)
    assert model_config(parser.parse_args(["process", "in.mp4"])).exclude == ()


def test_unet_refuses_exclude():
    from workers.unet.predictor import UNetPredictor

    with pytest.raises(StreamerError, match="--exclude: the unet model loads its file .* whole"):
        UNetPredictor(ModelConfig(name="unet", exclude=("conv1",)))


def keep_layers(path, prefixes) -> None:
    """List only the layers whose names start with one of `prefixes` in a Keras 2 file's layer_names."""
    with h5py.File(path, "a") as f:
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in f.attrs["layer_names"]]
        f.attrs["layer_names"] = [n.encode() for n in names if n.startswith(prefixes)]


def keras_model_file(path, names):
    """A plain Keras model saved as Keras 2 HDF5 (what model.save("x.h5") writes), with these layer names."""
    import logging

    import keras

    inputs = keras.Input((8, 8, 3))
    x = inputs
    for name in names:
        x = keras.layers.Conv2D(2, 1, name=name)(x)
    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.ERROR)  # Keras' note that HDF5 is a legacy format
    try:
        keras.Model(inputs, x).save(str(path))
    finally:
        absl.setLevel(level)


def test_files_that_are_not_maskrcnn_weights_say_so(tmp_path, run_cli):
    plain = tmp_path / "unet.h5"
    keras_model_file(plain, ["conv2d_a", "conv2d_b"])
    one_match = tmp_path / "classifier.h5"
    keras_model_file(one_match, ["conv1", "dense_head"])  # one layer name Mask R-CNN also has
    no_layers = tmp_path / "data.h5"
    with h5py.File(no_layers, "w") as f:
        f["x"] = np.zeros(3)
    backbone = tmp_path / "resnet50_imagenet.h5"
    resnet_layout(backbone, 50, 2)
    keep_layers(backbone, ("res", "bn", "conv1"))  # only the backbone's: matterport's ImageNet start
    for path in (plain, one_match, no_layers, backbone):
        with pytest.raises(StreamerError, match="this is not a Mask R-CNN weights file") as info:
            saved_settings(path)
        assert "NUM_CLASSES" not in str(info.value) and "--exclude" not in str(info.value)
    with pytest.raises(StreamerError, match="only a ResNet backbone .* train maskrcnn --init"):
        saved_settings(backbone)
    source = tmp_path / "in.mp4"
    square_video(source, frames=1)
    code, _, err = run_cli("process", source, "-o", tmp_path / "o.mp4", "--model", "maskrcnn", "--weights", one_match)
    assert code == 2 and "this is not a Mask R-CNN weights file" in err and "Traceback" not in err


def test_an_exported_savedmodel_folder_is_named_for_what_it_is(tmp_path, run_cli):
    folder = tmp_path / "exported"
    folder.mkdir()
    (folder / "saved_model.pb").write_bytes(b"")
    (folder / "maskrcnn_config.json").write_text("{}")
    source = tmp_path / "in.mp4"
    square_video(source, frames=1)
    code, _, err = run_cli("process", source, "-o", tmp_path / "o.mp4", "--model", "maskrcnn", "--weights", folder)
    assert code == 2 and "exported SavedModel folder" in err and "not found" not in err
    code, _, err = run_cli("inspect", "maskrcnn", source, "-o", tmp_path / "p", "--weights", folder)
    assert code == 2 and "exported SavedModel folder" in err


def test_train_init_reads_the_files_architecture(tmp_path):
    from workers.maskrcnn.train import _architecture

    coco = tmp_path / "mask_rcnn_coco.h5"
    resnet_layout(coco, 101, 81)
    found = _architecture(coco)
    assert found["BACKBONE"] == "resnet101" and found["NUM_CLASSES"] == 81
    assert (found["RPN_CONV_DEPTH"], found["TOP_DOWN_PYRAMID_SIZE"]) == (512, 256)
    with pytest.raises(StreamerError, match="--backbone resnet50: the --init file .* holds a resnet101 backbone"):
        _architecture(coco, "resnet50")
    assert _architecture(coco, "resnet101")["BACKBONE"] == "resnet101"
    backbone_only = tmp_path / "imagenet.h5"
    resnet_layout(backbone_only, 50, 2)
    keep_layers(backbone_only, ("res", "bn", "conv1"))
    assert _architecture(backbone_only) == {"BACKBONE": "resnet50"}  # training may start from a backbone
    plain = tmp_path / "plain.h5"
    keras_model_file(plain, ["dense_a"])
    with pytest.raises(StreamerError, match="this is not a Mask R-CNN weights file"):
        _architecture(plain)


def test_train_from_a_file_with_other_classes_keeps_all_but_the_class_layers(tmp_path):
    """matterport's balloon flow: start from a file of another class count; the class-sized head layers are
    left out, everything else comes from the file, whose architecture (here the light backbone's widths) is
    read from it rather than taken from the data set's defaults."""
    import cv2

    from workers.maskrcnn.config import TrainConfig, model_config
    from workers.maskrcnn.data import training_data
    from workers.maskrcnn.train import _architecture, initial_model

    source = MaskRCNN(shapes_config(**TINY_MASKRCNN, IMAGES_PER_GPU=1))  # Keras' random initial weights
    init = tmp_path / "four_classes.h5"
    write_keras2(init, layer_arrays(source))  # matterport's layout: no saved config
    folder = tmp_path / "balloon" / "train"
    folder.mkdir(parents=True)
    regions = []
    for index in range(2):
        cv2.imwrite(str(folder / f"{index}.png"), np.full((64, 64, 3), 90 + 40 * index, np.uint8))
        shape = {"name": "polygon", "all_points_x": [10, 40, 40], "all_points_y": [10, 10, 40]}
        regions.append({"filename": f"{index}.png", "regions": [{"shape_attributes": shape}]})
    (folder / "via_region_data.json").write_text(json.dumps({str(i): r for i, r in enumerate(regions)}))
    config = TrainConfig(data=f"via:{folder.parent}", init=str(init), overrides={"IMAGE_MAX_DIM": 64})
    data = training_data(config)
    architecture = _architecture(config.init)
    settings = model_config(data.kind, data.class_names, None, 1, config.overrides, architecture)
    assert (settings.BACKBONE, settings.BACKBONE_WIDTH, settings.NUM_CLASSES) == ("light", 8, 2)
    lines = []
    model = initial_model(settings, config.init, architecture, log=lines.append)
    text = "\n".join(lines)
    assert "not loading mrcnn_class_logits, mrcnn_bbox_fc, mrcnn_mask" in text and "4 classes, the data 2" in text
    assert "not in model 0" in text
    ours, theirs = model.layers_by_name(), source.layers_by_name()
    for name in ("res2a_branch2a", "fpn_p2", "mrcnn_mask_conv1", "mrcnn_class_conv1"):
        np.testing.assert_array_equal(ours[name].weights[0].numpy(), theirs[name].weights[0].numpy())
    assert ours["mrcnn_class_logits"].kernel.shape[-1] == 2


def test_evaluate_and_inspect_read_a_matterport_file(tmp_path, run_cli):
    """A light-backbone file without a saved config: evaluate reads its widths (the shapes defaults differ);
    inspect takes --config, --set and --class-names as process does."""
    import cv2

    source = MaskRCNN(shapes_config(**TINY_MASKRCNN, IMAGES_PER_GPU=1))
    path = tmp_path / "tiny_shapes.h5"
    write_keras2(path, layer_arrays(source))
    code, out, err = run_cli(
        "evaluate", "maskrcnn", "--data", "shapes", "--weights", path, "--samples", "2", "--no-coco", "--json",
        "--set", "IMAGE_MAX_DIM=64", "--set", "IMAGE_MIN_DIM=64",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out.splitlines()[-1])["images"] == 2
    code, _, err = run_cli("evaluate", "maskrcnn", "--data", "shapes", "--weights", path, "--backbone", "resnet50")
    assert code == 2 and "--backbone resnet50: the weights" in err

    # inspect reads the file with --config and --class-names as process does (here: names that do not fit)
    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), np.full((64, 64, 3), 100, np.uint8))
    settings_file = tmp_path / "config.txt"
    settings_file.write_text("IMAGE_MAX_DIM   64\nIMAGE_MIN_DIM   64\nMEAN_PIXEL      [100. 100. 100.]\n")
    args = ["inspect", "maskrcnn", image, "-o", tmp_path / "p", "--weights", path, "--config", settings_file]
    code, _, err = run_cli(*args, "--class-names", "BG,balloon")
    assert code == 2 and "--class-names gives 2 names (BG, balloon) but the weights" in err
    code, _, err = run_cli(*args, "--set", "IMAGE_MAX_DIM=65")
    assert code == 2 and "IMAGE_MAX_DIM 65 must be a multiple of 64" in err


@pytest.mark.parametrize("model", ["maskrcnn", "unet"])
def test_export_refuses_exclude_before_any_work(tmp_path, run_cli, model):
    out = tmp_path / "model.onnx"
    code, _, err = run_cli("export", model, "-o", out, "--exclude", "mrcnn_mask.*")
    assert code == 2 and "--exclude: export writes the whole model its weights hold" in err
    assert not out.exists() and list(tmp_path.iterdir()) == []
