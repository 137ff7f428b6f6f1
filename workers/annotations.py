"""Ground truth of a rendered video as COCO json, and reading a video back with it.

`VideoAnnotations` collects, frame by frame, one annotation per visible object: an RLE `segmentation`
(pycocotools), `bbox` [x, y, w, h], `area`, `category_id` and an `instance` id that stays the same for one
object across frames. Each frame is one `images` entry with `id` (frame + 1), `frame` (its index in the
video), `width`, `height` and `file_name` (frame_000000.png, …).

`read_video_annotations(video, annotations)` decodes the video in order and yields each annotated frame
with its annotations: `VideoFrames` gives both model packages the same view of a `video:` data set.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

import numpy as np

from streamer.errors import StreamerError


def frame_name(index: int) -> str:
    return f"frame_{index:06d}.png"


class VideoAnnotations:
    """COCO json for a video: `add(index, masks, class_ids, instances)` per frame, then `to_dict()`."""

    def __init__(self, categories: list[str], width: int, height: int, info: dict | None = None) -> None:
        self.categories = [{"id": i, "name": name} for i, name in enumerate(categories, start=1)]
        self.width, self.height = int(width), int(height)
        self.info = dict(info or {})
        self.images: list[dict] = []
        self.annotations: list[dict] = []

    def add(self, index: int, masks: np.ndarray, class_ids, instances) -> None:
        """Frame `index` with masks bool H×W×N, their class ids [N] and instance ids [N]; empty masks are skipped."""
        from pycocotools import mask as mask_utils

        image_id = int(index) + 1
        self.images.append(
            {
                "id": image_id,
                "frame": int(index),
                "width": self.width,
                "height": self.height,
                "file_name": frame_name(index),
            }
        )
        masks = np.asarray(masks)
        if masks.ndim == 2:
            masks = masks[:, :, None]
        for i, (category, instance) in enumerate(zip(np.asarray(class_ids).tolist(), np.asarray(instances).tolist())):
            mask = np.asfortranarray(masks[:, :, i].astype(np.uint8))
            if not mask.any():
                continue
            rle = mask_utils.encode(mask)
            area = float(mask_utils.area(rle))
            bbox = [float(v) for v in mask_utils.toBbox(rle)]
            rle["counts"] = rle["counts"].decode("ascii")
            self.annotations.append(
                {
                    "id": len(self.annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(category),
                    "instance": int(instance),
                    "segmentation": rle,
                    "bbox": bbox,
                    "area": area,
                    "iscrowd": 0,
                }
            )

    def to_dict(self) -> dict:
        return {
            "info": self.info,
            "images": self.images,
            "annotations": self.annotations,
            "categories": self.categories,
        }


class AnnotatedFrame:
    """One decoded frame (RGB uint8 H×W×3) with its ground truth: `rles` (COCO run-length encodings, as
    stored), `class_ids` and `instances` (int32 [N]); `masks` (bool H×W×N) are decoded from the RLEs when first
    read, so a reader that compares RLEs decodes none."""

    def __init__(self, index: int, name: str, image: np.ndarray, annotations: list[dict]) -> None:
        self.index, self.name, self.image = index, name, image
        self.rles = [_rle(annotation["segmentation"]) for annotation in annotations]
        self.class_ids = np.array([int(a["category_id"]) for a in annotations], np.int32)
        self.instances = np.array([int(a.get("instance", a["id"])) for a in annotations], np.int32)

    @cached_property
    def masks(self) -> np.ndarray:
        from pycocotools import mask as mask_utils

        height, width = self.image.shape[:2]
        if not self.rles:
            return np.zeros((height, width, 0), bool)
        return mask_utils.decode([dict(rle, counts=rle["counts"].encode("ascii")) for rle in self.rles]).astype(bool)


def _rle(segmentation: dict) -> dict:
    """An annotation's RLE with its counts as text (pycocotools' JSON form)."""
    counts = segmentation["counts"]
    return {
        "size": list(segmentation["size"]),
        "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts,
    }


def load_annotations(path: str | Path) -> dict:
    """The COCO json written by `streamer sample … --annotations`, checked for what the readers need."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        images = data["images"]
        for entry in images:
            int(entry["frame"]), int(entry["id"]), int(entry["width"]), int(entry["height"])
        categories = {int(c["id"]): str(c["name"]) for c in data["categories"]}
        data.setdefault("annotations", [])
    except FileNotFoundError:
        raise StreamerError(f"annotations {path}: no such file") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise StreamerError(
            f"annotations {path}: not a video COCO file ({error}); write one with `streamer sample … --annotations`"
        ) from None
    if not categories:
        raise StreamerError(f"annotations {path}: no categories")
    return data


