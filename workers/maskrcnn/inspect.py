"""`streamer inspect maskrcnn INPUT -o DIR`: pictures of each stage of Mask R-CNN on one image or video frame,
in the spirit of matterport's inspect_model / inspect_weights notebooks.

DIR gets: anchors.png (anchors at each pyramid level), rpn_anchors.png (the top RPN anchors, refined, after
NMS), proposals.png, refinement.png (the detection stage's box refinement: ROI dashed, refined box solid),
detections.png (final detections with masks), mask_head.png (the 28×28 mask head outputs per detection),
activations.png (backbone / FPN activations), weights_N.png (histograms of every layer's weights), and
index.html / index.json with the captions (index.json also holds the anchor counts).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from streamer.progress import counted
from workers.report import PictureSet, channel_picture, overlay, pyplot, read_input

TOP_ANCHORS = 50
SHOWN_PROPOSALS = 100
SHOWN_REFINEMENTS = 20
HISTOGRAMS_PER_PAGE = 60


def inspect(
    input_path: str, out: str, weights: str | None = None, frame: int = 0, device: str | None = None, **options
) -> Path:
    """Write the pictures for `input_path` (frame `frame` of a video) into `out`; returns index.html. `options`:
    ModelConfig's config_file, settings, class_names and exclude (--config, --set, --class-names, --exclude),
    read with the weights file as `streamer process` reads them."""
    import tensorflow as tf

    from streamer.models import ModelConfig

    from .anchors import compute_backbone_shapes, get_anchors
    from .boxes import apply_box_deltas, denorm_boxes, norm_boxes
    from .predictor import MaskRCNNPredictor
    from .proposals import proposal_layer

    image = read_input(input_path, frame)
    predictor = MaskRCNNPredictor(ModelConfig(name="maskrcnn", weights=weights, batch_size=1, device=device, **options))
    model, config = predictor.model, predictor.model.config
    names = list(predictor.class_names or [])
    pictures = PictureSet(out)
    plt = pyplot()

    molded, windows, _ = model.mold_inputs([image])
    shape = molded.shape[1:3]
    shown = np.clip(molded[0] + np.asarray(config.MEAN_PIXEL, np.float32), 0, 255).astype(np.uint8)
    anchors_px = get_anchors(config, shape, normalized=False)
    anchors_norm = model.get_anchors(shape)
    levels = compute_backbone_shapes(config, shape)
    per_level = [
        int(math.ceil(h / config.RPN_ANCHOR_STRIDE) * math.ceil(w / config.RPN_ANCHOR_STRIDE))
        * len(config.RPN_ANCHOR_RATIOS)
        for h, w in levels
    ]

    # 1. anchors at each pyramid level
    figure, axes = plt.subplots(1, len(levels), figsize=(3.2 * len(levels), 3.6), squeeze=False)
    start = 0
    for level, count in enumerate(per_level):
        axis = axes[0][level]
        axis.imshow(shown)
        chunk = anchors_px[start : start + count]
        centres = (chunk[:, :2] + chunk[:, 2:]) / 2
        middle = np.argmin(np.abs(centres - np.array(shape) / 2).sum(axis=1))
        ratios = len(config.RPN_ANCHOR_RATIOS)
        first = middle - middle % ratios
        rng = np.random.default_rng(level)
        for box in chunk[rng.choice(count, min(count, 30), replace=False)]:
            _box(axis, box, "#888888", "-", 0.6)
        for box in chunk[first : first + ratios]:
            _box(axis, box, f"C{level}", "-", 2.0)
        axis.set_title(f"P{level + 2}: {levels[level][0]}×{levels[level][1]} cells, {count} anchors", fontsize=8)
        axis.axis("off")
        start += count
    figure.suptitle(f"{len(anchors_px)} anchors for a {shape[1]}×{shape[0]} input", fontsize=10)
    pictures.figure(
        figure,
        "anchors.png",
        f"Anchors at each pyramid level: all {len(config.RPN_ANCHOR_RATIOS)} ratios at the centre cell (colour) and "
        f"a random sample (grey); {len(anchors_px)} anchors in all (scales {list(config.RPN_ANCHOR_SCALES)})",
    )

    # the network, stage by stage
    tensor = tf.convert_to_tensor(molded)
    feature_maps = [tf.cast(p, tf.float32) for p in model.keras_model.backbone(tensor, training=False)]
    _, rpn_probs, rpn_deltas = model.rpn_outputs(feature_maps)
    scores = rpn_probs.numpy()[0, :, 1]
    deltas = rpn_deltas.numpy()[0] * np.asarray(config.RPN_BBOX_STD_DEV, np.float32)
    top = np.argsort(-scores)[:TOP_ANCHORS]
    refined_norm = apply_box_deltas(anchors_norm[top], deltas[top])
    refined_norm = np.clip(refined_norm, 0.0, 1.0)
    refined = denorm_boxes(refined_norm, shape)
    keep = tf.image.non_max_suppression(refined_norm, scores[top], TOP_ANCHORS, config.RPN_NMS_THRESHOLD).numpy()

    # 2. top RPN anchors, refined, after NMS
    figure, axes = plt.subplots(1, 3, figsize=(12, 4.4))
    panels = [
        (f"top {len(top)} anchors by RPN score", [(anchors_px[top], "--")]),
        ("refined by the RPN deltas (anchor dashed, refined solid)", [(anchors_px[top], "--"), (refined, "-")]),
        (f"after NMS: {len(keep)} left", [(refined[keep], "-")]),
    ]
    for axis, (title, groups) in zip(axes, panels):
        axis.imshow(shown)
        for boxes, style in groups:
            for i, box in enumerate(boxes):
                _box(axis, box, f"C{i % 10}", style, 1.0)
        axis.set_title(title, fontsize=9)
        axis.axis("off")
    pictures.figure(
        figure,
        "rpn_anchors.png",
        "The RPN's top anchors (positive score) before refinement, with the refinement applied, and after "
        "non-max suppression",
    )

    # 3. proposals
    rois = proposal_layer(
        rpn_probs,
        rpn_deltas,
        tf.convert_to_tensor(anchors_norm),
        int(config.POST_NMS_ROIS_INFERENCE),
        float(config.RPN_NMS_THRESHOLD),
        int(config.PRE_NMS_LIMIT),
        np.asarray(config.RPN_BBOX_STD_DEV, np.float32),
    )
    roi_norm = rois.numpy()[0]
    real = (roi_norm[:, 2] - roi_norm[:, 0]) * (roi_norm[:, 3] - roi_norm[:, 1]) > 0
    roi_px = denorm_boxes(roi_norm, shape)
    figure, axis = plt.subplots(figsize=(6, 6))
    axis.imshow(shown)
    for i, box in enumerate(roi_px[real][:SHOWN_PROPOSALS]):
        _box(axis, box, f"C{i % 10}", "-", 0.7)
    axis.set_title(f"{int(real.sum())} proposals (the first {min(SHOWN_PROPOSALS, int(real.sum()))} shown)", fontsize=9)
    axis.axis("off")
    pictures.figure(figure, "proposals.png", "Proposals: refined anchors after NMS, the regions the heads look at")

    # 4. the detection stage's box refinement
    _, probs, class_deltas = model.classify(rois, feature_maps[:4], tf.shape(tensor)[1:3])
    probs, class_deltas = probs.numpy()[0], class_deltas.numpy()[0]
    class_ids = probs.argmax(axis=1)
    class_scores = probs.max(axis=1)
    candidates = np.flatnonzero((class_ids > 0) & real)
    candidates = candidates[np.argsort(-class_scores[candidates])][:SHOWN_REFINEMENTS]
    specific = class_deltas[candidates, class_ids[candidates]] * np.asarray(config.BBOX_STD_DEV, np.float32)
    after = denorm_boxes(np.clip(apply_box_deltas(roi_norm[candidates], specific), 0, 1), shape)
    figure, axis = plt.subplots(figsize=(6, 6))
    axis.imshow(shown)
    for i, k in enumerate(candidates):
        colour = f"C{i % 10}"
        _box(axis, roi_px[k], colour, "--", 1.0)
        _box(axis, after[i], colour, "-", 1.8)
        axis.text(
            after[i][1], after[i][0], f"{_name(names, class_ids[k])} {class_scores[k]:.2f}", color=colour, fontsize=6
        )
    axis.set_title(f"box refinement of the top {len(candidates)} non-background ROIs", fontsize=9)
    axis.axis("off")
    pictures.figure(
        figure, "refinement.png", "Detection stage: each ROI (dashed) and its class-specific refined box (solid)"
    )

    # 5. final detections with masks, and 6. the mask head's outputs
    windows_norm = norm_boxes(windows, shape)
    detections, masks = model.inference_graph(
        tensor, tf.convert_to_tensor(windows_norm), tf.convert_to_tensor(anchors_norm)
    )
    detections, masks = detections.numpy()[0], masks.numpy()[0]
    count = int(np.sum(detections[:, 4] > 0))
    found = model.unmold_detections(detections, masks, image.shape, shape, windows[0])
    figure, axis = plt.subplots(figsize=(8, 8 * image.shape[0] / image.shape[1]))
    axis.imshow(overlay(image, found["masks"]))
    for i, (box, class_id, score) in enumerate(zip(found["rois"], found["class_ids"], found["scores"])):
        _box(axis, box, f"C{i % 10}", "-", 1.5)
        axis.text(box[1], box[0] - 2, f"{_name(names, class_id)} {score:.2f}", color=f"C{i % 10}", fontsize=8)
    axis.set_title(counted(len(found["class_ids"]), "detection"), fontsize=9)
    axis.axis("off")
    pictures.figure(figure, "detections.png", "Final detections: boxes, classes, scores and masks at the input's size")

    columns = max(1, min(6, count))
    rows = max(1, math.ceil(count / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.4 * rows), squeeze=False)
    for i in range(rows * columns):
        axis = axes[i // columns][i % columns]
        axis.axis("off")
        if i < count:
            axis.imshow(masks[i], cmap="viridis", vmin=0, vmax=1)
            axis.set_title(f"{_name(names, int(detections[i, 4]))} {detections[i, 5]:.2f}", fontsize=8)
    if not count:
        axes[0][0].text(0.5, 0.5, "no detections", ha="center", va="center")
    mask_shape = masks.shape[1:3] if count else tuple(config.MASK_SHAPE)
    pictures.figure(
        figure,
        "mask_head.png",
        f"The mask head's {mask_shape[0]}×{mask_shape[1]} output (probability) for each detection's class",
    )

    # 7. backbone activations
    figure, axes = plt.subplots(1, len(feature_maps) + 1, figsize=(2.8 * (len(feature_maps) + 1), 3.2))
    axes[0].imshow(shown)
    axes[0].set_title("input (molded)", fontsize=8)
    for level, feature in enumerate(feature_maps):
        axes[level + 1].imshow(channel_picture(feature.numpy()[0]), cmap="inferno")
        axes[level + 1].set_title(f"P{level + 2} {tuple(feature.shape[1:])}", fontsize=8)
    for axis in axes:
        axis.axis("off")
    pictures.figure(figure, "activations.png", "Backbone + FPN activations (P2…P6): mean absolute value per position")
    _backbone_layers(model, tensor, pictures)

    # 8. histograms of every layer's weights
    _weight_histograms(model, pictures)

    anchors = {
        "total": len(anchors_px),
        "per_level": per_level,
        "image_shape": [int(shape[0]), int(shape[1])],
        "ratios": list(config.RPN_ANCHOR_RATIOS),
        "scales": list(config.RPN_ANCHOR_SCALES),
    }
    extra = {"model": "maskrcnn", "input": str(input_path), "frame": frame, "anchors": anchors, "detections": count}
    return pictures.finish(f"Mask R-CNN inspection of {Path(input_path).name}", extra)


def _backbone_layers(model, tensor, pictures, count: int = 6) -> None:
    """Activations of a few convolutions spread through the backbone."""
    import keras

    backbone = model.keras_model.backbone
    convolutions = [layer for layer in backbone.layers if isinstance(layer, keras.layers.Conv2D)]
    if not convolutions:
        return
    chosen = [convolutions[int(i)] for i in np.linspace(0, len(convolutions) - 1, min(count, len(convolutions)))]
    probe = keras.Model(backbone.inputs, [layer.output for layer in chosen])
    outputs = probe(tensor, training=False)
    outputs = outputs if isinstance(outputs, list | tuple) else [outputs]
    plt = pyplot()
    figure, axes = plt.subplots(1, len(chosen), figsize=(2.8 * len(chosen), 3.2), squeeze=False)
    for axis, layer, output in zip(axes[0], chosen, outputs):
        axis.imshow(channel_picture(np.asarray(output)[0]), cmap="inferno")
        axis.set_title(f"{layer.name}\n{tuple(output.shape[1:])}", fontsize=7)
        axis.axis("off")
    pictures.figure(
        figure, "backbone_layers.png", f"Activations of {len(chosen)} backbone convolutions, input to output"
    )


def _weight_histograms(model, pictures) -> None:
    """One histogram per weight tensor of every layer, HISTOGRAMS_PER_PAGE per picture."""
    plt = pyplot()
    tensors = []
    for part in (model.keras_model.backbone, model.keras_model.rpn, model.keras_model.classifier):
        for layer in part.layers:
            tensors += [(f"{layer.name}/{w.name}", w) for w in layer.weights]
    for layer in model.keras_model.mask_head.layers:
        tensors += [(f"{layer.name}/{w.name}", w) for w in layer.weights]
    pages = max(1, math.ceil(len(tensors) / HISTOGRAMS_PER_PAGE))
    for page in range(pages):
        chunk = tensors[page * HISTOGRAMS_PER_PAGE : (page + 1) * HISTOGRAMS_PER_PAGE]
        columns = 6
        rows = max(1, math.ceil(len(chunk) / columns))
        figure, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 1.9 * rows), squeeze=False)
        for i in range(rows * columns):
            axis = axes[i // columns][i % columns]
            if i >= len(chunk):
                axis.axis("off")
                continue
            name, weight = chunk[i]
            values = np.asarray(weight.numpy(), np.float32).ravel()
            counts, edges = np.histogram(values, bins=30)
            axis.stairs(counts, edges, fill=True, color="C0")
            axis.set_title(f"{name} {tuple(weight.shape)}", fontsize=5)
            axis.set_yticks([])
            axis.set_xticks([float(edges[0]), float(edges[-1])])
            axis.tick_params(labelsize=5, length=2, pad=1)
        figure.subplots_adjust(left=0.02, right=0.98, top=0.96, bottom=0.03, hspace=0.6, wspace=0.15)
        pictures.figure(
            figure,
            f"weights_{page + 1}.png",
            f"Histograms of the layers' weights ({page + 1}/{pages}: tensors {page * HISTOGRAMS_PER_PAGE + 1}–"
            f"{page * HISTOGRAMS_PER_PAGE + len(chunk)} of {len(tensors)})",
        )


def _box(axis, box, colour, style, width) -> None:
    from matplotlib.patches import Rectangle

    y1, x1, y2, x2 = (float(v) for v in box)
    axis.add_patch(
        Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linestyle=style, linewidth=width)
    )


def _name(names: list[str], class_id) -> str:
    class_id = int(class_id)
    return names[class_id] if 0 <= class_id < len(names) else str(class_id)
