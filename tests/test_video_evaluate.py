"""`streamer evaluate MODEL --data video:VIDEO:ANNOTATIONS.json`: scoring a model on a rendered video."""

import json

import numpy as np
import pytest

from streamer.prediction import Prediction
from workers.maskrcnn.shapes import shapes_video
from workers.unet.synthetic import road_frames


@pytest.fixture(scope="module")
def shapes_sample(tmp_path_factory):
    from streamer.cli import main

    folder = tmp_path_factory.mktemp("shapes")
    video, truth = folder / "shapes.mp4", folder / "shapes.json"
    args = ["sample", "shapes", "-o", video, "--seconds", "0.2", "--size", "256x192", "--seed", "2", "-q"]
    assert main([str(a) for a in [*args, "--annotations", truth]]) == 0
    return video, truth


@pytest.fixture(scope="module")
def road_sample(tmp_path_factory):
    from streamer.cli import main

    folder = tmp_path_factory.mktemp("road")
    video, truth = folder / "road.mp4", folder / "road.json"
    args = ["sample", "road", "-o", video, "--seconds", "0.2", "--size", "192x128", "--seed", "5", "-q"]
    assert main([str(a) for a in [*args, "--annotations", truth]]) == 0
    return video, truth


class Replay:
    """Answers with the rendered ground truth, frame after frame, after checking that the frame it is given
    is that rendered frame (through the encoder)."""

    name = "replay"

    def __init__(self, frames, drop_last=False):
        self.frames = iter(frames)
        self.drop_last = drop_last
        self.seen = 0

    def predict(self, images):
        out = []
        for image in images:
            rendered, prediction = next(self.frames)
            assert np.abs(image.astype(int) - rendered).mean() < 6  # the same frame, not a neighbour
            if self.drop_last and prediction.masks is not None and prediction.masks.shape[-1]:
                prediction = Prediction(
                    masks=prediction.masks[:, :, :-1],
                    class_ids=prediction.class_ids[:-1],
                    scores=prediction.scores[:-1],
                    boxes=prediction.boxes[:-1],
                )
            out.append(prediction)
            self.seen += 1
        return out


def test_maskrcnn_scores_the_video_frames_against_their_annotations(shapes_sample):
    from workers.maskrcnn.config import EvaluateConfig
    from workers.maskrcnn.evaluate import evaluate

    video, truth = shapes_sample
    config = EvaluateConfig(data=f"video:{video}:{truth}", batch_size=2)
    frames = [(image, gt) for image, gt, _ in shapes_video(2, 256, 192, 30.0, 6)]
    perfect = evaluate(config, model=Replay(frames))
    assert len(perfect.aps) == 6 and perfect.mean == 1.0 and perfect.coco_ap50 == pytest.approx(1.0)
    missing = evaluate(config, model=Replay(frames, drop_last=True))
    assert 0.3 < missing.mean < 1.0 and missing.coco_ap50 < 1.0


class CountingContainer:
    """An opened input whose decoded frames are counted."""

    decoded = 0

    def __init__(self, container):
        self.container = container

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self.container.__exit__(*exc)

    def __getattr__(self, name):
        return getattr(self.container, name)

    def decode(self, *args, **kwargs):
        for frame in self.container.decode(*args, **kwargs):
            CountingContainer.decoded += 1
            yield frame


