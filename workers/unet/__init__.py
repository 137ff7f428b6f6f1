"""U-Net road segmentation, the registry's "unet" (bundled demo weights in weights/road-demo.keras).

The files every model package has: config (TrainConfig, EvaluateConfig), models (the architectures),
weights, predictor, data (sources: synthetic roads and KITTI folders; augment), train, evaluate and cli.
"""
