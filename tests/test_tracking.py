"""`--track`: ids that persist across frames, colours that follow them, and the same output over Redis."""

import json
import sys
from fractions import Fraction

import av
import numpy as np
import pytest
from media import probe

from streamer.prediction import Prediction
from streamer.tracking import Tracker

SQUARES = "tests.test_tracking:squares"
WIDTH, HEIGHT, SIDE = 160, 96, 16
ROWS = (8, 40, 72)  # each square moves along its own row


def square_positions(index: int) -> list[int]:
    """x of each square in frame `index`: they move at different speeds, two of them leftwards."""
    return [4 + 3 * index, WIDTH - SIDE - 4 - 2 * index, 40 + index]


def make_squares_video(path, frames: int = 24):
    """Three white squares moving over black, lossless, so a stub model can find them exactly."""
    rate = Fraction(25)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv444p"
        video.options = {"crf": "0"}
        video.codec_context.time_base = 1 / rate
        for index in range(frames):
            image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
            for y, x in zip(ROWS, square_positions(index)):
                image[y : y + SIDE, x : x + SIDE] = 255
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    return path


class Squares:
    """Finds the bright squares of a frame, listed in a different order on every frame (so colours chosen
    by index within a frame would change from frame to frame)."""

    name = "squares"
    class_names = ("BG", "square")

    def predict(self, frames: np.ndarray) -> list[Prediction]:
        import cv2

        out = []
        for image in frames:
            count, labels, stats, _ = cv2.connectedComponentsWithStats((image[:, :, 0] > 128).astype(np.uint8))
            order = np.random.default_rng(int(image.sum()) % 1000).permutation(np.arange(1, count))
            masks = (
                np.stack([labels == i for i in order], axis=-1) if len(order) else np.zeros((*labels.shape, 0), bool)
            )
            boxes = np.array([[s[1], s[0], s[1] + s[3], s[0] + s[2]] for s in stats[order]], np.int32).reshape(-1, 4)
            out.append(
                Prediction(
                    masks=masks,
                    class_ids=np.ones(len(order), np.int32),
                    scores=np.full(len(order), 0.9, np.float32),
                    boxes=boxes,
                )
            )
        return out


def squares(config) -> Squares:
    return Squares()


def id_switches(truth_ids_per_frame, track_ids_per_frame) -> int:
    """Times an object's track id differs from the one it had on its previous tracked frame (-1, an
    unconfident detection left untracked, is no id)."""
    last, switches = {}, 0
    for truth, tracks in zip(truth_ids_per_frame, track_ids_per_frame):
        for obj, track in zip(truth, tracks):
            if track < 0:
                continue
            if obj in last and last[obj] != track:
                switches += 1
            last[obj] = track
    return switches


def test_tracker_keeps_one_id_per_shape_on_the_shapes_sample(tmp_path, run_cli):
    """`streamer sample shapes` with its ground truth: every instance id, its masks shuffled on every frame
    and some scored low, keeps one track id."""
    from pycocotools import mask as rle

    video, truth_file = tmp_path / "shapes.mp4", tmp_path / "shapes.json"
    code, _, err = run_cli(
        "sample", "shapes", "-o", video, "--seconds", "2", "--size", "192x128", "--annotations", truth_file, "-q"
    )
    assert code == 0, err
    truth = json.loads(truth_file.read_text())
    frame_of = {image["id"]: image["frame"] for image in truth["images"]}
    by_frame = {}
    for ann in truth["annotations"]:
        by_frame.setdefault(frame_of[ann["image_id"]], []).append(ann)
    tracker, rng = Tracker(), np.random.default_rng(0)
    truth_ids, track_ids = [], []
    for frame in sorted(frame_of.values()):
        anns = [by_frame.get(frame, [])[i] for i in rng.permutation(len(by_frame.get(frame, [])))]
        segments = [dict(a["segmentation"], counts=a["segmentation"]["counts"].encode()) for a in anns]
        masks = rle.decode(segments).astype(bool) if anns else np.zeros((128, 192, 0), bool)
        boxes = [[y, x, y + h, x + w] for x, y, w, h in (map(int, a["bbox"]) for a in anns)]
        shuffled = Prediction(
            masks=masks,
            class_ids=np.array([a["category_id"] for a in anns], np.int32),
            scores=np.where(rng.random(len(anns)) < 0.2, 0.3, 0.9).astype(np.float32),  # some unconfident
            boxes=np.array(boxes, np.int32).reshape(-1, 4),
        )
        track_ids.append(tracker.update(shuffled).tolist())
        truth_ids.append([a["instance"] for a in anns])
    assert sum(len(ids) for ids in truth_ids) > 100
    assert id_switches(truth_ids, track_ids) == 0
    ids_of = {}
    for truth, tracks in zip(truth_ids, track_ids):
        for obj, track in zip(truth, tracks):
            ids_of.setdefault(obj, set()).add(track)
    assert all(len(ids - {-1}) == 1 for ids in ids_of.values()), ids_of  # one id per object, all different
    assert len(set.union(*ids_of.values()) - {-1}) == len(ids_of)
    assert sum(t < 0 for tracks in track_ids for t in tracks) < 5  # unconfident ones are tracked once matched


