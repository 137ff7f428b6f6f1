"""Users' own weights: matterport / Keras 2 HDF5 files read for what they are, settings and class names given
on the command line, and the options travelling to workers."""

import json
import os
from unittest import mock

import av
import h5py
import numpy as np
import pytest
from maskrcnn_helpers import TINY_MASKRCNN
from media import probe

from streamer.errors import StreamerError
from streamer.models import ModelConfig
from workers.maskrcnn.config import Config, shapes_config
from workers.maskrcnn.model import MaskRCNN
from workers.maskrcnn.predictor import saved_settings
from workers.maskrcnn.shapes import render
from workers.maskrcnn.weights import DEMO_WEIGHTS, read_config

# The demo model's settings that its layers do not show: what a user puts in --config for such a file.
SHAPES_YAML = """\
IMAGE_MIN_DIM: 128
IMAGE_MAX_DIM: 128
RPN_ANCHOR_SCALES: [8, 16, 32, 64, 128]
POST_NMS_ROIS_INFERENCE: 100
PRE_NMS_LIMIT: 1000
DETECTION_MAX_INSTANCES: 20
DETECTION_MIN_CONFIDENCE: 0.7
"""


def layer_arrays(model: MaskRCNN) -> dict:
    """{layer: [(weight name, array)]} as Keras 2 save_weights stores them (rpn_model nested)."""
    layers = model.layers_by_name()
    rpn = model.keras_model.rpn
    inner = {layer.name for layer in rpn.layers}
    out = {}
    for name, layer in layers.items():
        if name in inner or not layer.weights:
            continue
        if layer is rpn:
            out[name] = [(f"{part.name}/{v.name}:0", v.numpy()) for part in rpn.layers for v in part.weights]
        else:
            out[name] = [(f"{name}/{v.name}:0", v.numpy()) for v in layer.weights]
    return out


def write_keras2(path, arrays: dict, compression=None) -> None:
    """A Keras 2 HDF5 weights file (matterport's layout): layer_names, one group per layer, weight_names."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [name.encode() for name in arrays] + [b"input_image"]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        f.create_group("input_image").attrs["weight_names"] = []
        for name, weights in arrays.items():
            group = f.create_group(name)
            for wname, array in weights:
                group.create_dataset(wname, data=array, compression=compression)
            group.attrs["weight_names"] = [wname.encode() for wname, _ in weights]


def two_class_file(path) -> None:
    """The demo shapes model cut to classes BG and square, saved in matterport's layout with no config: a
    "balloon" model whose balloons are squares."""
    demo = MaskRCNN(Config.from_dict(read_config(DEMO_WEIGHTS)))
    demo.load_weights(DEMO_WEIGHTS)
    arrays = layer_arrays(demo)
    cut = {
        "mrcnn_class_logits": lambda a: a[..., :2],
        "mrcnn_bbox_fc": lambda a: a[..., :8],
        "mrcnn_mask": lambda a: a[..., :2],
    }
    for name, keep in cut.items():
        arrays[name] = [(wname, keep(array)) for wname, array in arrays[name]]
    write_keras2(path, arrays)


def square_video(path, frames=3, width=160, height=120):
    """Squares (the "balloons") on a grey background; returns the square's pixels of each frame."""
    boxes = []
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv444p"
        stream.options = {"crf": "0"}
        for index in range(frames):
            x, y = 50 + 6 * index, 60
            image, _, _ = render(height, width, (120, 120, 120), [("square", (230, 40, 40), (x, y, 20))])
            boxes.append((slice(y - 16, y + 17), slice(x - 16, x + 17)))
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return boxes


