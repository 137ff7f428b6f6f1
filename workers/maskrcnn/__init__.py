"""Mask R-CNN (matterport-compatible layer names) in TensorFlow 2 / Keras 3.

One module per concept: config, backbones (resnet, light), anchors, rpn, proposals, roi_align,
heads, detection, model, losses, targets, weights, dataset and loaders (via, coco, shapes),
evaluate, train, predictor, visualize, commands.
"""
