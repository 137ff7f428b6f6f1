"""Measuring a model: matterport's VOC-style per-image AP on masks (compute_ap) and the COCO mask AP
(pycocotools), over a data set.

Images are detected at their original size through the predictor, exactly as `streamer process` would.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from streamer.errors import StreamerError

from .boxes import compute_overlaps_masks
from .config import Config, EvaluateConfig, model_config


def compute_matches(
    gt_boxes,
    gt_class_ids,
    gt_masks,
    pred_boxes,
    pred_class_ids,
    pred_scores,
    pred_masks,
    iou_threshold=0.5,
    score_threshold=0.0,
    overlaps=None,
):
    """Greedy matching by mask IoU (matterport): predictions by score; each takes the highest-IoU
    unmatched GT of its class with IoU ≥ threshold. → (gt_match, pred_match, overlaps). `overlaps`: the mask
    IoU matrix [predictions, ground truth] when already known (rle_overlaps), in the predictions' order."""
    order = np.argsort(-np.asarray(pred_scores), kind="stable")
    pred_class_ids = np.asarray(pred_class_ids)[order]
    if overlaps is None:
        gt_masks = np.asarray(gt_masks)[..., : len(gt_class_ids)]
        overlaps = compute_overlaps_masks(np.asarray(pred_masks)[..., order], gt_masks)
    else:
        overlaps = np.asarray(overlaps).reshape(len(order), len(gt_class_ids))[order]
    pred_match = -1 * np.ones([len(order)])
    gt_match = -1 * np.ones([len(gt_class_ids)])
    for i in range(len(order)):
        ranked = np.argsort(-overlaps[i], kind="stable")
        low = np.where(overlaps[i, ranked] < score_threshold)[0]
        if low.size:
            ranked = ranked[: low[0]]
        for j in ranked:
            if gt_match[j] > -1:
                continue
            if overlaps[i, j] < iou_threshold:
                break
            if pred_class_ids[i] == gt_class_ids[j]:
                gt_match[j] = i
                pred_match[i] = j
                break
    return gt_match, pred_match, overlaps


def compute_ap(
    gt_boxes,
    gt_class_ids,
    gt_masks,
    pred_boxes,
    pred_class_ids,
    pred_scores,
    pred_masks,
    iou_threshold=0.5,
    overlaps=None,
):
    """VOC-style AP of one image → (mAP, precisions, recalls, overlaps).

    Precision padded with 0 at both ends, recall with 0 and 1; precision made monotone
    decreasing; AP = Σ Δrecall × precision where recall changes. An image without ground truth
    scores 1.0 if nothing was predicted, else 0.0. `overlaps`: see compute_matches."""
    gt_match, pred_match, overlaps = compute_matches(
        gt_boxes,
        gt_class_ids,
        gt_masks,
        pred_boxes,
        pred_class_ids,
        pred_scores,
        pred_masks,
        iou_threshold,
        overlaps=overlaps,
    )
    if len(gt_match) == 0:
        value = 1.0 if len(pred_match) == 0 else 0.0
        return value, np.array([value]), np.array([1.0]), overlaps
    hits = np.cumsum(pred_match > -1)
    precisions = hits / (np.arange(len(pred_match)) + 1)
    recalls = hits.astype(np.float64) / len(gt_match)
    precisions = np.concatenate([[0], precisions, [0]])
    recalls = np.concatenate([[0], recalls, [1]])
    for i in range(len(precisions) - 2, -1, -1):
        precisions[i] = max(precisions[i], precisions[i + 1])
    changes = np.where(recalls[:-1] != recalls[1:])[0] + 1
    mean_ap = float(np.sum((recalls[changes] - recalls[changes - 1]) * precisions[changes]))
    return mean_ap, precisions, recalls, overlaps


def rle_masks(masks) -> list[dict]:
    """COCO run-length encodings of bool H×W×N masks (one per mask; a few KB each instead of H×W bytes)."""
    from pycocotools import mask as mask_utils

    masks = np.asarray(masks)
    if masks.ndim != 3 or masks.shape[-1] == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(masks.astype(np.uint8, copy=False)))
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles


def rle_overlaps(pred_rles: list[dict], gt_rles: list[dict]) -> np.ndarray:
    """Mask IoU matrix [predictions, ground truth] of run-length encoded masks, as compute_overlaps_masks gives
    it for the masks themselves (pycocotools' C, without a float copy of every pixel)."""
    from pycocotools import mask as mask_utils

    if not pred_rles or not gt_rles:
        return np.zeros((len(pred_rles), len(gt_rles)))
    return np.asarray(mask_utils.iou(pred_rles, gt_rles, [0] * len(gt_rles)), dtype=np.float64)