@pytest.mark.parametrize("batch_size,samples", [(1, None), (2, None), (4, 5), (3, 2)])
def test_maskrcnn_evaluation_decodes_each_frame_once(shapes_sample, monkeypatch, batch_size, samples):
    """Each frame's image and masks are read together: the video is decoded once, whatever the batch size."""
    import av

    from workers.maskrcnn.config import EvaluateConfig
    from workers.maskrcnn.evaluate import evaluate

    opened = av.open
    monkeypatch.setattr(av, "open", lambda *args, **kwargs: CountingContainer(opened(*args, **kwargs)))
    monkeypatch.setattr(CountingContainer, "decoded", 0)
    video, truth = shapes_sample
    config = EvaluateConfig(data=f"video:{video}:{truth}", batch_size=batch_size, samples=samples)
    frames = [(image, gt) for image, gt, _ in shapes_video(2, 256, 192, 30.0, 6)]
    seen = []
    result = evaluate(config, model=Replay(frames), progress=lambda done, total: seen.append((done, total)))
    count = samples or 6
    assert len(result.aps) == count and result.mean == 1.0
    assert CountingContainer.decoded == count  # frames past the last one wanted are not decoded either
    assert seen[-1] == (count, count) and len(seen) == -(-count // batch_size)
    assert result.elapsed >= result.seconds > 0 and result.to_dict()["elapsed_s"] == round(result.elapsed, 3)


def test_unet_scores_the_video_frames_against_their_annotations(road_sample):
    from workers.unet.config import EvaluateConfig
    from workers.unet.evaluate import evaluate

    video, truth = road_sample
    frames = [(image, Prediction(semantic=mask)) for image, mask in road_frames(5, 192, 128, 30.0, 6)]
    result = evaluate(EvaluateConfig(data=f"video:{video}:{truth}", batch_size=4), model=Replay(frames))
    assert result.names == [f"frame_{i:06d}.png" for i in range(6)] and result.mean == 1.0
    shifted = [(image, Prediction(semantic=np.roll(p.semantic, 20, axis=0))) for image, p in frames]
    worse = evaluate(EvaluateConfig(data=f"video:{video}:{truth}", samples=3), model=Replay(shifted))
    assert len(worse.ious) == 3 and worse.mean < 0.95


def test_evaluate_cli_on_a_video(run_cli, shapes_sample, road_sample, monkeypatch):
    monkeypatch.setenv("STREAMER_PROGRESS_EVERY", "0")  # every step's line, however short
    video, truth = road_sample
    code, out, err = run_cli("evaluate", "unet", "--data", f"video:{video}:{truth}", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["count"] == 6 and 0.5 < report["mean_iou"] <= 1.0  # the demo weights find most of the road
    video, truth = shapes_sample
    code, out, err = run_cli("evaluate", "maskrcnn", "--data", f"video:{video}:{truth}", "--samples", "2", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["images"] == 2 and 0.0 <= report["mAP"] <= 1.0 and "coco_mask_AP50" in report
    assert report["elapsed_s"] >= report["inference_s"] > 0
    assert "streamer: loading model maskrcnn" in err and "streamer: evaluating" in err  # phases, on stderr


def test_video_data_mistakes_are_one_line_errors(run_cli, shapes_sample, tmp_path):
    video, truth = shapes_sample
    code, _, err = run_cli("evaluate", "maskrcnn", "--data", f"video:{video}")
    assert code == 2 and "video:VIDEO:ANNOTATIONS.json" in err
    code, _, err = run_cli("evaluate", "unet", "--data", f"video:{video}:{tmp_path / 'none.json'}")
    assert code == 2 and "none.json" in err and "Traceback" not in err
    (tmp_path / "bad.json").write_text('{"images": 3}')
    code, _, err = run_cli("evaluate", "maskrcnn", "--data", f"video:{video}:{tmp_path / 'bad.json'}")
    assert code == 2 and "bad.json" in err
    code, _, err = run_cli("train", "unet", "--data", f"video:{video}:{truth}", "--out", tmp_path / "run")
    assert code == 2 and "evaluate" in err


def test_shapes_video_training_frames_look_like_the_sample():
    from workers.maskrcnn.config import TrainConfig
    from workers.maskrcnn.data import training_data
    from workers.maskrcnn.shapes import VIDEO_SIZES, VideoFramesDataset, _frame, _scenes

    data = training_data(TrainConfig(data="shapes-video", samples=12, seed=2))
    assert data.kind == "shapes" and data.class_names == ["BG", "square", "circle", "triangle"]
    dataset = data.train
    assert isinstance(dataset, VideoFramesDataset) and len(dataset.image_ids) == 12
    kinds = set()
    for image_id in dataset.image_ids:
        info = dataset.image_info[image_id]
        image = dataset.load_image(image_id)
        masks, class_ids = dataset.load_mask(image_id)
        assert masks.shape[:2] == image.shape[:2] and masks.reshape(-1, masks.shape[-1]).any(axis=0).all()
        if isinstance(info["scene"], tuple):  # one of the single 128×128 images
            kinds.add("single")
            assert image.shape == (128, 128, 3) and 1 <= len(class_ids) <= 4
            continue
        kinds.add("frame")
        assert (image.shape[1], image.shape[0]) in VIDEO_SIZES and 1 <= len(class_ids) <= 6
        *_, (scene, _) = _scenes(info["scene"], info["width"], info["height"], 30.0, info["index"] + 1)
        raw, truth, _ = _frame(info["height"], info["width"], *scene)
        difference = np.abs(image.astype(int) - raw)
        assert 0 < difference.mean() < 4  # through the encoder: changed, but only by its artefacts
        assert np.array_equal(truth.masks, masks)
    assert kinds == {"single", "frame"}
