"""U-Net road segmentation: architectures, synthetic road scenes, data, training, evaluation, and the
predictor the registry loads as "unet" (bundled demo weights in weights/road-demo.keras)."""