def test_balloon_flow_in_one_command(tmp_path, run_cli):
    weights = tmp_path / "mask_rcnn_balloon.h5"
    two_class_file(weights)
    settings = tmp_path / "balloon.yaml"
    settings.write_text(SHAPES_YAML)
    source = tmp_path / "video.mp4"
    squares = square_video(source)
    output = tmp_path / "splash.mkv"
    code, _, err = run_cli(
        "process",
        source,
        "-o",
        output,
        "--model",
        "maskrcnn",
        "--weights",
        weights,
        "--config",
        settings,
        "--class-names",
        "BG,balloon",
        "--classes",
        "balloon",
        "--effect",
        "splash",
        "--batch",
        "2",
        "--pix-fmt",
        "yuv444p",
        "--crf",
        "0",
        "-q",
    )
    assert code == 0, err
    images = probe(output)["images"]
    assert len(images) == 3
    for image, square in zip(images, squares):
        image = image.astype(int)
        inside = image[square]
        assert (inside[..., 0] - inside[..., 1] > 120).mean() > 0.95  # the balloon keeps its red
        corner = image[:20, :20]
        assert np.abs(corner[..., 0] - corner[..., 1]).max() <= 3  # the rest is grey
    # class names are what --class-names says: another name is refused before any work
    code, _, err = run_cli(
        "process", source, "--model", "maskrcnn", "--weights", weights, "--config", settings, "--classes", "balloon"
    )
    assert code == 2 and "balloon" in err


def resnet_layout(path, depth: int, classes: int) -> None:
    """A matterport-layout file with ResNet-`depth` layer names (tiny arrays: only the head shapes count)."""
    names = ["conv1", "bn_conv1"]
    blocks = {2: "abc", 3: "abcd", 4: "a" + "".join(chr(98 + i) for i in range(5 if depth == 50 else 22)), 5: "abc"}
    for stage, letters in blocks.items():
        for block in letters:
            names += [f"res{stage}{block}_branch2{part}" for part in "abc"]
            names += [f"bn{stage}{block}_branch2{part}" for part in "abc"]
    arrays = {name: [(f"{name}/kernel:0", np.zeros((1, 1, 1, 1), np.float32))] for name in names}
    arrays["fpn_c5p5"] = [("fpn_c5p5/kernel:0", np.zeros((1, 1, 2048, 256), np.float32))]
    arrays["mrcnn_class_conv1"] = [("mrcnn_class_conv1/kernel:0", np.zeros((7, 7, 256, 1024), np.float32))]
    arrays["mrcnn_class_logits"] = [
        ("mrcnn_class_logits/kernel:0", np.zeros((1024, classes), np.float32)),
        ("mrcnn_class_logits/bias:0", np.zeros((classes,), np.float32)),
    ]
    arrays["rpn_model"] = [("rpn_conv_shared/kernel:0", np.zeros((3, 3, 256, 512), np.float32))]
    write_keras2(path, arrays)


def test_architecture_and_classes_are_read_from_the_file(tmp_path):
    balloon = tmp_path / "balloon50.h5"
    resnet_layout(balloon, 50, 2)
    options = ModelConfig(name="maskrcnn", class_names=("BG", "balloon"), settings={"DETECTION_MIN_CONFIDENCE": 0.9})
    config = saved_settings(balloon, options)
    assert config.BACKBONE == "resnet50" and config.NUM_CLASSES == 2
    assert config.class_names == ["BG", "balloon"] and config.DETECTION_MIN_CONFIDENCE == 0.9
    assert config.RPN_CONV_DEPTH == 512 and config.POOL_SIZE == 7 and config.FPN_CLASSIF_FC_LAYERS_SIZE == 1024
    assert config.IMAGE_MAX_DIM == 1024 and config.RESIZE_COMPAT == "matterport"  # matterport's defaults
    assert saved_settings(balloon).class_names == ["BG", "class 1"]

    coco = tmp_path / "coco101.h5"
    resnet_layout(coco, 101, 81)
    config = saved_settings(coco)
    assert config.BACKBONE == "resnet101" and config.NUM_CLASSES == 81 and config.class_names[1] == "person"

    with pytest.raises(StreamerError, match=r"--class-names gives 3 names .* have 2 classes"):
        saved_settings(balloon, ModelConfig(name="maskrcnn", class_names=("BG", "a", "b")))
    with pytest.raises(StreamerError, match="unknown Mask R-CNN config setting 'IMAGE_MAX_DIMS'"):
        saved_settings(balloon, ModelConfig(name="maskrcnn", settings={"IMAGE_MAX_DIMS": 512}))


