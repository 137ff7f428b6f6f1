"""Inference graph with the Keras layers' weights folded: the same network as `MaskRCNN.inference_graph`,
computed with fewer passes over memory.

* Each BatchNorm is folded into the convolution before it (kernel × γ/√(σ²+ε), bias (b − μ)·γ/√(σ²+ε) + β),
  so a convolution, its bias and its ReLU run as one fused kernel and no normalisation pass is left.
* The classifier head's 7×7 "convolution" of a 7×7 ROI and its 1×1 follow-up are the matrix products they
  are; the RPN's class and box convolutions are one convolution (the shared map is read once); only the
  foreground probability of the RPN's softmax is computed (σ(l₁ − l₀)).
* The mask head's 2×2 stride-2 transposed convolution is a matrix product and a pixel shuffle, and its last
  1×1 convolution and sigmoid run only for each detection's class (what detect keeps).
* ROI Align prepares the feature maps' edges once for the classifier and mask heads.

`fold(model)` gives the folded weights as tensors. MaskRCNN.detect folds inside its graph on every call (so a
change of weights counts at once), or, once the weights are fixed (`MaskRCNN.fix_weights`, as the predictor
does), folds them once into constants of the graph, which oneDNN keeps in its own layout between calls.
Results equal the Keras graph's within float rounding.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from .detection import detections as detection_layer
from .proposals import proposal_layer
from .roi_align import edge_maps, roi_align_flat


def _bn_name(conv: str) -> str:
    """The BatchNorm after a convolution, by matterport's names."""
    if conv == "conv1":
        return "bn_conv1"
    if conv.startswith("res"):
        return "bn" + conv[3:]
    return conv.replace("_conv", "_bn")


def supported(model) -> bool:
    """Whether `fold`/`inference` apply: float32 layers (a mixed-precision model keeps the Keras graph) and a
    backbone built here."""
    return model.config.BACKBONE in ("resnet50", "resnet101", "light") and all(
        sub.compute_dtype == "float32" for sub in model.sub_models()
    )


def fold(model) -> dict:
    """The model's current weights, BatchNorms folded in: {layer name: (kernel, bias)} float32 tensors."""
    layers = model.layers_by_name()
    out = {}
    for name, layer in layers.items():
        kind = type(layer).__name__
        if kind not in ("Conv2D", "Dense", "Conv2DTranspose"):
            continue
        kernel = tf.convert_to_tensor(layer.kernel, tf.float32)
        bias = tf.convert_to_tensor(layer.bias, tf.float32) if layer.use_bias else tf.zeros([kernel.shape[-1]])
        bn = layers.get(_bn_name(name)) if kind == "Conv2D" else None
        if bn is not None and type(bn).__name__ == "BatchNorm":
            gamma = tf.convert_to_tensor(bn.gamma, tf.float32) if bn.scale else 1.0
            beta = tf.convert_to_tensor(bn.beta, tf.float32) if bn.center else 0.0
            mean = tf.convert_to_tensor(bn.moving_mean, tf.float32)
            scale = gamma * tf.math.rsqrt(tf.convert_to_tensor(bn.moving_variance, tf.float32) + bn.epsilon)
            kernel = kernel * scale
            bias = (bias - mean) * scale + beta
        out[name] = (kernel, bias)
    # The RPN's class and box convolutions as one (split after), the classifier's convolutions as matrices.
    (ck, cb), (bk, bb) = out["rpn_class_raw"], out["rpn_bbox_pred"]
    out["rpn_heads"] = (tf.concat([ck, bk], axis=-1), tf.concat([cb, bb], axis=-1))
    for name in ("mrcnn_class_conv1", "mrcnn_class_conv2"):
        kernel, bias = out[name]
        out[name] = (tf.reshape(kernel, [-1, kernel.shape[-1]]), bias)
    kernel, bias = out["mrcnn_mask_deconv"]  # [2, 2, out, in] → [in, 2·2·out]
    out["mrcnn_mask_deconv"] = (tf.reshape(tf.transpose(kernel, [3, 0, 1, 2]), [kernel.shape[3], -1]), bias)
    kernel, bias = out["mrcnn_mask"]  # [1, 1, depth, classes] → [classes, depth]
    out["mrcnn_mask"] = (tf.transpose(kernel[0, 0]), bias)
    return out


def _conv(params, name, x, stride=1, padding="SAME", relu=True):
    kernel, bias = params[name]
    y = tf.nn.bias_add(tf.nn.conv2d(x, kernel, stride, padding), bias)
    return tf.nn.relu(y) if relu else y


def _bottleneck(params, x, stage, block, strides=None):
    base = f"res{stage}{block}_branch"
    y = _conv(params, base + "2a", x, strides or 1, "VALID")
    y = _conv(params, base + "2b", y)
    y = _conv(params, base + "2c", y, padding="VALID", relu=False)
    shortcut = _conv(params, base + "1", x, strides, "VALID", relu=False) if strides is not None else x
    return tf.nn.relu(y + shortcut)