def coco_record(height, width, gt_rles, gt_class_ids, gt_crowd, pred_rles, pred_class_ids, pred_scores) -> dict:
    """One image's ground truth and detections for pycocotools_mask_ap, masks run-length encoded (rle_masks)."""
    gt_class_ids = np.asarray(gt_class_ids).tolist()
    crowd = np.asarray(gt_crowd if gt_crowd is not None else np.zeros(len(gt_class_ids), bool), dtype=bool)
    return {
        "height": int(height),
        "width": int(width),
        "gt": list(zip(gt_rles, gt_class_ids, crowd.tolist())),
        "pred": list(zip(pred_rles, np.asarray(pred_class_ids).tolist(), np.asarray(pred_scores).tolist())),
    }


def pycocotools_mask_ap(images):
    """COCO mask AP by pycocotools (COCOeval, iouType "segm"): AP (IoU 0.5:0.95), AP50 and AP75.

    images: coco_record()s, or dicts with gt_masks bool [H,W,G], gt_class_ids [G], gt_crowd bool [G] (optional),
    pred_masks bool [H,W,D], pred_class_ids [D], pred_scores [D]."""
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = {"images": [], "annotations": [], "categories": []}
    results = []
    categories = set()
    ann_id = 1
    for image_id, im in enumerate(images, start=1):
        if "gt_masks" in im:
            height, width = np.asarray(im["gt_masks"]).shape[:2]
            gt_rles = rle_masks(np.asarray(im["gt_masks"])[:, :, : len(im["gt_class_ids"])])
            pred_rles = rle_masks(np.asarray(im["pred_masks"])[:, :, : len(im["pred_class_ids"])])
            im = coco_record(
                height,
                width,
                gt_rles,
                im["gt_class_ids"],
                im.get("gt_crowd"),
                pred_rles,
                im["pred_class_ids"],
                im["pred_scores"],
            )
        gt["images"].append({"id": image_id, "height": im["height"], "width": im["width"]})
        for rle, cls, crowd in im["gt"]:
            area = float(mask_utils.area(rle))
            bbox = mask_utils.toBbox(rle).tolist()
            annotation = {"id": ann_id, "image_id": image_id, "category_id": int(cls), "segmentation": rle}
            gt["annotations"].append({**annotation, "area": area, "bbox": bbox, "iscrowd": int(crowd)})
            categories.add(int(cls))
            ann_id += 1
        for rle, cls, score in im["pred"]:
            results.append({"image_id": image_id, "category_id": int(cls), "segmentation": rle, "score": float(score)})
            categories.add(int(cls))
    gt["categories"] = [{"id": c, "name": str(c)} for c in sorted(categories)]
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        if not results:
            return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}
        detections = coco.loadRes(results)
        evaluator = COCOeval(coco, detections, iouType="segm")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {"AP": float(evaluator.stats[0]), "AP50": float(evaluator.stats[1]), "AP75": float(evaluator.stats[2])}


@dataclass
class Evaluation:
    """Per-image mask AP (name, value), their mean (mAP), the COCO mask AP when measured and the speed."""

    iou_threshold: float = 0.5
    names: list[str] = field(default_factory=list)
    aps: list[float] = field(default_factory=list)
    seconds: float = 0.0  # spent in predict
    elapsed: float = 0.0  # the whole pass over the images: decoding, predict, scoring
    coco_ap: float | None = None  # COCO mask AP@[.5:.95]
    coco_ap50: float | None = None
    coco_ap75: float | None = None

    @property
    def mean(self) -> float:
        """mAP: the mean of the per-image APs (0 for no images)."""
        return float(np.mean(self.aps)) if self.aps else 0.0

    @property
    def ms_per_image(self) -> float:
        return 1000.0 * self.seconds / max(1, len(self.aps))

    def to_dict(self) -> dict:
        """JSON-ready: images (the count), mAP, ms_per_image and, when measured, coco_mask_AP/AP50/AP75."""
        out = {"images": len(self.aps), "mAP": self.mean, "ms_per_image": self.ms_per_image}
        out.update(inference_s=round(self.seconds, 3), elapsed_s=round(self.elapsed, 3))
        if self.coco_ap is not None:
            out.update(coco_mask_AP=self.coco_ap, coco_mask_AP50=self.coco_ap50, coco_mask_AP75=self.coco_ap75)
        return out


