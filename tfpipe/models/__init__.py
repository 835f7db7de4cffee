"""The model zoo. Importing this package registers every family (one explicit import each)."""

from tfpipe.models import registry
from tfpipe.models.classification import (  # noqa: F401  (each import registers its family)
    alexnet,
    darknet,
    googlenet,
    mobilenet,
    mobilenet_v1,
    resnet,
    shufflenet,
    vgg,
)
from tfpipe.models.detection import faster_rcnn, ssd, yolo  # noqa: F401
from tfpipe.models.instance import mask_rcnn  # noqa: F401
from tfpipe.models.segmentation import deeplab, fcn, pspnet, segnet, unet  # noqa: F401

build = registry.build
check = registry.check
custom_layers = registry.custom_layers  # what Keras must be told to load a saved zoo model


__all__ = ["build", "check", "custom_layers", "registry"]
