"""`MaskRCNN`: builds the Keras layers for a Config and runs inference and training graphs."""

from __future__ import annotations

import contextlib
import re
import threading

import keras
import numpy as np
import tensorflow as tf

from streamer.errors import StreamerError

from . import fused as fused_graph
from . import losses, molding
from .anchors import get_anchors
from .backbone import build_backbone
from .boxes import norm_boxes_graph
from .config import Config
from .detection import detections as detection_layer
from .heads import build_classifier_head, build_mask_head
from .proposals import proposal_layer
from .roi_align import pyramid_roi_align, roi_align_flat
from .rpn import build_rpn_model
from .targets import detection_targets_graph

LAYER_REGEX = {
    "heads": r"(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "3+": r"(res3.*)|(bn3.*)|(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "4+": r"(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "5+": r"(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "all": ".*",
}


class MaskRCNNModel(keras.Model):
    """Container of the four sub-models; its weights are what gets saved."""

    def __init__(self, config: Config):
        super().__init__(name="mask_rcnn")
        self.backbone = build_backbone(config)
        self.rpn = build_rpn_model(
            config.RPN_ANCHOR_STRIDE,
            len(config.RPN_ANCHOR_RATIOS),
            int(config.TOP_DOWN_PYRAMID_SIZE),
            int(config.RPN_CONV_DEPTH),
        )
        self.classifier = build_classifier_head(config)
        self.mask_head = build_mask_head(config)
        self.built = True

    def call(self, inputs, training=False):  # pragma: no cover - use MaskRCNN methods
        return self.backbone(inputs, training=training)


class MaskRCNN:
    """Mask R-CNN for one Config. `detect(images)` for inference; train.py for training."""

    def __init__(self, config: Config, device: str | None = None, fused: bool = True):
        """`fused`: detect runs the graph of fused.py (BatchNorms folded into the convolutions, the same
        results within float rounding) when the model allows it; False: the Keras layers' graph."""
        self.config = config
        self.device = device
        with tf.device(device) if device else contextlib.nullcontext():
            self.keras_model = MaskRCNNModel(config)
        self._anchors = {}
        self.fused = fused
        self._weights_fixed = False  # see fix_weights
        self._folded = None  # fused.fold of the fixed weights as arrays, made on first detect
        self._fold_lock = threading.Lock()
        self._graph_lock = threading.Lock()
        # Made here, not on first use: threads calling detect at once share one function (and its graphs).
        self._inference_fn = tf.function(self._detect_graph, reduce_retracing=False)
        self._fold_fn = tf.function(lambda: fused_graph.fold(self))

    # ---------------------------------------------------------------- layers
    def sub_models(self):
        m = self.keras_model
        return [m.backbone, m.rpn, m.classifier, m.mask_head]

    def layers_by_name(self) -> dict:
        """Every named layer with weights, including the nested `rpn_model` itself."""
        out = {}
        for sub in self.sub_models():
            for layer in sub.layers:
                if isinstance(layer, keras.layers.InputLayer):
                    continue
                out[layer.name] = layer
        out[self.keras_model.rpn.name] = self.keras_model.rpn
        return out

    def set_trainable(self, layers: str):
        """layers: heads | 3+ | 4+ | 5+ | all | a regular expression on layer names."""
        self.weights_changed(fixed=False)
        pattern = LAYER_REGEX.get(layers, layers)
        try:
            regex = re.compile(pattern)
        except re.error as error:
            raise StreamerError(f"--layers {layers!r} is not a valid regular expression ({error})") from None
        count = 0
        for sub in self.sub_models():
            for layer in sub.layers:
                if not layer.weights:
                    continue
                trainable = bool(regex.fullmatch(layer.name))
                layer.trainable = trainable
                count += trainable
        if not count:
            raise StreamerError(f"--layers {layers!r} matches no layer: use heads, 3+, 4+, 5+, all or a regex")
        return count

    def trainable_variables(self):
        self.weights_changed(fixed=False)
        return [v for sub in self.sub_models() for v in sub.trainable_variables]

    def load_weights(self, path, by_name=True, exclude=None):
        from .weights import load_weights

        try:
            return load_weights(self, path, by_name=by_name, exclude=exclude)
        finally:
            self.weights_changed()

    def fix_weights(self):
        """Promise that the weights stay as they are (a model loaded to serve): detect then folds them once,
        into constants of its graph, not on every call. load_weights keeps the promise (and folds the new
        weights); training, or `weights_changed()`, ends it."""
        self.weights_changed(fixed=True)

    def weights_changed(self, fixed: bool | None = None):
        """The weights were changed: a fixed model folds them anew on its next detect. `fixed`: whether they
        stay fixed from now on (None: as before)."""
        with self._fold_lock:
            if self._folded is not None:  # its graphs hold the old weights as constants: new graphs
                self._inference_fn = tf.function(self._detect_graph, reduce_retracing=False)
            self._folded = None
            if fixed is not None:
                self._weights_fixed = fixed

    def save_weights(self, path, extra: dict | None = None):
        from .weights import save_weights

        return save_weights(self, path, extra=extra)

    # ---------------------------------------------------------------- graph pieces
    def get_anchors(self, image_shape):
        key = tuple(int(v) for v in image_shape[:2])
        if key not in self._anchors:
            self._anchors[key] = get_anchors(self.config, key)
        return self._anchors[key]

    def rpn_outputs(self, feature_maps, training=False):
        outputs = [self.keras_model.rpn(p, training=training) for p in feature_maps]
        logits, probs, deltas = (tf.cast(tf.concat([o[i] for o in outputs], axis=1), tf.float32) for i in range(3))
        return logits, probs, deltas

    def roi_edge(self) -> str:
        """How ROI Align treats the feature map's edge (roi_align.py): matterport's zeros with RESIZE_COMPAT
        "matterport", else the replicated edge."""
        return "zero" if self.config.matterport_numerics else "replicate"

    def classify(self, rois, feature_maps, image_shape, training=False):
        pool = int(self.config.POOL_SIZE)
        pooled = pyramid_roi_align(rois, feature_maps, pool, image_shape, edge=self.roi_edge())
        b, n = tf.shape(rois)[0], tf.shape(rois)[1]
        flat = tf.reshape(pooled, [-1, pool, pool, pooled.shape[-1]])
        logits, probs, deltas = self.keras_model.classifier(flat, training=training)
        c = int(self.config.NUM_CLASSES)
        logits, probs, deltas = (tf.cast(t, tf.float32) for t in (logits, probs, deltas))
        return (
            tf.reshape(logits, [b, n, c]),
            tf.reshape(probs, [b, n, c]),
            tf.reshape(deltas, [b, n, c, 4]),
        )

    def masks(self, rois, feature_maps, image_shape, training=False):
        pool = int(self.config.MASK_POOL_SIZE)
        pooled = pyramid_roi_align(rois, feature_maps, pool, image_shape, edge=self.roi_edge())
        b, n = tf.shape(rois)[0], tf.shape(rois)[1]
        flat = tf.reshape(pooled, [-1, pool, pool, pooled.shape[-1]])
        out = tf.cast(self.keras_model.mask_head(flat, training=training), tf.float32)
        return tf.reshape(out, tf.concat([[b, n], tf.shape(out)[1:]], axis=0))

    def inference_graph(self, images, windows, anchors):
        """Molded images [B,H,W,3] float, windows [B,4] normalised, anchors [A,4] normalised →
        detections [B,D,6] and the detected class's mask [B,D,mh,mw] (probabilities)."""
        config = self.config
        image_shape = tf.shape(images)[1:3]
        feature_maps = [tf.cast(p, tf.float32) for p in self.keras_model.backbone(images, training=False)]
        _, rpn_probs, rpn_deltas = self.rpn_outputs(feature_maps)
        rois = proposal_layer(
            rpn_probs,
            rpn_deltas,
            anchors,
            int(config.POST_NMS_ROIS_INFERENCE),
            float(config.RPN_NMS_THRESHOLD),
            int(config.PRE_NMS_LIMIT),
            np.asarray(config.RPN_BBOX_STD_DEV, np.float32),
            config.box_delta_limit,
        )
        _, probs, deltas = self.classify(rois, feature_maps[:4], image_shape)
        detections = detection_layer(rois, probs, deltas, windows, config)
        # The mask head runs only on real detections (not on the zero padding up to D).
        class_ids = tf.cast(detections[..., 4], tf.int32)
        where = tf.where(class_ids > 0)  # [K, 2] (image, slot)
        pool = int(config.MASK_POOL_SIZE)
        boxes = tf.gather_nd(detections[..., :4], where)
        pooled = roi_align_flat(boxes, where[:, 0], feature_maps[:4], pool, image_shape, edge=self.roi_edge())
        # One blank ROI more, dropped after the head: TensorFlow's convolutions fail on an empty batch, which
        # is what the head would get when no image of the batch has a detection.
        blank = tf.zeros(tf.concat([[1], tf.shape(pooled)[1:]], axis=0), pooled.dtype)
        masks = self.keras_model.mask_head(tf.concat([pooled, blank], axis=0), training=False)[:-1]
        masks = tf.cast(masks, tf.float32)  # [K,h,w,C]
        masks = tf.gather(tf.transpose(masks, [0, 3, 1, 2]), tf.gather_nd(class_ids, where), batch_dims=1)
        shape = tf.concat([tf.shape(class_ids, out_type=tf.int64), tf.shape(masks, out_type=tf.int64)[1:]], axis=0)
        return detections, tf.scatter_nd(where, masks, shape)

    def training_graph(self, images, rpn_match, rpn_bbox, gt_class_ids, gt_boxes, gt_masks, anchors, training=True):
        """One forward pass in training mode → dict of the five losses."""
        config = self.config
        image_shape = tf.shape(images)[1:3]
        feature_maps = [tf.cast(p, tf.float32) for p in self.keras_model.backbone(images, training=training)]
        rpn_logits, rpn_probs, rpn_deltas = self.rpn_outputs(feature_maps, training=training)
        proposals = proposal_layer(
            tf.stop_gradient(rpn_probs),
            tf.stop_gradient(rpn_deltas),
            anchors,
            int(config.POST_NMS_ROIS_TRAINING),
            float(config.RPN_NMS_THRESHOLD),
            int(config.PRE_NMS_LIMIT),
            np.asarray(config.RPN_BBOX_STD_DEV, np.float32),
        )
        gt_norm = norm_boxes_graph(gt_boxes, image_shape)
        gt_norm = gt_norm * tf.cast(tf.not_equal(gt_class_ids, 0), tf.float32)[..., None]
        targets = [
            detection_targets_graph(proposals[i], gt_class_ids[i], gt_norm[i], gt_masks[i], config)
            for i in range(images.shape[0])
        ]
        rois, target_ids, target_deltas, target_masks = (tf.stack([t[k] for t in targets]) for k in range(4))
        rois = tf.stop_gradient(rois)
        class_logits, _, pred_deltas = self.classify(rois, feature_maps[:4], image_shape, training=training)
        positives = int(config.TRAIN_ROIS_PER_IMAGE * config.ROI_POSITIVE_RATIO)
        pred_masks = self.masks(rois[:, :positives], feature_maps[:4], image_shape, training=training)
        valid = tf.reduce_any(tf.not_equal(rois, 0.0), axis=-1)
        return {
            "rpn_class_loss": losses.rpn_class_loss(rpn_match, rpn_logits),
            "rpn_bbox_loss": losses.rpn_bbox_loss(rpn_bbox, rpn_match, rpn_deltas),
            "mrcnn_class_loss": losses.mrcnn_class_loss(target_ids, class_logits, valid),
            "mrcnn_bbox_loss": losses.mrcnn_bbox_loss(target_deltas, target_ids, pred_deltas),
            "mrcnn_mask_loss": losses.mrcnn_mask_loss(
                target_masks[:, :positives], target_ids[:, :positives], pred_masks
            ),
        }

    # ---------------------------------------------------------------- inference
    def mold_inputs(self, images):
        """uint8 RGB images → molded float batch, windows (px) and scales (molding.mold_inputs)."""
        return molding.mold_inputs(self.config, images)

    def _detect_graph(self, images, windows, anchors, graph="fused"):
        """detect's graph: "keras" (inference_graph), "fused" (fused.inference, folding the variables' current
        values inside the graph) or "fixed" (fused.inference on the folded weights as constants, which
        oneDNN keeps in its own layout between calls)."""
        if graph == "keras":
            return self.inference_graph(images, windows, anchors)
        folded = self._folded if graph == "fixed" else None
        if folded is None:
            folded = fused_graph.fold(self)
        else:
            folded = {name: (tf.constant(kernel), tf.constant(bias)) for name, (kernel, bias) in folded.items()}
        return fused_graph.inference(self, folded, images, windows, anchors)

    def _run_inference(self, molded, windows_norm, anchors):
        graph = "fused" if self.fused and fused_graph.supported(self) else "keras"
        with tf.device(self.device) if self.device else contextlib.nullcontext():
            if graph == "fused" and self._weights_fixed:
                graph = "fixed"
                with self._fold_lock:
                    if self._folded is None:
                        self._folded = {k: (w.numpy(), b.numpy()) for k, (w, b) in self._fold_fn().items()}
            # one thread at a time runs the graph: grappler's rewrites can give it per-step temporaries that are
            # not re-entrant (a second caller fails with AlreadyExistsError); molding and mask pasting overlap it
            with self._graph_lock:
                return self._inference_fn(
                    tf.convert_to_tensor(molded),
                    tf.convert_to_tensor(windows_norm),
                    tf.convert_to_tensor(anchors),
                    graph,
                )

    def detect(self, images, verbose=0) -> list[dict]:
        """images: list or array of uint8 RGB images (any count). → one dict per image with
        rois [N,4] int32 (y1,x1,y2,x2) on the original image, class_ids int32[N],
        scores float32[N], masks bool [H,W,N]."""

        def run(molded, windows):
            detections, masks = self._run_inference(molded, windows, self.get_anchors(molded.shape[1:3]))
            return detections.numpy(), masks.numpy()

        return molding.detect(self.config, images, run)

    def unmold_detections(self, detections, masks, original_shape, molded_shape, window) -> dict:
        return molding.unmold_detections(self.config, detections, masks, original_shape, molded_shape, window)
