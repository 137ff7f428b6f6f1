"""`streamer inspect unet INPUT -o DIR`: what the U-Net sees and answers on one image or video frame.

DIR gets: input.png, probability.png (the road probability), mask.png (thresholded), overlay.png, and
activations.png (encoder and decoder convolutions, input to output), with index.html / index.json.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workers.report import PictureSet, channel_picture, overlay, pyplot, read_input

SHOWN_LAYERS = 8


def inspect(input_path: str, out: str, weights: str | None = None, frame: int = 0, device: str | None = None) -> Path:
    """Write the pictures for `input_path` (frame `frame` of a video) into `out`; returns index.html."""
    import cv2
    import keras

    from streamer.models import ModelConfig

    from .predictor import load

    image = read_input(input_path, frame)
    predictor = load(ModelConfig(name="unet", weights=weights, batch_size=1, device=device))
    model = predictor.model
    height, width = predictor.input_size
    if not height or not width:  # a model without a fixed input size: the image, cut to multiples of 16
        height, width = (image.shape[0] // 16) * 16 or 16, (image.shape[1] // 16) * 16 or 16
    x = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32)[None] / 255.0

    convolutions = [
        layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D | keras.layers.Conv2DTranspose)
    ]
    chosen = [convolutions[int(i)] for i in np.linspace(0, len(convolutions) - 1, min(SHOWN_LAYERS, len(convolutions)))]
    outputs = model.outputs[-1:] + [layer.output for layer in chosen]
    results = keras.Model(model.inputs, outputs)(x, training=False)
    output, activations = np.asarray(results[0])[0], [np.asarray(r)[0] for r in results[1:]]
    probability = output[..., 0] if output.shape[-1] == 1 else output[..., 1:].sum(axis=-1)
    probability = cv2.resize(probability.astype(np.float32), (image.shape[1], image.shape[0]))
    mask = probability > predictor.threshold

    pictures = PictureSet(out)
    plt = pyplot()
    ratio = image.shape[0] / image.shape[1]

    def single(picture, name, caption, title, **options):
        figure, axis = plt.subplots(figsize=(7, 7 * ratio + 0.4))
        shown = axis.imshow(picture, **options)
        if "cmap" in options and name == "probability.png":
            figure.colorbar(shown, ax=axis, fraction=0.03)
        axis.set_title(title, fontsize=9)
        axis.axis("off")
        pictures.figure(figure, name, caption)

    single(image, "input.png", "The input frame", f"input {image.shape[1]}×{image.shape[0]}")
    single(
        probability,
        "probability.png",
        "The model's road probability, resized to the frame",
        "road probability",
        cmap="magma",
        vmin=0,
        vmax=1,
    )
    single(
        mask.astype(np.uint8) * 255,
        "mask.png",
        f"The road mask: probability above the threshold {predictor.threshold:g}",
        f"mask ({mask.mean():.1%} of the frame)",
        cmap="gray",
        vmin=0,
        vmax=255,
    )
    single(overlay(image, mask), "overlay.png", "The road mask over the frame", "overlay")

    figure, axes = plt.subplots(2, (len(chosen) + 1) // 2, figsize=(3 * ((len(chosen) + 1) // 2), 5.2), squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    for axis, layer, activation in zip(axes.ravel(), chosen, activations):
        axis.imshow(channel_picture(activation), cmap="inferno")
        axis.set_title(f"{layer.name}\n{activation.shape[0]}×{activation.shape[1]}×{activation.shape[2]}", fontsize=7)
    pictures.figure(
        figure,
        "activations.png",
        f"Encoder and decoder activations: {len(chosen)} convolutions from input to output (mean absolute value)",
    )
    extra = {"model": "unet", "input": str(input_path), "frame": frame, "road_fraction": float(mask.mean())}
    return pictures.finish(f"U-Net inspection of {Path(input_path).name}", extra)