def _resnet(params, config, x):
    depth = {"resnet50": 5, "resnet101": 22}[config.BACKBONE]
    x = tf.pad(x, [[0, 0], [3, 3], [3, 3], [0, 0]])
    x = _conv(params, "conv1", x, 2, "VALID")
    x = tf.nn.max_pool2d(x, 3, 2, "SAME")
    x = _bottleneck(params, x, 2, "a", strides=1)
    x = _bottleneck(params, x, 2, "b")
    c2 = x = _bottleneck(params, x, 2, "c")
    x = _bottleneck(params, x, 3, "a", strides=2)
    for block in "bcd":
        x = _bottleneck(params, x, 3, block)
    c3 = x
    x = _bottleneck(params, x, 4, "a", strides=2)
    for i in range(depth):
        x = _bottleneck(params, x, 4, chr(98 + i))
    c4 = x
    x = _bottleneck(params, x, 5, "a", strides=2)
    x = _bottleneck(params, x, 5, "b")
    return [c2, c3, c4, _bottleneck(params, x, 5, "c")]


def _basic(params, x, stage, block, strides=None):
    base = f"res{stage}{block}_branch"
    y = _conv(params, base + "2a", x, strides or 1)
    y = _conv(params, base + "2b", y, relu=False)
    shortcut = _conv(params, base + "1", x, strides, "VALID", relu=False) if strides is not None else x
    return tf.nn.relu(y + shortcut)


def _light(params, x):
    x = _conv(params, "conv1", x, 2)
    x = tf.nn.max_pool2d(x, 3, 2, "SAME")
    outputs = []
    for stage in (2, 3, 4, 5):
        x = _basic(params, x, stage, "a", strides=1 if stage == 2 else 2)
        x = _basic(params, x, stage, "b")
        outputs.append(x)
    return outputs


def _upsample2(x):
    """Nearest-neighbour ×2 (UpSampling2D(2))."""
    shape = tf.shape(x)
    x = tf.broadcast_to(x[:, :, None, :, None, :], [shape[0], shape[1], 2, shape[2], 2, shape[3]])
    return tf.reshape(x, [shape[0], shape[1] * 2, shape[2] * 2, x.shape[-1]])


def backbone(params, config, images):
    """Molded images → [P2, P3, P4, P5, P6] as the Keras backbone gives them."""
    if config.BACKBONE == "light":
        c2, c3, c4, c5 = _light(params, images)
    else:
        c2, c3, c4, c5 = _resnet(params, config, images)
    p5 = _conv(params, "fpn_c5p5", c5, relu=False)
    p4 = _upsample2(p5) + _conv(params, "fpn_c4p4", c4, relu=False)
    p3 = _upsample2(p4) + _conv(params, "fpn_c3p3", c3, relu=False)
    p2 = _upsample2(p3) + _conv(params, "fpn_c2p2", c2, relu=False)
    maps = [_conv(params, f"fpn_p{i}", p, relu=False) for i, p in zip(range(2, 6), (p2, p3, p4, p5))]
    return maps + [maps[-1][:, ::2, ::2]]


def rpn(params, config, feature_maps):
    """Feature maps → background and foreground probabilities [B, A, 2] (softmax, as the RPN's
    `rpn_class_xxx` layer) and box deltas [B, A, 4] over all levels' anchors."""
    per_location = len(config.RPN_ANCHOR_RATIOS)
    scores, deltas = [], []
    for p in feature_maps:
        shared = _conv(params, "rpn_conv_shared", p, int(config.RPN_ANCHOR_STRIDE))
        out = _conv(params, "rpn_heads", shared, padding="VALID", relu=False)
        batch = tf.shape(out)[0]
        logits = tf.reshape(out[..., : 2 * per_location], [batch, -1, 2])
        scores.append(tf.nn.softmax(logits))
        deltas.append(tf.reshape(out[..., 2 * per_location :], [batch, -1, 4]))
    return tf.concat(scores, axis=1), tf.concat(deltas, axis=1)


def classifier(params, pooled):
    """Pooled ROIs [M, pool, pool, D] → class probabilities [M, C] and box deltas [M, C, 4]."""
    kernel, bias = params["mrcnn_class_conv1"]
    x = tf.nn.relu(tf.nn.bias_add(tf.matmul(tf.reshape(pooled, [-1, kernel.shape[0]]), kernel), bias))
    kernel, bias = params["mrcnn_class_conv2"]
    x = tf.nn.relu(tf.nn.bias_add(tf.matmul(x, kernel), bias))
    kernel, bias = params["mrcnn_class_logits"]
    probs = tf.nn.softmax(tf.nn.bias_add(tf.matmul(x, kernel), bias))
    kernel, bias = params["mrcnn_bbox_fc"]
    deltas = tf.nn.bias_add(tf.matmul(x, kernel), bias)
    return probs, tf.reshape(deltas, [-1, probs.shape[-1], 4])


