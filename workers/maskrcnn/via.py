"""VIA (VGG Image Annotator) loader in the balloon layout: DIR/via_region_data.json + images.

Accepts VIA 1.x exports (`regions` a dict keyed "0", "1", …), VIA 2.x exports (`regions` a
list) and VIA 2.x project files (entries under `_via_img_metadata`). Polygons (and rects) are
rasterised. Classes come from a region attribute named class/name/label/type when present,
else one class named after the dataset folder (e.g. "balloon" for balloon/train)."""

from __future__ import annotations

import json
import os

import cv2
import numpy as np

from streamer.errors import StreamerError

from .dataset import Dataset, image_size

CLASS_KEYS = ("class", "name", "label", "type")
TOLERANCE = 1.0  # px a polygon may stick out of the image (VIA rounds clicks on the border)


def _region_class(region):
    attributes = region.get("region_attributes") or {}
    if isinstance(attributes, dict):
        for key in CLASS_KEYS:
            value = attributes.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
            if isinstance(value, dict):  # VIA 2 checkbox: {"balloon": true}
                chosen = [k for k, v in value.items() if v]
                if len(chosen) == 1:
                    return chosen[0]
    return None


def _shape_points(shape, where):
    name = shape.get("name")
    if name in ("polygon", "polyline"):
        xs, ys = shape.get("all_points_x"), shape.get("all_points_y")
        if not isinstance(xs, list) or not isinstance(ys, list) or len(xs) != len(ys) or len(xs) < 3:
            raise StreamerError(f"{where}: a polygon needs all_points_x and all_points_y lists of equal length ≥ 3")
        return np.array(xs, dtype=np.float64), np.array(ys, dtype=np.float64)
    if name == "rect":
        try:
            x, y, w, h = (float(shape[k]) for k in ("x", "y", "width", "height"))
        except (KeyError, TypeError, ValueError):
            raise StreamerError(f"{where}: a rect needs numeric x, y, width, height") from None
        return np.array([x, x + w, x + w, x]), np.array([y, y, y + h, y + h])
    raise StreamerError(f"{where}: shape {name!r} is not supported: draw polygons (or rects) in VIA")


class ViaDataset(Dataset):
    def load_via(self, directory, json_name="via_region_data.json", class_name=None):
        path = os.path.join(directory, json_name)
        if not os.path.isfile(path):
            raise StreamerError(f"VIA annotations {path} not found: export them from VIA as {json_name}")
        try:
            with open(path, encoding="utf8") as f:
                data = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise StreamerError(f"VIA annotations {path} are not valid JSON ({error})") from None
        if isinstance(data, dict) and isinstance(data.get("_via_img_metadata"), dict):
            data = data["_via_img_metadata"]
        if not isinstance(data, dict):
            raise StreamerError(
                f"VIA annotations {path} have the wrong shape: expected an object of image entries "
                "(VIA 'Export annotations (as json)'), got a " + type(data).__name__
            )
        default_class = class_name or os.path.basename(os.path.dirname(os.path.abspath(directory))) or "object"
        entries = []
        names = []
        for key, entry in data.items():
            where = f"{path} entry {key!r}"
            if not isinstance(entry, dict) or "filename" not in entry or "regions" not in entry:
                raise StreamerError(f"{where} has the wrong shape: each entry needs 'filename' and 'regions'")
            regions = entry["regions"]
            if isinstance(regions, dict):  # VIA 1.x
                regions = [regions[k] for k in sorted(regions, key=lambda k: int(k) if str(k).isdigit() else str(k))]
            elif not isinstance(regions, list):
                raise StreamerError(f"{where}: 'regions' must be a list (VIA 2) or an object (VIA 1)")
            if not regions:
                continue  # matterport skips images without regions
            image_path = os.path.join(directory, entry["filename"])
            if not os.path.isfile(image_path):
                raise StreamerError(f"{where}: image {image_path} does not exist: add it or remove the entry")
            height, width = image_size(image_path)
            polygons = []
            for i, region in enumerate(regions):
                rwhere = f"{where} region {i}"
                if not isinstance(region, dict) or not isinstance(region.get("shape_attributes"), dict):
                    raise StreamerError(f"{rwhere}: needs 'shape_attributes'")
                xs, ys = _shape_points(region["shape_attributes"], rwhere)
                if (
                    xs.min() < -TOLERANCE
                    or ys.min() < -TOLERANCE
                    or xs.max() > width - 1 + TOLERANCE
                    or ys.max() > height - 1 + TOLERANCE
                ):
                    raise StreamerError(
                        f"{rwhere}: polygon reaches ({xs.min():g}..{xs.max():g}, {ys.min():g}..{ys.max():g}) "
                        f"outside the {width}×{height} image {entry['filename']}: fix the polygon or the image"
                    )
                label = _region_class(region) or default_class
                names.append(label)
                polygons.append((label, xs, ys))
            entries.append((entry["filename"], image_path, width, height, polygons))
        if not entries:
            raise StreamerError(f"VIA annotations {path} have no image with regions: annotate at least one image")
        classes = sorted(set(names), key=names.index)
        for i, label in enumerate(classes, start=1):
            self.add_class("via", i, label)
        for filename, image_path, width, height, polygons in entries:
            self.add_image(
                "via",
                filename,
                image_path,
                width=width,
                height=height,
                polygons=polygons,
                class_index={c: i for i, c in enumerate(classes, start=1)},
            )
        return self

    def load_mask(self, image_id):
        info = self.image_info[image_id]
        polygons = info["polygons"]
        masks = np.zeros((info["height"], info["width"], len(polygons)), dtype=np.uint8)
        for i, (_, xs, ys) in enumerate(polygons):
            points = np.stack(
                [np.clip(np.round(xs), 0, info["width"] - 1), np.clip(np.round(ys), 0, info["height"] - 1)], 1
            )
            layer = np.zeros((info["height"], info["width"]), dtype=np.uint8)
            cv2.fillPoly(layer, [points.astype(np.int32)], 1)
            masks[:, :, i] = layer
        class_ids = np.array(
            [self.map_source_class_id(f"via.{info['class_index'][label]}") for label, _, _ in polygons], dtype=np.int32
        )
        return masks.astype(bool), class_ids


def load_via(directory, json_name="via_region_data.json", class_name=None) -> ViaDataset:
    dataset = ViaDataset().load_via(directory, json_name, class_name)
    dataset.prepare()
    return dataset
