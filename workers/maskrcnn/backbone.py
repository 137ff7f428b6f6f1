"""Backbone + FPN as one Keras model: molded image → [P2, P3, P4, P5, P6] (matterport names)."""

from __future__ import annotations

import keras
from keras import layers

from .light import light_graph
from .resnet import resnet_graph


def fpn_graph(config, c2, c3, c4, c5):
    depth = int(config.TOP_DOWN_PYRAMID_SIZE)
    p5 = layers.Conv2D(depth, 1, name="fpn_c5p5")(c5)
    p4 = layers.Add(name="fpn_p4add")(
        [layers.UpSampling2D(2, name="fpn_p5upsampled")(p5), layers.Conv2D(depth, 1, name="fpn_c4p4")(c4)]
    )
    p3 = layers.Add(name="fpn_p3add")(
        [layers.UpSampling2D(2, name="fpn_p4upsampled")(p4), layers.Conv2D(depth, 1, name="fpn_c3p3")(c3)]
    )
    p2 = layers.Add(name="fpn_p2add")(
        [layers.UpSampling2D(2, name="fpn_p3upsampled")(p3), layers.Conv2D(depth, 1, name="fpn_c2p2")(c2)]
    )
    p2 = layers.Conv2D(depth, 3, padding="same", name="fpn_p2")(p2)
    p3 = layers.Conv2D(depth, 3, padding="same", name="fpn_p3")(p3)
    p4 = layers.Conv2D(depth, 3, padding="same", name="fpn_p4")(p4)
    p5 = layers.Conv2D(depth, 3, padding="same", name="fpn_p5")(p5)
    p6 = layers.MaxPooling2D(pool_size=1, strides=2, name="fpn_p6")(p5)
    return [p2, p3, p4, p5, p6]


def build_backbone(config) -> keras.Model:
    image = keras.Input(shape=(None, None, config.IMAGE_CHANNEL_COUNT), name="input_image")
    if config.BACKBONE == "light":
        c2, c3, c4, c5 = light_graph(config, image)
    else:
        c2, c3, c4, c5 = resnet_graph(config, image)
    return keras.Model(image, fpn_graph(config, c2, c3, c4, c5), name="backbone")