def mask_head(params, pooled, class_ids):
    """Pooled ROIs [K, pool, pool, D] and their class ids [K] → that class's mask probabilities [K, 2·pool,
    2·pool]."""
    x = pooled
    for i in range(1, 5):
        x = _conv(params, f"mrcnn_mask_conv{i}", x)
    kernel, bias = params["mrcnn_mask_deconv"]
    shape = tf.shape(x)
    depth = kernel.shape[-1] // 4
    x = tf.reshape(tf.matmul(tf.reshape(x, [-1, kernel.shape[0]]), kernel), [shape[0], shape[1], shape[2], 2, 2, depth])
    x = tf.reshape(tf.transpose(x, [0, 1, 3, 2, 4, 5]), [shape[0], shape[1] * 2, shape[2] * 2, depth])
    x = tf.nn.relu(tf.nn.bias_add(x, bias))
    kernel, bias = params["mrcnn_mask"]
    logits = tf.einsum("khwc,kc->khw", x, tf.gather(kernel, class_ids)) + tf.gather(bias, class_ids)[:, None, None]
    return tf.sigmoid(logits)


def inference(model, params, images, windows, anchors):
    """`MaskRCNN.inference_graph` on folded weights `params` (from `fold`): molded images [B,H,W,3],
    windows [B,4] and anchors [A,4] normalised → detections [B,D,6] and the detected class's mask
    probabilities [B,D,mh,mw]."""
    out = stages(model, params, images, windows, anchors)
    return out["detections"], out["masks"]


def stages(model, params, images, windows, anchors) -> dict:
    """Every stage of `inference`, by name: feature_maps [P2..P6], rpn_probs [B,A,2], rpn_deltas [B,A,4],
    rois [B,N,4], pooled [B·N,pool,pool,D], class_probs [B,N,C], class_deltas [B,N,C,4], detections [B,D,6],
    masks [B,D,mh,mw]. (In a tf.function, the stages no one asks for cost nothing.)"""
    config = model.config
    edge = model.roi_edge()
    image_shape = tf.shape(images)[1:3]
    feature_maps = backbone(params, config, tf.cast(images, tf.float32))
    probs, deltas = rpn(params, config, feature_maps)
    rois = proposal_layer(
        probs,
        deltas,
        anchors,
        int(config.POST_NMS_ROIS_INFERENCE),
        float(config.RPN_NMS_THRESHOLD),
        int(config.PRE_NMS_LIMIT),
        np.asarray(config.RPN_BBOX_STD_DEV, np.float32),
        config.box_delta_limit,
    )
    sampled = edge_maps(feature_maps[:4], edge)
    batch, count = tf.shape(rois)[0], tf.shape(rois)[1]
    pooled = roi_align_flat(
        tf.reshape(rois, [-1, 4]),
        tf.repeat(tf.range(batch), count),
        feature_maps[:4],
        int(config.POOL_SIZE),
        image_shape,
        sampled=sampled,
        edge=edge,
    )
    class_probs, class_deltas = classifier(params, pooled)
    c = int(config.NUM_CLASSES)
    class_probs = tf.reshape(class_probs, [batch, count, c])
    class_deltas = tf.reshape(class_deltas, [batch, count, c, 4])
    detections = detection_layer(rois, class_probs, class_deltas, windows, config)
    class_ids = tf.cast(detections[..., 4], tf.int32)
    where = tf.where(class_ids > 0)  # [K, 2] (image, slot): the mask head runs on real detections only
    boxes = tf.gather_nd(detections[..., :4], where)
    mask_pooled = roi_align_flat(
        boxes, where[:, 0], feature_maps[:4], int(config.MASK_POOL_SIZE), image_shape, sampled=sampled, edge=edge
    )
    # One blank ROI more, dropped after the head: TensorFlow's convolutions fail on an empty batch.
    blank = tf.zeros(tf.concat([[1], tf.shape(mask_pooled)[1:]], axis=0), mask_pooled.dtype)
    ids = tf.concat([tf.gather_nd(class_ids, where), [0]], axis=0)
    masks = mask_head(params, tf.concat([mask_pooled, blank], axis=0), ids)[:-1]
    shape = tf.concat([tf.shape(class_ids, out_type=tf.int64), tf.shape(masks, out_type=tf.int64)[1:]], axis=0)
    return {
        "feature_maps": feature_maps,
        "rpn_probs": probs,
        "rpn_deltas": deltas,
        "rois": rois,
        "pooled": pooled,
        "class_probs": class_probs,
        "class_deltas": class_deltas,
        "detections": detections,
        "masks": tf.scatter_nd(where, masks, shape),
    }