def test_a_short_occlusion_keeps_the_id():
    tracker = Tracker()
    mask = np.zeros((64, 64, 1), bool)
    ids = []
    for step in range(12):
        if 4 <= step < 8:  # hidden for four frames
            ids.append(tracker.update(Prediction(masks=np.zeros((64, 64, 0), bool), class_ids=np.zeros(0, np.int32))))
            continue
        mask[:] = False
        mask[20:30, 2 + 3 * step : 12 + 3 * step, 0] = True
        ids.append(tracker.update(Prediction(masks=mask.copy(), class_ids=np.ones(1, np.int32))).tolist())
    seen = [i for i in ids if len(i)]
    assert all(i == seen[0] for i in seen), seen


def test_greedy_matching_without_scipy(monkeypatch):
    from streamer.tracking import _assign

    similarity = np.array([[0.1, 0.9, 0.0], [0.8, 0.7, 0.0]])
    assert sorted(_assign(similarity)) == [(0, 1), (1, 0)]
    monkeypatch.setitem(sys.modules, "scipy.optimize", None)  # import fails: the greedy match
    assert sorted(_assign(similarity)) == [(0, 1), (1, 0)]


def test_track_ids_and_colours_persist(tmp_path, run_cli):
    source = make_squares_video(tmp_path / "squares.mkv")
    output, detections = tmp_path / "tracked.mkv", tmp_path / "d.jsonl"
    code, _, err = run_cli(
        "process",
        source,
        "-o",
        output,
        "--model",
        SQUARES,
        "--effect",
        "instances",
        "--track",
        "--detections",
        detections,
        "--batch",
        "3",
        "--pix-fmt",
        "yuv444p",
        "--crf",
        "0",
        "-q",
    )
    assert code == 0, err
    rows = [json.loads(line) for line in detections.read_text().splitlines()]
    assert [row["frame"] for row in rows] == list(range(24))
    truth, tracks = [], []
    for row in rows:
        truth.append([ROWS.index(box[0]) for box in row["boxes"]])  # the object is known by its row
        tracks.append(row["track_ids"])
    assert id_switches(truth, tracks) == 0
    assert len({t for frame in tracks for t in frame}) == 3
    # the colour inside each square (its outline's colour at the left edge) is the same on every frame
    images = probe(output)["images"]
    colours = {obj: [] for obj in range(3)}
    for index, image in enumerate(images):
        for obj, (y, x) in enumerate(zip(ROWS, square_positions(index))):
            colours[obj].append(image[y + SIDE // 2, x + SIDE // 2].astype(int))
    for obj, seen in colours.items():
        assert np.abs(np.array(seen) - seen[0]).max() <= 2, f"square {obj} changed colour"
    assert len({tuple(seen[0]) for seen in colours.values()}) == 3  # and each square has its own


def test_track_needs_a_model_with_instances(tmp_path, run_cli):
    source = make_squares_video(tmp_path / "squares.mkv", frames=2)
    code, _, err = run_cli("process", source, "-o", tmp_path / "o.mp4", "--model", "unet", "--track", "-q")
    assert code == 2
    assert "--track" in err and "unet" in err and "instances" in err


@pytest.mark.timeout(120)
def test_tracked_output_over_redis_equals_the_embedded_one(tmp_path, redis_server, workers, run_cli):
    source = make_squares_video(tmp_path / "squares.mkv", frames=16)
    common = ["--model", SQUARES, "--effect", "instances", "--track", "--pix-fmt", "yuv444p", "--crf", "0", "-q"]
    embedded = tmp_path / "embedded.mkv"
    code, _, err = run_cli("process", source, "-o", embedded, *common, "--detections", tmp_path / "e.jsonl")
    assert code == 0, err
    workers.start(model=SQUARES)
    workers.start(model=SQUARES)
    remote = tmp_path / "redis.mkv"
    code, _, err = run_cli(
        "process", source, "-o", remote, *common, "--redis", redis_server.url, "--detections", tmp_path / "r.jsonl"
    )
    assert code == 0, err
    a, b = probe(embedded), probe(remote)
    assert a["frames"] == b["frames"] == 16
    for left, right in zip(a["images"], b["images"]):
        assert np.array_equal(left, right)
    assert (tmp_path / "e.jsonl").read_text() == (tmp_path / "r.jsonl").read_text()
