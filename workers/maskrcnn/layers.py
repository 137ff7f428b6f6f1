"""Small shared Keras layers."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="maskrcnn")
class BatchNorm(keras.layers.BatchNormalization):
    """BatchNormalization that can be frozen (always inference mode), as matterport's TRAIN_BN=False."""

    def __init__(self, frozen: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.frozen = frozen

    def call(self, inputs, training=None, mask=None):
        if self.frozen:
            training = False
        return super().call(inputs, training=training)

    def get_config(self):
        return {**super().get_config(), "frozen": self.frozen}


def batch_norm(config, name):
    """A BatchNorm per config.TRAIN_BN: False → frozen statistics; None/True → trained."""
    return BatchNorm(frozen=config.TRAIN_BN is False, name=name, epsilon=1e-3)
