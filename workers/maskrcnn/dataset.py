"""matterport's `Dataset` API: add_class / add_image / prepare / load_image / load_mask."""

from __future__ import annotations

import copy
import os

import numpy as np

from streamer.errors import StreamerError


class Dataset:
    """Base class: subclasses add classes and images, and override load_mask (and maybe load_image).

    After `prepare()`: image_ids, num_images, class_ids, class_names, num_classes, sources,
    source_class_ids, and map_source_class_id("source.id") → internal class id."""

    def __init__(self, class_map=None):
        self._image_ids = []
        self.image_info = []
        self.class_info = [{"source": "", "id": 0, "name": "BG"}]
        self.source_class_ids = {}

    def add_class(self, source, class_id, class_name):
        if "." in source:
            raise StreamerError(f"dataset source name {source!r} must not contain a dot")
        for info in self.class_info:
            if info["source"] == source and info["id"] == class_id:
                return
        self.class_info.append({"source": source, "id": class_id, "name": class_name})

    def add_image(self, source, image_id, path, **kwargs):
        info = {"id": image_id, "source": source, "path": path}
        info.update(kwargs)
        self.image_info.append(info)

    def image_reference(self, image_id):
        return self.image_info[image_id].get("path", "")

    def prepare(self, class_map=None):
        def clean_name(name):
            return ",".join(str(name).split(",")[:1])

        self.num_classes = len(self.class_info)
        self.class_ids = np.arange(self.num_classes)
        self.class_names = [clean_name(c["name"]) for c in self.class_info]
        self.num_images = len(self.image_info)
        self._image_ids = np.arange(self.num_images)
        self.class_from_source_map = {
            f"{info['source']}.{info['id']}": cid for info, cid in zip(self.class_info, self.class_ids)
        }
        self.image_from_source_map = {
            f"{info['source']}.{info['id']}": iid for info, iid in zip(self.image_info, self.image_ids)
        }
        self.sources = sorted({c["source"] for c in self.class_info})
        self.source_class_ids = {}
        for source in self.sources:
            self.source_class_ids[source] = [
                i for i, info in enumerate(self.class_info) if i == 0 or source == info["source"]
            ]

    def map_source_class_id(self, source_class_id):
        """ "coco.12" → internal class id."""
        return self.class_from_source_map[source_class_id]

    def get_source_class_id(self, class_id, source):
        info = self.class_info[class_id]
        if info["source"] != source:
            raise StreamerError(f"class {class_id} belongs to source {info['source']!r}, not {source!r}")
        return info["id"]

    def subset(self, image_ids) -> "Dataset":
        """A prepared copy holding only the given images (same classes)."""
        other = copy.copy(self)
        other.image_info = [self.image_info[i] for i in image_ids]
        other.class_info = list(self.class_info)
        other.prepare()
        return other

    def split(self, fraction: float, seed: int = 0):
        """→ (train, val): a random `fraction` of the images (at least one) held out."""
        ids = np.random.RandomState(seed).permutation(len(self.image_info))
        count = min(len(ids) - 1, max(1, int(round(len(ids) * fraction)))) if len(ids) > 1 else 0
        if count == 0:
            return self.subset(ids), self.subset(ids)
        return self.subset(sorted(ids[count:])), self.subset(sorted(ids[:count]))

    @property
    def image_ids(self):
        return self._image_ids

    def source_image_link(self, image_id):
        return self.image_info[image_id]["path"]

    def load_image(self, image_id) -> np.ndarray:
        """RGB uint8 [H,W,3]."""
        return read_rgb(self.image_info[image_id]["path"])

    def load_mask(self, image_id):
        """bool [H,W,N] masks and int32 [N] class ids (negative = crowd). Override."""
        return np.empty([0, 0, 0], dtype=bool), np.empty([0], dtype=np.int32)


def read_rgb(path) -> np.ndarray:
    import cv2

    if not os.path.isfile(path):
        raise StreamerError(f"image {path} does not exist: fix the path in the annotations or add the file")
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise StreamerError(
            f"image {path} cannot be decoded: replace it with a JPEG/PNG or drop it from the annotations"
        )
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.shape[-1] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    else:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.dtype != np.uint8:
        image = (image / max(1, image.max()) * 255).astype(np.uint8)
    return image


def image_size(path) -> tuple[int, int]:
    """(height, width) from the file header (no full decode)."""
    from PIL import Image

    if not os.path.isfile(path):
        raise StreamerError(f"image {path} does not exist: fix the path in the annotations or add the file")
    try:
        with Image.open(path) as im:
            return im.height, im.width
    except Exception as error:  # PIL raises several types for broken files
        raise StreamerError(f"image {path} cannot be read ({error}): replace or remove it") from None