def class_names(data: dict) -> list[str]:
    """BG, then the category names in id order (ids must be 1..N)."""
    categories = {int(c["id"]): str(c["name"]) for c in data["categories"]}
    if sorted(categories) != list(range(1, len(categories) + 1)):
        raise StreamerError(f"annotations: category ids {sorted(categories)} must be 1..{len(categories)}")
    return ["BG", *(categories[i] for i in range(1, len(categories) + 1))]


class VideoFrames:
    """The annotated frames of `video`, in order (the first `limit` of them when given)."""

    def __init__(self, video: str | Path, annotations: str | Path, limit: int | None = None) -> None:
        self.video = Path(video)
        if not self.video.is_file():
            raise StreamerError(f"video {video}: no such file")
        self.data = load_annotations(annotations)
        self.class_names = class_names(self.data)
        images = sorted(self.data["images"], key=lambda entry: int(entry["frame"]))
        self.images = images if limit is None else images[: max(0, int(limit))]
        self.by_image: dict[int, list[dict]] = {}
        for annotation in self.data["annotations"]:
            self.by_image.setdefault(int(annotation["image_id"]), []).append(annotation)

    def __len__(self) -> int:
        return len(self.images)

    def frame(self, position: int) -> AnnotatedFrame:
        """The `position`-th annotated frame: decoded in order, so reading them in order decodes the video once."""
        last = getattr(self, "_last", None)
        if last is not None and last[0] == position:
            return last[1]
        cursor = getattr(self, "_cursor", None)
        if cursor is None or cursor[0] > position:
            cursor = self._cursor = [0, iter(self)]
        while True:
            item = next(cursor[1], None)
            if item is None:
                self._cursor = None
                raise StreamerError(f"video {self.video}: no annotated frame {position}")
            cursor[0] += 1
            if cursor[0] - 1 == position:
                self._last = (position, item)
                return item

    def __iter__(self) -> Iterator[AnnotatedFrame]:
        import av

        wanted = iter(self.images)
        entry = next(wanted, None)
        if entry is None:
            return
        try:
            container = av.open(str(self.video), timeout=30.0)
        except (av.FFmpegError, OSError) as error:
            raise StreamerError(f"video {self.video}: cannot be opened ({error})") from None
        with container:
            for index, frame in enumerate(container.decode(video=0)):
                while entry is not None and int(entry["frame"]) < index:
                    entry = next(wanted, None)  # annotated but not in the video: missing frames are caught below
                if entry is None:
                    return
                if int(entry["frame"]) != index:
                    continue
                image = frame.to_ndarray(format="rgb24")
                if image.shape[:2] != (int(entry["height"]), int(entry["width"])):
                    raise StreamerError(
                        f"video {self.video}: frame {index} is {image.shape[1]}x{image.shape[0]}, the annotations "
                        f"say {entry['width']}x{entry['height']}: give the video the annotations were written for"
                    )
                yield AnnotatedFrame(index, entry["file_name"], image, self.by_image.get(int(entry["id"]), []))
                entry = next(wanted, None)
                if entry is None:
                    return
        raise StreamerError(
            f"video {self.video} ends before annotated frame {entry['frame']}: give the video the annotations "
            "were written for"
        )


def parse_video_spec(spec: str, help_text: str) -> tuple[str, str]:
    """'video:VIDEO:ANNOTATIONS.json' → (VIDEO, ANNOTATIONS.json)."""
    rest = str(spec)[len("video:") :]
    video, sep, annotations = rest.rpartition(":")
    if not sep or not video or not annotations:
        raise StreamerError(f"--data {spec!r}: write video:VIDEO:ANNOTATIONS.json ({help_text})")
    return video, annotations