def evaluate(config: EvaluateConfig, model=None, progress=None) -> Evaluation:
    """Run the model (the predictor for `config.weights`, or `model` if given) on every image of
    `config.data` at its original size: per-image VOC AP on masks at `iou_threshold`, and (config.coco)
    the COCO mask AP from pycocotools. See data.evaluation_data for the images. `progress(done, total)` is
    called after every batch."""
    from .data import evaluation_data

    phase = getattr(progress, "phase", lambda name: None)
    config.validate()
    phase("reading the data")
    data = evaluation_data(config)
    dataset = data.val
    if model is None:
        phase("loading model maskrcnn")
        model = evaluation_model(config, data.kind, data.class_names)
    phase("evaluating")
    began = time.perf_counter()
    result = Evaluation(iou_threshold=config.iou_threshold)
    records = []
    total = len(dataset.image_ids)
    for ids, images, truths in same_size_batches(dataset, config.batch_size):
        started = time.perf_counter()
        predictions = model.predict(np.stack(images))
        result.seconds += time.perf_counter() - started
        for image_id, image, (gt_rles, class_ids), prediction in zip(ids, images, truths, predictions):
            class_ids = np.asarray(class_ids, dtype=np.int32)
            crowd = class_ids < 0
            # masks compared run-length encoded: a 720p frame's IoUs cost little more than its RLEs
            pred_rles = rle_masks(prediction.masks)
            overlaps = rle_overlaps(pred_rles, [rle for rle, is_crowd in zip(gt_rles, crowd) if not is_crowd])
            found = (prediction.boxes, prediction.class_ids, prediction.scores, prediction.masks)
            no_masks = np.zeros(image.shape[:2] + (0,), bool)
            ap, *_ = compute_ap(None, class_ids[~crowd], no_masks, *found, config.iou_threshold, overlaps=overlaps)
            result.names.append(str(dataset.image_info[image_id]["id"]))
            result.aps.append(ap)
            if config.coco:
                height, width = image.shape[:2]
                scores = prediction.scores
                records.append(
                    coco_record(
                        height, width, gt_rles, np.abs(class_ids), crowd, pred_rles, prediction.class_ids, scores
                    )
                )
        if progress is not None:
            progress(len(result.aps), total)
    if config.coco and records:
        stats = pycocotools_mask_ap(records)
        result.coco_ap, result.coco_ap50, result.coco_ap75 = stats["AP"], stats["AP50"], stats["AP75"]
    result.elapsed = time.perf_counter() - began
    return result


def evaluation_model(config: EvaluateConfig, kind: str, class_names: list[str]):
    """The predictor for `config.weights` (default: the demo weights) on a data set with `class_names`: the
    Config saved in the file with the --set overrides, or for a file without one (a matterport file) the
    data set's Config with what the file's layers say (backbone, layer sizes, classes) and matterport's
    resizing, as `streamer process` reads such a file; an ONNX export (`streamer export`) with the Config it holds."""
    from streamer.models import ModelConfig, weights_path

    from .exported import is_exported
    from .predictor import MaskRCNNPredictor, check_weights_path
    from .weights import DEMO_WEIGHTS, architecture_from_keras2, read_config

    weights = str(weights_path("maskrcnn", config.weights) or DEMO_WEIGHTS)
    check_weights_path(Path(weights))
    options = ModelConfig(
        name="maskrcnn", weights=weights, batch_size=config.batch_size, threshold=config.threshold, device=config.device
    )
    exported = None
    if is_exported(weights):  # an ONNX export holds its Config (and refuses --set: its graph fixes them)
        exported = MaskRCNNPredictor(replace(options, settings=config.overrides))
        settings = exported.model.config
    elif (saved := read_config(weights)) is not None:
        settings = Config.from_dict(saved, **config.overrides)
    else:
        architecture = {"RESIZE_COMPAT": "matterport", **architecture_from_keras2(weights)}
        if config.backbone and architecture.get("BACKBONE", config.backbone) != config.backbone:
            raise StreamerError(
                f"--backbone {config.backbone}: the weights {weights} hold a {architecture['BACKBONE']} backbone; "
                "drop --backbone (it is read from the file)"
            )
        settings = model_config(kind, class_names, overrides=config.overrides, architecture=architecture)
        settings = settings.replace(NUM_CLASSES=architecture.get("NUM_CLASSES", settings.NUM_CLASSES), CLASS_NAMES=None)
    if settings.NUM_CLASSES != len(class_names):
        raise StreamerError(
            f"weights {weights} have {settings.NUM_CLASSES} classes ({', '.join(settings.class_names[1:])}) but "
            f"{config.data} has {len(class_names)} ({', '.join(class_names[1:])}): evaluate with matching weights"
        )
    return exported or MaskRCNNPredictor(options, settings)


def same_size_batches(dataset, batch_size: int) -> Iterator[tuple[list[int], list[np.ndarray], list[tuple]]]:
    """Consecutive images (ids, images, their (mask RLEs, class ids)) grouped into batches of equal image size.
    Each image's masks are read with it, so a video data set is decoded once, in order."""
    ids, images, truths = [], [], []
    rles = getattr(dataset, "load_mask_rles", None)  # a video's ground truth is RLEs already: no decoding
    for image_id in dataset.image_ids:
        image = dataset.load_image(image_id)
        masks, class_ids = rles(image_id) if rles else dataset.load_mask(image_id)
        truth = (masks if rles else rle_masks(masks), class_ids)
        if images and (len(images) == batch_size or image.shape != images[0].shape):
            yield ids, images, truths
            ids, images, truths = [], [], []
        ids.append(image_id)
        images.append(image)
        truths.append(truth)
    if images:
        yield ids, images, truths
