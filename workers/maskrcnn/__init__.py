"""Mask R-CNN (matterport-compatible layer names) in TensorFlow 2 / Keras 3, the registry's "maskrcnn"
(bundled demo weights in weights/shapes-demo.weights.h5).

The files every model package has: config (Config with matterport's names; TrainConfig, EvaluateConfig),
model, weights, predictor, data (datasets: dataset, shapes, via, coco), train, evaluate and cli. The
network's parts: backbone (resnet, light), anchors, rpn, proposals, roi_align, heads, detection, losses,
targets, with boxes, image and layers; fused is detect's graph of the same network with the BatchNorms
folded into the convolutions.
"""

from streamer.models import ModelPackage

MATTERPORT = "https://github.com/matterport/Mask_RCNN/releases/download"

PACKAGE = ModelPackage(
    name="maskrcnn",
    loader="workers.maskrcnn.predictor:load",
    instances=True,
    settings="workers.maskrcnn.predictor:saved_settings",
    commands="workers.maskrcnn.cli",
    train="Mask R-CNN on VIA, COCO or generated shapes",
    evaluate="VOC mAP@0.5 on masks and COCO mask AP",
    # matterport's published weights, as its utils.download_trained_weights and samples fetch them
    releases={
        "coco": f"{MATTERPORT}/v2.0/mask_rcnn_coco.h5",
        "balloon": f"{MATTERPORT}/v2.1/mask_rcnn_balloon.h5",
    },
)
