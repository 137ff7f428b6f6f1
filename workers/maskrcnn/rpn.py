"""Region proposal network: the nested `rpn_model` shared across pyramid levels."""

from __future__ import annotations

import keras
from keras import layers


def build_rpn_model(anchor_stride: int, anchors_per_location: int, depth: int, conv_depth: int = 512) -> keras.Model:
    """feature map [B,h,w,depth] → logits [B,A,2], probs [B,A,2], deltas [B,A,4] (A = h·w·anchors)."""
    feature_map = keras.Input(shape=(None, None, depth), name="input_rpn_feature_map")
    shared = layers.Conv2D(
        conv_depth, 3, padding="same", activation="relu", strides=anchor_stride, name="rpn_conv_shared"
    )(feature_map)
    x = layers.Conv2D(2 * anchors_per_location, 1, padding="valid", name="rpn_class_raw")(shared)
    logits = layers.Reshape((-1, 2))(x)
    probs = layers.Activation("softmax", name="rpn_class_xxx")(logits)
    x = layers.Conv2D(4 * anchors_per_location, 1, padding="valid", name="rpn_bbox_pred")(shared)
    deltas = layers.Reshape((-1, 4))(x)
    return keras.Model(feature_map, [logits, probs, deltas], name="rpn_model")
