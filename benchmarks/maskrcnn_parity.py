"""Our Mask R-CNN against matterport's semantics, stage by stage, on your weights and images.

    python benchmarks/maskrcnn_parity.py --weights mask_rcnn_shapes.h5 IMAGE_OR_FOLDER... \
        [--set KEY=VALUE ...] [--modes matterport,opencv] [--json]

--weights takes a matterport Keras 2 `.h5` (or one of our `.weights.h5`); --set gives the settings your
matterport Config changed (IMAGE_MAX_DIM=128, RPN_ANCHOR_SCALES=[8,16,32,64,128], ...), as `streamer process
--set` does. Each image runs through detect's graph (batch 1) and through the NumPy reference of matterport's
semantics (workers/maskrcnn/reference.py), each reference stage fed our previous stage, so a difference is
charged to the stage that makes it; "end_to_end" runs the reference alone from our feature maps to the
frame. Printed per mode (RESIZE_COMPAT): the worst figure over the images for each stage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
# for each figure: whether larger is worse (differences) or better (counts that agree, IoU)
WORST = {"same": min, "mask_iou": min, "window_same": min, "rows": max, "ours": max, "theirs": max}


def images_from(paths: list[str]) -> list[tuple[str, object]]:
    import cv2

    files = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            files.append(path)
        else:
            raise SystemExit(f"image {given}: not found")
    out = []
    for path in files:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise SystemExit(f"image {path}: not a readable image")
        out.append((str(path), cv2.cvtColor(image, cv2.COLOR_BGR2RGB)))
    if not out:
        raise SystemExit("no images: give image files or folders of them")
    return out


def worst(reports: list[dict]) -> dict:
    """Per stage and figure, the worst value over the images (sums for counts of rows and detections)."""
    out = {}
    for report in reports:
        for stage, figures in report.items():
            into = out.setdefault(stage, {})
            for key, value in figures.items():
                if key in ("rows", "ours", "theirs") or (key == "same" and stage != "mold"):
                    into[key] = into.get(key, 0) + value
                elif key in into:
                    into[key] = WORST.get(key, max)(into[key], value)
                else:
                    into[key] = value
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", help="image files or folders of them")
    parser.add_argument("--weights", required=True, help="matterport .h5 or our .weights.h5")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a Config setting (JSON value)")
    parser.add_argument("--modes", default="matterport,opencv", help="RESIZE_COMPAT values to compare")
    parser.add_argument("--json", action="store_true", help="print every image's figures as JSON")
    args = parser.parse_args(argv)

    from streamer.models import ModelConfig
    from workers.maskrcnn.parity import STAGES, compare
    from workers.maskrcnn.predictor import MaskRCNNPredictor

    settings = {}
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            settings[key] = json.loads(value)
        except json.JSONDecodeError:
            settings[key] = value
    images = images_from(args.images)
    for mode in args.modes.split(","):
        options = ModelConfig(
            name="maskrcnn", weights=args.weights, batch_size=1, settings={**settings, "RESIZE_COMPAT": mode}
        )
        model = MaskRCNNPredictor(options).model
        reports = []
        for name, image in images:
            report = compare(model, image)
            reports.append(report)
            if args.json:
                print(json.dumps({"mode": mode, "image": name, **report}))
        print(f"RESIZE_COMPAT={mode}: {len(images)} images, worst per stage (counts summed)")
        summary = worst(reports)
        for stage in STAGES:
            if stage in summary:
                figures = ", ".join(
                    f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in summary[stage].items()
                )
                print(f"  {stage:16} {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