TINY = dict(
    TINY_MASKRCNN,
    IMAGES_PER_GPU=1,
)


def test_layers_missing_from_the_file_are_an_error(tmp_path):
    source = MaskRCNN(shapes_config(**TINY))
    arrays = layer_arrays(source)
    dropped = ["res5b_branch2a", "bn5b_branch2a", "fpn_p5"]
    for name in dropped:
        del arrays[name]
    path = tmp_path / "partial.h5"
    write_keras2(path, arrays)
    model = MaskRCNN(shapes_config(**TINY))
    with pytest.raises(StreamerError) as info:
        model.load_weights(str(path))
    assert "has no weights for " in str(info.value)
    assert all(name in str(info.value) for name in dropped) and "BACKBONE" in str(info.value)
    report = model.load_weights(str(path), exclude=dropped)  # leaving them as they are is a choice
    assert "res5b_branch2b" in report["loaded"]

    # and the light backbone's sizes are read from such a file
    config = saved_settings(path, ModelConfig(name="maskrcnn", settings={"IMAGE_MAX_DIM": 64, "IMAGE_MIN_DIM": 64}))
    assert (config.BACKBONE, config.BACKBONE_WIDTH, config.NUM_CLASSES) == ("light", 8, 4)
    assert (config.TOP_DOWN_PYRAMID_SIZE, config.MASK_HEAD_DEPTH, config.FPN_CLASSIF_FC_LAYERS_SIZE) == (16, 8, 32)


def test_model_options_parse_and_travel_with_a_job(tmp_path):
    from dataclasses import replace

    from streamer.cli import build_parser
    from streamer.cli.common import model_config
    from streamer.distributed.jobs import JobSpec
    from streamer.job import ProcessConfig

    settings = tmp_path / "settings.yml"
    settings.write_text("IMAGE_MAX_DIM: 512\nRESIZE_COMPAT: matterport\n")
    names = tmp_path / "names.txt"
    names.write_text("BG\nballoon\n\n")
    parser = build_parser()
    args = parser.parse_args(
        ["process", "in.mp4", "--model", "maskrcnn", "--config", str(settings), "--set", "DETECTION_MIN_CONFIDENCE=0.9"]
        + ["--set", "RESIZE_COMPAT=opencv", "--class-names", str(names)]
    )
    model = model_config(args)
    assert model.class_names == ("BG", "balloon") and model.config_file == str(settings)
    assert model.all_settings() == {"IMAGE_MAX_DIM": 512, "RESIZE_COMPAT": "opencv", "DETECTION_MIN_CONFIDENCE": 0.9}

    assert spawned(model) == model  # a spawned worker serves the model it was handed, every field of it

    spec = JobSpec.of(ProcessConfig(input="in.mp4", model=replace(model, weights="/w.h5")))
    again = JobSpec.from_json(spec.to_json()).job.model
    assert (again.weights, again.settings, again.class_names) == ("/w.h5", model.all_settings(), ("BG", "balloon"))
    assert again.config_file is None  # its settings travelled, not the path of a file on this machine

    for bad, message in (
        (["--set", "NOEQUALS"], "write KEY=VALUE"),
        (["--class-names", "BG"], "at least two names"),
        (["--config", str(tmp_path / "missing.yaml")], "no such file"),
    ):
        with pytest.raises(StreamerError, match=message):
            model_config(parser.parse_args(["process", "in.mp4"] + bad))
    broken = tmp_path / "broken.json"
    broken.write_text("[1, 2]")
    with pytest.raises(StreamerError, match="mapping"):
        model_config(parser.parse_args(["process", "in.mp4", "--config", str(broken)]))


