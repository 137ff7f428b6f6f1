"""U-Net road segmentation, the registry's "unet" (bundled demo weights in weights/road-demo.keras).

The files every model package has: config (TrainConfig, EvaluateConfig), models (the architectures),
weights, predictor, data (sources: synthetic roads and KITTI folders; augment), train, evaluate and cli.
"""

from streamer.models import ModelPackage

PACKAGE = ModelPackage(
    name="unet",
    aliases=("semantic",),  # any segmentation model file: .keras, .h5, SavedModel, ONNX, TFLite
    loader="workers.unet.predictor:load",
    settings="workers.unet.weights:saved_settings",
    commands="workers.unet.cli",
    train="U-Net road segmentation on synthetic roads or KITTI",
    evaluate="per-image and mean IoU on synthetic roads or KITTI",
)
