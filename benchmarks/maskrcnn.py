"""Mask R-CNN detect speed: ms/frame per backbone, input size (IMAGE_MAX_DIM) and batch size.

    python benchmarks/maskrcnn.py [--backbones resnet50,light] [--dims 512,1024] [--batches 1,4] [--repeats 3]

Untrained weights (speed does not depend on them). ResNet-50 runs with COCO-sized heads
(81 classes, FPN 256, 1000 inference ROIs); "light" with the shipped demo model's sizes.
Frames are 1280×720 RGB, resized and padded to a square of the given size (IMAGE_RESIZE_MODE square).
The weights are fixed as the predictor fixes them (BatchNorms folded into the convolutions once).
The first call per shape (graph compilation) is excluded. Untrained weights find the most instances
a config allows (DETECTION_MAX_INSTANCES: 100 for ResNet-50, 20 for light), so the mask head runs on
every slot: the worst case. The last column is the instances per frame.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def config_for(backbone, dim, batch):
    from workers.maskrcnn.config import Config, shapes_config

    size = dict(IMAGE_MIN_DIM=dim, IMAGE_MAX_DIM=dim, IMAGES_PER_GPU=batch)
    if backbone == "light":
        scales = (32, 64, 128, 256, 512) if dim > 256 else (8, 16, 32, 64, 128)
        return shapes_config(**size, RPN_ANCHOR_SCALES=scales)
    return Config(NAME="coco", NUM_CLASSES=81, BACKBONE=backbone, **size)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", default="resnet50,light")
    parser.add_argument("--dims", default="512,1024")
    parser.add_argument("--batches", default="1,4")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    import numpy as np

    from workers.maskrcnn.model import MaskRCNN

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (max(int(b) for b in args.batches.split(",")), 720, 1280, 3), dtype=np.uint8)
    print(f"{'backbone':10} {'max dim':>7} {'batch':>5} {'ms/frame':>9} {'first call s':>12} {'instances':>9}")
    for backbone in args.backbones.split(","):
        for dim in (int(d) for d in args.dims.split(",")):
            model = None
            for batch in (int(b) for b in args.batches.split(",")):
                config = config_for(backbone, dim, batch)
                if model is None:
                    model = MaskRCNN(config)
                    model.fix_weights()  # as the predictor serves a loaded model: BatchNorms folded once
                t0 = time.perf_counter()
                model.detect(frames[:batch])
                first = time.perf_counter() - t0
                t0 = time.perf_counter()
                for _ in range(args.repeats):
                    found = model.detect(frames[:batch])
                per_frame = (time.perf_counter() - t0) / args.repeats / batch * 1000
                instances = np.mean([len(r["class_ids"]) for r in found])
                print(f"{backbone:10} {dim:7d} {batch:5d} {per_frame:9.1f} {first:12.1f} {instances:9.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
