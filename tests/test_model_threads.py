"""The model contract under --parallel-batches: every runtime and both model packages may be called from two
threads at once, and give each frame what one thread gives it (a TFLite interpreter per thread, OpenVINO an infer
request per thread, one TensorFlow graph run at a time)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from test_formats import tiny_model, write_formats

from streamer.models import ModelConfig, load_model

pytest.importorskip("tf2onnx")
HEIGHT, WIDTH = 270, 480  # a real frame size, not the model's own and not 16:9


def frames(count: int, seed: int) -> np.ndarray:
    from workers.unet.synthetic import road_frames

    rng = np.random.default_rng(seed)
    out = [next(road_frames(int(rng.integers(1000)), WIDTH, HEIGHT, 25, 1))[0] for _ in range(count)]
    return np.stack(out)


def same_from_two_threads(model, batch: int) -> None:
    """Two threads each predict their own batches, many times over; each result equals one thread's."""
    inputs = [frames(batch, seed) for seed in range(3 if batch == 1 else 2)]
    alone = [model.predict(x) for x in inputs]
    got: dict[tuple[int, int], list] = {}
    errors = []

    def run(thread: int):
        try:
            for round_ in range(2):
                for index in range(thread, len(inputs), 2):
                    got[(index, round_)] = model.predict(inputs[index])
        except Exception as error:  # reported below, with the runtime it came from
            errors.append(error)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    for (index, _), predictions in got.items():
        for one, other in zip(alone[index], predictions):
            if one.semantic is not None:
                assert np.array_equal(one.semantic, other.semantic)
            else:
                assert np.array_equal(one.boxes, other.boxes) and np.array_equal(one.class_ids, other.class_ids)
                assert np.allclose(one.scores, other.scores, atol=1e-5) and np.array_equal(one.masks, other.masks)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_formats(tiny_model(), tmp_path_factory.mktemp("threads"))


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("kind,runtime", [("keras", "tf"), ("tflite", "tf"), ("onnx", "onnx"), ("keras", "openvino")])
def test_semantic_runtimes_are_safe_from_two_threads(files, kind, runtime, batch):
    if runtime == "openvino":
        pytest.importorskip("openvino")
    model = load_model(ModelConfig(name="semantic", weights=str(files[kind]), runtime=runtime, batch_size=batch))
    same_from_two_threads(model, batch)


@pytest.mark.parametrize("batch", [1, 4])
def test_the_demo_unet_is_safe_from_two_threads(batch):
    same_from_two_threads(load_model(ModelConfig(name="unet", batch_size=batch)), batch)


@pytest.mark.parametrize("batch", [1, 4])
def test_maskrcnn_is_safe_from_two_threads(batch):
    same_from_two_threads(load_model(ModelConfig(name="maskrcnn", batch_size=batch)), batch)
