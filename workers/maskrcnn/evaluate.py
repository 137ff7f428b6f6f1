"""Metrics: matterport's VOC-style per-image AP on masks (compute_ap), COCO mask AP (our own
implementation of COCOeval's rules, and pycocotools itself), and a dataset evaluation loop."""

from __future__ import annotations

import contextlib
import io
import time

import numpy as np

from .boxes import compute_overlaps_masks


def trim_zeros(x):
    x = np.asarray(x)
    return x[np.any(x != 0, axis=1)] if x.ndim == 2 and len(x) else x


def compute_matches(gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids, pred_scores, pred_masks,
                    iou_threshold=0.5, score_threshold=0.0):  # fmt: skip
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


def compute_ap(gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids, pred_scores, pred_masks,
               iou_threshold=0.5):  # fmt: skip
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


def compute_ap_range(gt_box, gt_class_id, gt_mask, pred_box, pred_class_id, pred_score, pred_mask,
                     iou_thresholds=None, verbose=0):  # fmt: skip
    thresholds = np.arange(0.5, 1.0, 0.05) if iou_thresholds is None else iou_thresholds
    aps = [compute_ap(gt_box, gt_class_id, gt_mask, pred_box, pred_class_id, pred_score, pred_mask, t)[0]
           for t in thresholds]  # fmt: skip
    if verbose:
        print(f"AP @{thresholds[0]:.2f}-{thresholds[-1]:.2f}:\t {np.mean(aps):.3f}")
    return float(np.mean(aps))


def compute_recall(pred_boxes, gt_boxes, iou):
    from .boxes import compute_overlaps

    overlaps = compute_overlaps(pred_boxes, gt_boxes)
    best = np.max(overlaps, axis=1) if overlaps.size else np.zeros(0)
    positive = np.where(best >= iou)[0]
    matched = np.argmax(overlaps, axis=1)[positive] if overlaps.size else np.zeros(0)
    return len(set(matched)) / max(1, gt_boxes.shape[0]), positive


# --------------------------------------------------------------------------- COCO mask AP

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, 101)


def _mask_iou_coco(dt_masks, gt_masks, crowd):
    """[D,G] IoU as pycocotools: for crowd GT, intersection / detection area."""
    if dt_masks.shape[-1] == 0 or gt_masks.shape[-1] == 0:
        return np.zeros((dt_masks.shape[-1], gt_masks.shape[-1]))
    d = dt_masks.reshape(-1, dt_masks.shape[-1]).astype(np.float64)
    g = gt_masks.reshape(-1, gt_masks.shape[-1]).astype(np.float64)
    inter = d.T @ g
    area_d = d.sum(axis=0)[:, None]
    area_g = g.sum(axis=0)[None, :]
    union = np.where(np.asarray(crowd)[None, :], area_d + 0 * area_g, area_d + area_g - inter)
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def coco_mask_ap(images, max_dets=100):
    """COCO segm AP (area 'all', maxDets 100) with COCOeval's matching and 101-point interpolation.

    images: list of dicts with gt_masks bool [H,W,G], gt_class_ids [G], gt_crowd bool [G],
    pred_masks bool [H,W,D], pred_class_ids [D], pred_scores [D].
    → dict AP (0.5:0.95), AP50, AP75 (-1 where no category has ground truth)."""
    categories = sorted(
        {int(c) for im in images for c in np.asarray(im["gt_class_ids"]).tolist()}
        | {int(c) for im in images for c in np.asarray(im["pred_class_ids"]).tolist()}
    )
    T, R = len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS)
    precision = -np.ones((T, R, len(categories)))
    for k, cat in enumerate(categories):
        scores_all, matched_all, ignored_all = [], [], []
        npig = 0
        for im in images:
            gsel = np.flatnonzero(np.asarray(im["gt_class_ids"]) == cat)
            dsel = np.flatnonzero(np.asarray(im["pred_class_ids"]) == cat)
            crowd = np.asarray(im.get("gt_crowd", np.zeros(len(im["gt_class_ids"]), bool)), dtype=bool)[gsel]
            gorder = np.argsort(crowd.astype(int), kind="mergesort")
            gsel, crowd = gsel[gorder], crowd[gorder]
            scores = np.asarray(im["pred_scores"], dtype=np.float64)[dsel]
            dorder = np.argsort(-scores, kind="mergesort")[:max_dets]
            dsel, scores = dsel[dorder], scores[dorder]
            npig += int(np.sum(~crowd))
            if len(dsel) == 0:
                continue
            ious = _mask_iou_coco(
                np.asarray(im["pred_masks"])[..., dsel], np.asarray(im["gt_masks"])[..., gsel], crowd
            )
            dtm = np.zeros((T, len(dsel)), bool)
            dtig = np.zeros((T, len(dsel)), bool)
            gtm = np.zeros((T, len(gsel)), bool)
            for t, threshold in enumerate(IOU_THRESHOLDS):
                for d in range(len(dsel)):
                    best = min(threshold, 1 - 1e-10)
                    m = -1
                    for g in range(len(gsel)):
                        if gtm[t, g] and not crowd[g]:
                            continue
                        if m > -1 and not crowd[m] and crowd[g]:
                            break
                        if ious[d, g] < best:
                            continue
                        best = ious[d, g]
                        m = g
                    if m == -1:
                        continue
                    dtig[t, d] = crowd[m]
                    dtm[t, d] = True
                    gtm[t, m] = True
            scores_all.append(scores)
            matched_all.append(dtm)
            ignored_all.append(dtig)
        if npig == 0:
            continue
        if not scores_all:
            precision[:, :, k] = 0.0
            continue
        scores = np.concatenate(scores_all)
        order = np.argsort(-scores, kind="mergesort")
        dtm = np.concatenate(matched_all, axis=1)[:, order]
        dtig = np.concatenate(ignored_all, axis=1)[:, order]
        tps = np.cumsum(dtm & ~dtig, axis=1).astype(np.float64)
        fps = np.cumsum(~dtm & ~dtig, axis=1).astype(np.float64)
        for t in range(T):
            tp, fp = tps[t], fps[t]
            rc = tp / npig
            pr = tp / (fp + tp + np.spacing(1))
            for i in range(len(pr) - 1, 0, -1):
                if pr[i] > pr[i - 1]:
                    pr[i - 1] = pr[i]
            q = np.zeros(R)
            inds = np.searchsorted(rc, RECALL_THRESHOLDS, side="left")
            for ri, pi in enumerate(inds):
                if pi < len(pr):
                    q[ri] = pr[pi]
            precision[t, :, k] = q

    def summary(ts):
        values = precision[ts]
        values = values[values > -1]
        return float(np.mean(values)) if values.size else -1.0

    return {"AP": summary(slice(None)), "AP50": summary(0), "AP75": summary(5)}


