"""COCO-format loader (instances json + image folder) via pycocotools: polygons, RLE, crowds.

Crowd annotations get negative class ids (matterport), so training ignores anchors and ROIs
on them and evaluation treats them as COCO does."""

from __future__ import annotations

import importlib
import json
import os

import numpy as np

from streamer.errors import StreamerError

from .dataset import Dataset

TOLERANCE = 1.0


def _check_polygons(segmentation, width, height, where):
    if not segmentation:
        raise StreamerError(f"{where}: empty segmentation: remove the annotation or draw its polygon")
    for polygon in segmentation:
        if not isinstance(polygon, list) or len(polygon) < 6 or len(polygon) % 2:
            raise StreamerError(f"{where}: a polygon must be a flat list [x1, y1, x2, y2, …] of ≥ 3 points")
        try:
            xs = np.array(polygon[0::2], dtype=np.float64)
            ys = np.array(polygon[1::2], dtype=np.float64)
        except (TypeError, ValueError):
            raise StreamerError(f"{where}: polygon coordinates must be numbers") from None
        if (
            xs.min() < -TOLERANCE
            or ys.min() < -TOLERANCE
            or xs.max() > width + TOLERANCE
            or ys.max() > height + TOLERANCE
        ):
            raise StreamerError(
                f"{where}: polygon reaches ({xs.min():g}..{xs.max():g}, {ys.min():g}..{ys.max():g}) outside the "
                f"{width}×{height} image: fix the polygon or the image size"
            )


class CocoDataset(Dataset):
    def load_coco(self, annotations, images_dir, class_ids=None):
        importlib.import_module("pycocotools.mask")  # fails here, before any work, if it is missing

        if not os.path.isfile(annotations):
            raise StreamerError(f"COCO annotations {annotations} not found: give coco:ANNOTATIONS.json:IMAGES_DIR")
        if not os.path.isdir(images_dir):
            raise StreamerError(f"COCO images folder {images_dir} not found: give coco:ANNOTATIONS.json:IMAGES_DIR")
        try:
            with open(annotations, encoding="utf8") as f:
                data = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise StreamerError(f"COCO annotations {annotations} are not valid JSON ({error})") from None
        if not isinstance(data, dict) or not all(
            isinstance(data.get(k), list) for k in ("images", "annotations", "categories")
        ):
            raise StreamerError(
                f"COCO annotations {annotations} have the wrong shape: expected an object with lists "
                "'images', 'annotations' and 'categories' (COCO instances format)"
            )
        categories = {}
        for i, cat in enumerate(data["categories"]):
            if not isinstance(cat, dict) or "id" not in cat or "name" not in cat:
                raise StreamerError(f"{annotations} categories[{i}]: needs 'id' and 'name'")
            categories[cat["id"]] = cat["name"]
        images = {}
        for i, im in enumerate(data["images"]):
            if not isinstance(im, dict) or not all(k in im for k in ("id", "file_name", "width", "height")):
                raise StreamerError(f"{annotations} images[{i}]: needs 'id', 'file_name', 'width' and 'height'")
            images[im["id"]] = im
        per_image = {}
        for i, ann in enumerate(data["annotations"]):
            where = f"{annotations} annotations[{i}]"
            if not isinstance(ann, dict) or not all(k in ann for k in ("image_id", "category_id", "segmentation")):
                raise StreamerError(f"{where}: needs 'image_id', 'category_id' and 'segmentation'")
            where += f" (id {ann.get('id', '?')}, image {ann['image_id']})"
            image = images.get(ann["image_id"])
            if image is None:
                raise StreamerError(f"{where}: image_id {ann['image_id']} is not in 'images'")
            if ann["category_id"] not in categories:
                raise StreamerError(f"{where}: category_id {ann['category_id']} is not in 'categories'")
            if class_ids and ann["category_id"] not in class_ids:
                continue
            segmentation = ann["segmentation"]
            if isinstance(segmentation, list):
                _check_polygons(segmentation, image["width"], image["height"], where)
            elif isinstance(segmentation, dict):
                if "counts" not in segmentation or "size" not in segmentation:
                    raise StreamerError(f"{where}: an RLE segmentation needs 'counts' and 'size'")
                if list(segmentation["size"]) != [image["height"], image["width"]]:
                    raise StreamerError(
                        f"{where}: RLE size {segmentation['size']} ≠ image size [{image['height']}, {image['width']}]"
                    )
            else:
                raise StreamerError(f"{where}: segmentation must be polygons (list) or RLE (object)")
            per_image.setdefault(ann["image_id"], []).append(ann)
        if not per_image:
            raise StreamerError(
                f"COCO annotations {annotations} contain no annotations: nothing to train or evaluate on"
            )
        used = (
            sorted({a["category_id"] for anns in per_image.values() for a in anns})
            if class_ids is None
            else sorted(class_ids)
        )
        for cid in sorted(categories) if class_ids is None else used:
            self.add_class("coco", cid, categories[cid])
        for image_id in sorted(per_image, key=lambda k: str(k)):
            image = images[image_id]
            path = os.path.join(images_dir, image["file_name"])
            if not os.path.isfile(path):
                raise StreamerError(
                    f"{annotations} image id {image_id}: file {path} does not exist: add it or remove the entry"
                )
            self.add_image(
                "coco", image_id, path, width=image["width"], height=image["height"], annotations=per_image[image_id]
            )
        return self

    def load_mask(self, image_id):
        from pycocotools import mask as mask_utils

        info = self.image_info[image_id]
        h, w = info["height"], info["width"]
        masks, class_ids = [], []
        for ann in info["annotations"]:
            class_id = self.map_source_class_id(f"coco.{ann['category_id']}")
            segmentation = ann["segmentation"]
            if isinstance(segmentation, list):
                rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, h, w))
            elif isinstance(segmentation.get("counts"), list):
                rle = mask_utils.frPyObjects(segmentation, h, w)
            else:
                rle = dict(segmentation)
                if isinstance(rle["counts"], str):
                    rle["counts"] = rle["counts"].encode("ascii")
            m = mask_utils.decode(rle).astype(bool)
            if m.sum() < 1:
                continue
            if ann.get("iscrowd"):
                class_id *= -1
            masks.append(m)
            class_ids.append(class_id)
        if not masks:
            return np.zeros((h, w, 0), dtype=bool), np.zeros(0, dtype=np.int32)
        return np.stack(masks, axis=2), np.array(class_ids, dtype=np.int32)


def load_coco(annotations, images_dir, class_ids=None) -> CocoDataset:
    dataset = CocoDataset().load_coco(annotations, images_dir, class_ids)
    dataset.prepare()
    return dataset
