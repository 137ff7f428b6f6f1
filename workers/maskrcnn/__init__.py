"""Mask R-CNN (matterport-compatible layer names) in TensorFlow 2 / Keras 3, the registry's "maskrcnn"
(bundled demo weights in weights/shapes-demo.weights.h5).

The files every model package has: config (Config with matterport's names; TrainConfig, EvaluateConfig),
model, weights, predictor, data (datasets: dataset, shapes, via, coco), train, evaluate and cli. The
network's parts: backbone (resnet, light), anchors, rpn, proposals, roi_align, heads, detection, losses,
targets, with boxes, image and layers; fused is detect's graph of the same network with the BatchNorms
folded into the convolutions.
"""