def spawned(model: ModelConfig) -> ModelConfig:
    """The model a worker started by `process --workers N` reads from what it is handed (and its command line
    holds no model flag, and no password)."""
    from streamer.distributed.connection import RedisConfig
    from streamer.distributed.spawn import MODEL_VARIABLE, spawned_model, worker_command, worker_environment

    redis = RedisConfig(url="redis://:hunter2@localhost:1/0")
    command = worker_command(redis)
    assert "hunter2" not in " ".join(command) and not {"--model", "--weights", "--set"} & set(command)
    with mock.patch.dict(os.environ, {MODEL_VARIABLE: worker_environment(model, redis)[MODEL_VARIABLE]}):
        return spawned_model()


def test_submit_puts_the_model_options_in_the_job(tmp_path, redis_server, run_cli):
    from streamer.distributed.connection import Keys, RedisConfig, connect
    from streamer.distributed.jobs import JobStore

    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"IMAGE_MAX_DIM": 256}))
    code, out, err = run_cli(
        "submit",
        tmp_path / "in.mp4",
        "-o",
        tmp_path / "out.mp4",
        "--model",
        "maskrcnn",
        "--weights",
        "/models/balloon.h5",
        "--config",
        settings,
        "--set",
        "DETECTION_MIN_CONFIDENCE=0.9",
        "--class-names",
        "BG,balloon",
        "--redis",
        redis_server.url,
    )
    assert code == 0, err
    config = RedisConfig(url=redis_server.url)
    model = JobStore(connect(config), Keys(config.namespace)).spec(out.strip()).job.model
    assert model.weights == "/models/balloon.h5" and model.class_names == ("BG", "balloon")
    assert model.settings == {"IMAGE_MAX_DIM": 256, "DETECTION_MIN_CONFIDENCE": 0.9} and model.config_file is None


def test_gpu_memory_options_parse_and_set_up_without_a_gpu():
    from streamer.cli import build_parser
    from streamer.cli.common import model_config
    from workers.predictor import configure_gpus
    from workers.unet.predictor import UNetPredictor

    parser = build_parser()
    model = model_config(parser.parse_args(["process", "in.mp4", "--gpu-memory-limit", "2048"]))
    assert model.gpu_memory_limit == 2048
    worker = parser.parse_args(["worker", "--redis", "redis://x:1/0", "--gpu-memory-limit", "1024"])
    assert worker.gpu_memory_limit == 1024
    with pytest.raises(StreamerError, match="--gpu-memory-limit 0"):
        model_config(parser.parse_args(["process", "in.mp4", "--gpu-memory-limit", "0"]))
    assert configure_gpus(2048) == [] and configure_gpus(None) == []  # no GPU here: nothing to set, no error
    predictor = UNetPredictor(ModelConfig(name="unet", gpu_memory_limit=512, batch_size=1))
    assert predictor.predict(np.zeros((1, 32, 48, 3), np.uint8))[0].semantic.shape == (32, 48)


def test_evaluate_takes_a_config_file(tmp_path):
    from streamer.cli import build_parser
    from workers.maskrcnn.cli import evaluate_config

    settings = tmp_path / "c.yaml"
    settings.write_text("IMAGE_MAX_DIM: 256\nDETECTION_MIN_CONFIDENCE: 0.8\nBATCH_SIZE: 2\n")
    args = build_parser().parse_args(
        ["evaluate", "maskrcnn", "--data", "shapes", "--config", str(settings), "--set", "IMAGE_MAX_DIM=128"]
    )
    assert evaluate_config(args).overrides == {"IMAGE_MAX_DIM": 128, "DETECTION_MIN_CONFIDENCE": 0.8}


