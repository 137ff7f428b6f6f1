"""Measuring a model: matterport's VOC-style per-image AP on masks (compute_ap) and the COCO mask AP
(pycocotools), over a data set.

Images are detected at their original size through the predictor, exactly as `streamer process` would.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from streamer.errors import StreamerError

from .boxes import compute_overlaps_masks, extract_bboxes
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
):
    """Greedy matching by mask IoU (matterport): predictions by score; each takes the highest-IoU
    unmatched GT of its class with IoU ≥ threshold. → (gt_match, pred_match, overlaps)."""
    gt_masks = np.asarray(gt_masks)[..., : len(gt_class_ids)]
    order = np.argsort(-np.asarray(pred_scores), kind="stable")
    pred_class_ids = np.asarray(pred_class_ids)[order]
    pred_masks = np.asarray(pred_masks)[..., order]
    overlaps = compute_overlaps_masks(pred_masks, gt_masks)
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
    gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids, pred_scores, pred_masks, iou_threshold=0.5
):
    """VOC-style AP of one image → (mAP, precisions, recalls, overlaps).

    Precision padded with 0 at both ends, recall with 0 and 1; precision made monotone
    decreasing; AP = Σ Δrecall × precision where recall changes. An image without ground truth
    scores 1.0 if nothing was predicted, else 0.0."""
    gt_match, pred_match, overlaps = compute_matches(
        gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids, pred_scores, pred_masks, iou_threshold
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


def pycocotools_mask_ap(images):
    """COCO mask AP by pycocotools (COCOeval, iouType "segm"): AP (IoU 0.5:0.95), AP50 and AP75.

    images: list of dicts with gt_masks bool [H,W,G], gt_class_ids [G], gt_crowd bool [G],
    pred_masks bool [H,W,D], pred_class_ids [D], pred_scores [D]."""
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = {"images": [], "annotations": [], "categories": []}
    results = []
    categories = set()
    ann_id = 1
    for image_id, im in enumerate(images, start=1):
        h, w = np.asarray(im["gt_masks"]).shape[:2]
        gt["images"].append({"id": image_id, "height": int(h), "width": int(w)})
        crowd = np.asarray(im.get("gt_crowd", np.zeros(len(im["gt_class_ids"]), bool)), dtype=bool)
        for i, cls in enumerate(np.asarray(im["gt_class_ids"]).tolist()):
            rle = mask_utils.encode(np.asfortranarray(np.asarray(im["gt_masks"])[:, :, i].astype(np.uint8)))
            area = float(mask_utils.area(rle))
            rle["counts"] = rle["counts"].decode("ascii")
            bbox = mask_utils.toBbox(rle).tolist()
            annotation = {"id": ann_id, "image_id": image_id, "category_id": int(cls), "segmentation": rle}
            gt["annotations"].append({**annotation, "area": area, "bbox": bbox, "iscrowd": int(crowd[i])})
            categories.add(int(cls))
            ann_id += 1
        for i, cls in enumerate(np.asarray(im["pred_class_ids"]).tolist()):
            rle = mask_utils.encode(np.asfortranarray(np.asarray(im["pred_masks"])[:, :, i].astype(np.uint8)))
            rle["counts"] = rle["counts"].decode("ascii")
            score = float(im["pred_scores"][i])
            results.append({"image_id": image_id, "category_id": int(cls), "segmentation": rle, "score": score})
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
        if self.coco_ap is not None:
            out.update(coco_mask_AP=self.coco_ap, coco_mask_AP50=self.coco_ap50, coco_mask_AP75=self.coco_ap75)
        return out


def evaluate(config: EvaluateConfig, model=None) -> Evaluation:
    """Run the model (the predictor for `config.weights`, or `model` if given) on every image of
    `config.data` at its original size: per-image VOC AP on masks at `iou_threshold`, and (config.coco)
    the COCO mask AP from pycocotools. See data.evaluation_data for the images."""
    from .data import evaluation_data

    config.validate()
    data = evaluation_data(config)
    dataset = data.val
    if model is None:
        model = evaluation_model(config, data.kind, data.class_names)
    result = Evaluation(iou_threshold=config.iou_threshold)
    records = []
    for ids, images in same_size_batches(dataset, config.batch_size):
        started = time.perf_counter()
        predictions = model.predict(np.stack(images))
        result.seconds += time.perf_counter() - started
        for image_id, image, prediction in zip(ids, images, predictions):
            masks, class_ids = dataset.load_mask(image_id)
            class_ids = np.asarray(class_ids, dtype=np.int32)
            if masks.shape[-1] == 0:
                masks = np.zeros(image.shape[:2] + (0,), bool)
            crowd = class_ids < 0
            gt_masks = masks[:, :, ~crowd]
            found = (prediction.boxes, prediction.class_ids, prediction.scores, prediction.masks)
            ap, *_ = compute_ap(extract_bboxes(gt_masks), class_ids[~crowd], gt_masks, *found, config.iou_threshold)
            result.names.append(str(dataset.image_info[image_id]["id"]))
            result.aps.append(ap)
            records.append(
                {
                    "gt_masks": masks.astype(bool),
                    "gt_class_ids": np.abs(class_ids),
                    "gt_crowd": crowd,
                    "pred_masks": prediction.masks,
                    "pred_class_ids": prediction.class_ids,
                    "pred_scores": prediction.scores,
                }
            )
    if config.coco and records:
        stats = pycocotools_mask_ap(records)
        result.coco_ap, result.coco_ap50, result.coco_ap75 = stats["AP"], stats["AP50"], stats["AP75"]
    return result


def evaluation_model(config: EvaluateConfig, kind: str, class_names: list[str]):
    """The predictor for `config.weights` (default: the demo weights) on a data set with `class_names`: the
    Config saved in the file with the --set overrides, or for a file without one (a matterport file) the
    data set's Config on `config.backbone`."""
    from streamer.models import ModelConfig

    from .predictor import MaskRCNNPredictor
    from .weights import DEMO_WEIGHTS, read_config

    weights = str(config.weights or DEMO_WEIGHTS)
    saved = read_config(weights)
    if saved is not None:
        settings = Config.from_dict(saved, **config.overrides)
        if settings.NUM_CLASSES != len(class_names):
            raise StreamerError(
                f"weights {weights} have {settings.NUM_CLASSES} classes ({', '.join(settings.class_names[1:])}) but "
                f"{config.data} has {len(class_names)} ({', '.join(class_names[1:])}): evaluate with matching weights"
            )
    else:
        settings = model_config(kind, class_names, config.backbone, overrides=config.overrides)
    options = ModelConfig(
        name="maskrcnn", weights=weights, batch_size=config.batch_size, threshold=config.threshold, device=config.device
    )
    return MaskRCNNPredictor(options, settings)


def same_size_batches(dataset, batch_size: int) -> Iterator[tuple[list[int], list[np.ndarray]]]:
    """Consecutive images (ids, images) grouped into batches of equal image size."""
    ids, images = [], []
    for image_id in dataset.image_ids:
        image = dataset.load_image(image_id)
        if images and (len(images) == batch_size or image.shape != images[0].shape):
            yield ids, images
            ids, images = [], []
        ids.append(image_id)
        images.append(image)
    if images:
        yield ids, images
