"""Classifier/box head and mask head (matterport names), applied to ROIs flattened to [M, ...].

matterport wraps these layers in TimeDistributed; a plain layer on [batch·rois, ...] has the
same weights, so HDF5 files map by name.
"""

from __future__ import annotations

import keras
from keras import layers

from .layers import batch_norm


def build_classifier_head(config) -> keras.Model:
    """pooled [M, POOL, POOL, D] → class logits [M,C], probs [M,C], box deltas [M,C,4]."""
    c = int(config.NUM_CLASSES)
    fc = int(config.FPN_CLASSIF_FC_LAYERS_SIZE)
    pool = int(config.POOL_SIZE)
    x = inputs = keras.Input(shape=(pool, pool, int(config.TOP_DOWN_PYRAMID_SIZE)), name="input_pooled_rois")
    x = layers.Conv2D(fc, pool, padding="valid", name="mrcnn_class_conv1")(x)
    x = batch_norm(config, "mrcnn_class_bn1")(x)
    x = layers.Activation("relu")(x)
    x = layers.Conv2D(fc, 1, name="mrcnn_class_conv2")(x)
    x = batch_norm(config, "mrcnn_class_bn2")(x)
    x = layers.Activation("relu")(x)
    shared = layers.Reshape((fc,), name="pool_squeeze")(x)
    logits = layers.Dense(c, name="mrcnn_class_logits")(shared)
    probs = layers.Activation("softmax", name="mrcnn_class")(logits)
    x = layers.Dense(4 * c, name="mrcnn_bbox_fc")(shared)
    deltas = layers.Reshape((c, 4), name="mrcnn_bbox")(x)
    return keras.Model(inputs, [logits, probs, deltas], name="classifier_head")


def build_mask_head(config) -> keras.Model:
    """pooled [M, MASK_POOL, MASK_POOL, D] → per-class mask probabilities [M, 2·pool, 2·pool, C]."""
    depth = int(config.MASK_HEAD_DEPTH)
    pool = int(config.MASK_POOL_SIZE)
    x = inputs = keras.Input(shape=(pool, pool, int(config.TOP_DOWN_PYRAMID_SIZE)), name="input_pooled_masks")
    for i in range(1, 5):
        x = layers.Conv2D(depth, 3, padding="same", name=f"mrcnn_mask_conv{i}")(x)
        x = batch_norm(config, f"mrcnn_mask_bn{i}")(x)
        x = layers.Activation("relu")(x)
    x = layers.Conv2DTranspose(depth, 2, strides=2, activation="relu", name="mrcnn_mask_deconv")(x)
    x = layers.Conv2D(int(config.NUM_CLASSES), 1, activation="sigmoid", name="mrcnn_mask")(x)
    return keras.Model(inputs, x, name="mask_head")
