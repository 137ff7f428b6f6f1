"""CLI glue for `streamer train maskrcnn` and `streamer evaluate maskrcnn` (wired by streamer.cli).

`add_train_arguments(parser)` / `run_train(args) -> int` and `add_evaluate_arguments(parser)` /
`run_evaluate(args) -> int`. Failures raise StreamerError (the CLI prints them on one line).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from streamer.errors import StreamerError

DATA_HELP = "via:DIR (DIR/train, DIR/val with via_region_data.json) | coco:ANNOTATIONS.json:IMAGES_DIR | shapes"


def _common_data_arguments(parser):
    parser.add_argument("--data", required=True, help=DATA_HELP)
    parser.add_argument("--backbone", choices=("resnet50", "resnet101", "light"), default=None,
                        help="backbone (default: light for shapes, resnet50 otherwise, or the --init/--weights file's)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a Config setting, e.g. --set IMAGE_MAX_DIM=512 (JSON values); repeatable")
    parser.add_argument("--seed", type=int, default=0, help="random seed (shapes generation, shuffling)")
    parser.add_argument("--images", type=int, default=None,
                        help="shapes: number of generated training images (default 10000) or evaluation images (default 100)")
    parser.add_argument("--val-fraction", type=float, default=0.1,
                        help="coco: fraction of images held out for validation (default 0.1)")


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    _common_data_arguments(parser)
    parser.add_argument("--layers", default=None,
                        help="heads | 3+ | 4+ | 5+ | all | REGEX (default: heads with --init, all without)")
    parser.add_argument("--epochs", type=int, default=10, help="train up to this epoch (default 10)")
    parser.add_argument("--init", default=None, help="initial weights: our .weights.h5 or a matterport/Keras 2 .h5")
    parser.add_argument("--exclude", default="", help="comma-separated layer names to skip when loading --init")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    parser.add_argument("--out", default="runs/maskrcnn", help="checkpoint directory (default runs/maskrcnn)")
    parser.add_argument("--output", default=None, help="final weights file (default OUT/mask_rcnn_NAME.weights.h5)")
    parser.add_argument("--learning-rate", type=float, default=None, help="default: the config's LEARNING_RATE")
    parser.add_argument("--steps-per-epoch", type=int, default=None, help="default: STEPS_PER_EPOCH")
    parser.add_argument("--validation-steps", type=int, default=None, help="default: VALIDATION_STEPS")
    parser.add_argument("--batch-size", type=int, default=None, help="images per step (IMAGES_PER_GPU)")
    parser.add_argument("--no-augment", action="store_true", help="turn off albumentations augmentation")


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    _common_data_arguments(parser)
    parser.add_argument("--weights", default=None, help="weights file (default: the bundled shapes demo weights)")
    parser.add_argument("--split", choices=("val", "train"), default="val", help="via: which folder (default val)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate at most this many images")
    parser.add_argument("--iou", type=float, default=0.5, help="IoU threshold for the VOC-style mAP (default 0.5)")
    parser.add_argument("--min-confidence", type=float, default=None, help="DETECTION_MIN_CONFIDENCE override")
    parser.add_argument("--no-coco", action="store_true", help="skip the pycocotools mask AP")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def parse_overrides(items) -> dict:
    out = {}
    for item in items or []:
        key, sep, value = str(item).partition("=")
        if not sep or not key:
            raise StreamerError(f"--set {item!r}: write KEY=VALUE, e.g. --set IMAGE_MAX_DIM=512")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def parse_data(spec: str):
    """→ (kind, parts)."""
    kind, _, rest = str(spec).partition(":")
    if kind == "shapes":
        return "shapes", []
    if kind == "via" and rest:
        return "via", [rest]
    if kind == "coco" and rest:
        ann, sep, images = rest.rpartition(":")
        if not sep or not ann or not images:
            raise StreamerError(f"--data {spec!r}: write coco:ANNOTATIONS.json:IMAGES_DIR")
        return "coco", [ann, images]
    raise StreamerError(f"--data {spec!r} is not understood: use {DATA_HELP}")


def load_datasets(args, for_training=True):
    """→ (train dataset or None, validation/eval dataset, class names, default config values)."""
    kind, parts = parse_data(args.data)
    if kind == "shapes":
        from .config import shapes_config
        from .shapes import CLASS_NAMES, ShapesDataset

        size = int(parse_overrides(args.set).get("IMAGE_MAX_DIM", 128))
        train = None
        if for_training:
            train = ShapesDataset()
            train.load_shapes(args.images or 10000, size, size, seed=args.seed)
            train.prepare()
        val = ShapesDataset()
        val_count = 50 if for_training else (args.images or 100)
        val.load_shapes(val_count, size, size, seed=args.seed + 1_000_003)
        val.prepare()
        return train, val, CLASS_NAMES, shapes_config().to_dict(), "shapes"
    if kind == "via":
        from .via import load_via

        directory = parts[0]
        if not os.path.isdir(directory):
            raise StreamerError(f"--data via:{directory}: no such directory")
        splits = {}
        for split in ("train", "val"):
            sub = os.path.join(directory, split)
            if os.path.isdir(sub):
                splits[split] = load_via(sub)
        if not splits and os.path.isfile(os.path.join(directory, "via_region_data.json")):
            splits["train"] = splits["val"] = load_via(directory)
        if not splits:
            raise StreamerError(f"--data via:{directory}: expected {directory}/train and {directory}/val with via_region_data.json")
        if for_training and "train" not in splits:
            raise StreamerError(f"--data via:{directory}: no train/ folder with via_region_data.json")
        val = splits.get(getattr(args, "split", "val")) or splits.get("val") or splits.get("train")
        train = splits.get("train")
        return train, val, train.class_names if train else val.class_names, {}, "via"
    from .coco import load_coco

    ann, images = parts
    full = load_coco(ann, images)
    if not for_training:
        return None, full, full.class_names, {}, "coco"
    train, val = full.split(args.val_fraction, seed=args.seed)
    return train, val, full.class_names, {}, "coco"


def build_config(args, defaults: dict, class_names, name, init_path=None):
    from .config import Config
    from .weights import read_config

    values = dict(defaults)
    if init_path:
        saved = read_config(init_path)
        if saved:
            for key in ("BACKBONE", "BACKBONE_WIDTH", "TOP_DOWN_PYRAMID_SIZE", "RPN_CONV_DEPTH", "MASK_HEAD_DEPTH",
                        "FPN_CLASSIF_FC_LAYERS_SIZE", "RPN_ANCHOR_RATIOS", "RPN_ANCHOR_STRIDE", "TRAIN_BN"):  # fmt: skip
                values[key] = saved[key]
    values.setdefault("NAME", name)
    values.setdefault("BACKBONE", "resnet50")
    if args.backbone:
        values["BACKBONE"] = args.backbone
    values["NUM_CLASSES"] = len(class_names)
    values["CLASS_NAMES"] = list(class_names)
    if getattr(args, "batch_size", None):
        values["IMAGES_PER_GPU"] = args.batch_size
    values.update(parse_overrides(args.set))
    return Config.from_dict(values)


def _log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run_train(args) -> int:
    from .model import MaskRCNN
    from .train import Trainer, default_augmentation, validate_dataset

    train, val, class_names, defaults, name = load_datasets(args, for_training=True)
    config = build_config(args, defaults, class_names, name, init_path=args.init)
    if name != "shapes":
        validate_dataset(train, f"training data {args.data}", limit=500)
        if val is not None and val is not train:
            validate_dataset(val, f"validation data {args.data}", limit=500)
    exclude = [e.strip() for e in args.exclude.split(",") if e.strip()]
    model = MaskRCNN(config)
    trainer = Trainer(model, args.out, log=_log)
    if args.resume:
        trainer.resume()
    elif args.init:
        report = model.load_weights(args.init, by_name=True, exclude=exclude)
        _log(f"loaded {len(report['loaded'])} layers from {args.init} (excluded {len(report['excluded'])}, "
             f"not in model {len(report['skipped'])})")  # fmt: skip
    layers = args.layers or ("heads" if args.init else "all")
    augmentation = None if args.no_augment else default_augmentation("shapes" if name == "shapes" else "photo")
    lr = args.learning_rate or config.LEARNING_RATE
    _log(f"training {config.NAME} ({config.BACKBONE}, {len(class_names) - 1} classes) layers={layers} "
         f"epochs {trainer.epoch + 1}..{args.epochs} lr={lr}")  # fmt: skip
    started = time.time()
    trainer.train(train, val, lr, args.epochs, layers, augmentation=augmentation, seed=args.seed,
                  steps_per_epoch=args.steps_per_epoch, validation_steps=args.validation_steps)  # fmt: skip
    output = args.output or os.path.join(args.out, f"mask_rcnn_{(config.NAME or 'model').lower()}.weights.h5")
    model.save_weights(output, extra={"epoch": trainer.epoch, "train_seconds": round(time.time() - started)})
    _log(f"wrote {output}")
    return 0


def run_evaluate(args) -> int:
    from .evaluate import evaluate
    from .model import MaskRCNN
    from .predictor import DEMO_WEIGHTS
    from .weights import read_config

    weights = args.weights or DEMO_WEIGHTS
    _, dataset, class_names, defaults, name = load_datasets(args, for_training=False)
    saved = read_config(weights)
    if saved:
        from .config import Config

        overrides = parse_overrides(args.set)
        if args.min_confidence is not None:
            overrides["DETECTION_MIN_CONFIDENCE"] = args.min_confidence
        overrides = {"IMAGES_PER_GPU": 1, "GPU_COUNT": 1, **overrides}
        config = Config.from_dict(saved, **overrides)
        if config.NUM_CLASSES != len(class_names):
            raise StreamerError(
                f"weights {weights} have {config.NUM_CLASSES} classes ({', '.join(config.class_names[1:])}) but "
                f"{args.data} has {len(class_names)} ({', '.join(class_names[1:])}): evaluate with matching weights"
            )
    else:
        config = build_config(args, defaults, class_names, name)
        if args.min_confidence is not None:
            config = config.replace(DETECTION_MIN_CONFIDENCE=args.min_confidence)
    model = MaskRCNN(config)
    model.load_weights(weights)
    result = evaluate(model, dataset, limit=args.limit, iou_threshold=args.iou, coco=not args.no_coco)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"images: {result['images']}  mAP@{args.iou:g} (masks, VOC): {result['mAP']:.4f}")
        if "coco_mask_AP" in result:
            print(f"COCO mask AP@[.5:.95]: {result['coco_mask_AP']:.4f}  AP50: {result['coco_mask_AP50']:.4f}  "
                  f"AP75: {result['coco_mask_AP75']:.4f}")  # fmt: skip
        print(f"detect: {result['ms_per_image']:.1f} ms/image")
    sys.stdout.flush()
    return 0