def pycocotools_mask_ap(images):
    """The same as coco_mask_ap, computed by pycocotools (COCOeval, iouType 'segm')."""
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
            gt["annotations"].append({"id": ann_id, "image_id": image_id, "category_id": int(cls), "segmentation": rle,
                                      "area": area, "bbox": bbox, "iscrowd": int(crowd[i])})  # fmt: skip
            categories.add(int(cls))
            ann_id += 1
        for i, cls in enumerate(np.asarray(im["pred_class_ids"]).tolist()):
            rle = mask_utils.encode(np.asfortranarray(np.asarray(im["pred_masks"])[:, :, i].astype(np.uint8)))
            rle["counts"] = rle["counts"].decode("ascii")
            results.append({"image_id": image_id, "category_id": int(cls), "segmentation": rle,
                            "score": float(im["pred_scores"][i])})  # fmt: skip
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


def evaluate(model, dataset, limit=None, iou_threshold=0.5, coco=True, batch_size=None) -> dict:
    """Run detect over a dataset at original image size: mean per-image VOC mAP on masks, and
    (coco=True) COCO mask AP from pycocotools."""
    ids = list(dataset.image_ids)[:limit]
    batch = int(batch_size or model.config.BATCH_SIZE or 1)
    aps, records = [], []
    seconds = 0.0
    for start in range(0, len(ids), batch):
        chunk = ids[start : start + batch]
        images = [dataset.load_image(i) for i in chunk]
        same = len({im.shape for im in images}) == 1
        t0 = time.perf_counter()
        results = model.detect(images) if same else [model.detect([im])[0] for im in images]
        seconds += time.perf_counter() - t0
        for image_id, image, r in zip(chunk, images, results):
            masks, class_ids = dataset.load_mask(image_id)
            class_ids = np.asarray(class_ids, dtype=np.int32)
            if masks.shape[-1] == 0:
                masks = np.zeros(image.shape[:2] + (0,), bool)
            crowd = class_ids < 0
            from .boxes import extract_bboxes

            gt_masks = masks[:, :, ~crowd]
            ap, *_ = compute_ap(extract_bboxes(gt_masks), class_ids[~crowd], gt_masks, r["rois"], r["class_ids"],
                                r["scores"], r["masks"], iou_threshold)  # fmt: skip
            aps.append(ap)
            records.append({"gt_masks": masks.astype(bool), "gt_class_ids": np.abs(class_ids), "gt_crowd": crowd,
                            "pred_masks": r["masks"], "pred_class_ids": r["class_ids"], "pred_scores": r["scores"]})  # fmt: skip
    result = {"images": len(ids), "mAP": float(np.mean(aps)) if aps else 0.0,
              "ms_per_image": 1000.0 * seconds / max(1, len(ids))}  # fmt: skip
    if coco and records:
        stats = pycocotools_mask_ap(records)
        result.update({"coco_mask_AP": stats["AP"], "coco_mask_AP50": stats["AP50"], "coco_mask_AP75": stats["AP75"]})
    return result
