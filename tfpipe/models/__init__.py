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
from tfpipe.models.segmentation import deeplab, fcn, pspnet, segnet, unet  # noqa: F401

build = registry.build
check = registry.check


def custom_layers() -> dict:
    """tfpipe's own layer classes by name: what Keras must be told to load a saved zoo model."""
    from tfpipe.models.blocks import ChannelSplit, SpaceToDepth
    from tfpipe.models.detection.faster_rcnn import Proposals, RoIAlign, UnitAnchorEncoding
    from tfpipe.models.segmentation.common import DepthToSpace
    from tfpipe.models.segmentation.segnet import MaxUnpooling2D

    return {layer.__name__: layer for layer in (ChannelSplit, SpaceToDepth, Proposals, RoIAlign, UnitAnchorEncoding,
                                                DepthToSpace, MaxUnpooling2D)}


__all__ = ["build", "check", "custom_layers", "registry"]