def test_a_resnet50_file_is_not_loaded_into_a_resnet101_model(tmp_path):
    model = MaskRCNN(shapes_config(**{**TINY, "BACKBONE": "resnet101"}))
    arrays = {
        name: [(wname, np.zeros(array.shape, np.float32)) for wname, array in weights]
        for name, weights in layer_arrays(model).items()
        if not any(name.startswith(f"{kind}4{chr(98 + i)}_") for kind in ("res", "bn") for i in range(5, 22))
    }
    path = tmp_path / "resnet50.h5"
    write_keras2(path, arrays, compression="gzip")  # zeros: small on disk
    before = model.layers_by_name()["res4g_branch2a"].kernel.numpy().copy()
    with pytest.raises(StreamerError) as info:
        model.load_weights(str(path))
    message = str(info.value)
    assert "res4g_branch2a" in message and "(102 layers in all)" in message and "BACKBONE=resnet50" in message
    np.testing.assert_array_equal(model.layers_by_name()["res4g_branch2a"].kernel.numpy(), before)  # nothing loaded
    assert saved_settings(path).BACKBONE == "resnet50"  # read from the file, it is built right in the first place


def test_a_spawned_worker_serves_the_model_it_was_handed_and_needs_what_that_model_needs():
    from streamer.cli import build_parser
    from streamer.cli.needs import needed
    from streamer.distributed.spawn import MODEL_VARIABLE, spawned_model

    model = ModelConfig(name="semantic", weights="/m/road.onnx", batch_size=3, threshold=0.7, threads=1)
    assert spawned(model) == model
    args = build_parser().parse_args(["worker", "--redis", "redis://localhost:1/0"])  # no model flag at all
    with mock.patch.dict(os.environ, {MODEL_VARIABLE: '{"name":"semantic","weights":"/m/road.onnx"}'}):
        assert needed(args) == ("onnxruntime",)  # not TensorFlow: a TensorFlow-free image runs it
    assert needed(args) == ("tensorflow", "keras", "h5py")  # started by hand: the default unet
    for bad in ('{"batch_size": "4"}', "not json", '{"name": "no-such-model"}'):
        with mock.patch.dict(os.environ, {MODEL_VARIABLE: bad}), pytest.raises(StreamerError, match=MODEL_VARIABLE):
            spawned_model()


def test_precision_travels_to_spawned_workers():
    from streamer.cli import build_parser
    from streamer.cli.common import model_config

    parser = build_parser()
    model = model_config(parser.parse_args(["process", "in.mp4", "--model", "unet", "--precision", "f32"]))
    assert spawned(model).precision == "f32"


def test_threads_parse_and_travel_to_spawned_workers():
    from streamer.cli import build_parser
    from streamer.cli.common import model_config

    parser = build_parser()
    model = model_config(parser.parse_args(["process", "in.mp4", "--threads", "2"]))
    assert model.threads == 2 and spawned(model).threads == 2
    with pytest.raises(StreamerError, match="--threads 0: must be at least 1"):
        model_config(parser.parse_args(["process", "in.mp4", "--threads", "0"]))


@pytest.mark.parametrize(
    "options, batch",
    [
        ({}, 4),
        ({"weights": "/m/road.keras"}, 4),
        ({"weights": "/m/road.onnx"}, 2),
        ({"weights": "/m/ROAD.XML"}, 2),
        ({"weights": "https://models.example/road.onnx?token=x"}, 2),
        ({"weights": "/m/road.keras", "runtime": "openvino"}, 2),
        ({"weights": "/m/road.onnx", "batch_size": 8}, 8),
        ({"batch_size": 1}, 1),
    ],
)
def test_the_default_batch_follows_the_runtime_and_travels_as_a_number(options, batch):
    from streamer import typed_json

    model = ModelConfig(name="semantic", **options)
    assert model.batch_size == batch
    assert typed_json.loads(ModelConfig, typed_json.dumps(model)) == model  # the number travels, not "default"
