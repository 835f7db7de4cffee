"""FCN-32s, FCN-16s and FCN-8s (Long, Shelhamer & Darrell, CVPR 2015) on a zoo backbone.

A 1x1 convolution scores the classes on the stride-32 features. FCN-32s upsamples those scores x32;
FCN-16s upsamples them x2, adds the scores of the stride-16 features and upsamples x16; FCN-8s adds
the stride-8 scores as well and upsamples x8. As in the paper, the x2 steps are transposed
convolutions initialised to bilinear interpolation (common.bilinear_kernel) and learned, while the
final upsampling is fixed bilinear interpolation (a learned x32 one would hold 64 x 64 x C x C
weights: 4 billion for 1,000 classes). The heads start from the backbone's convolutional features;
the paper's convolutionalised fc6/fc7 of VGG (4096 channels, 7x7) are left out, which makes any zoo
family a backbone.
"""

from __future__ import annotations

from tfpipe.backend import keras
from tfpipe.models import registry
from tfpipe.models.segmentation.common import check_size, learned_upsample, resize_to
from tfpipe.models.summary import backbone as backbone_of

L = keras.layers


def fcn(input_shape, num_classes: int, stride: int = 8, backbone: str = "vgg16", backbone_args: dict | None = None):
    if stride not in (8, 16, 32):
        raise ValueError("stride must be 8, 16 or 32 (FCN-8s, 16s, 32s)")
    check_size(input_shape, 32, "FCN")
    base = registry.get(backbone)
    classifier = base.builder(input_shape=input_shape, num_classes=1, **base.fixed, **(backbone_args or {}))
    features = backbone_of(classifier)
    c8, c16, c32 = features.outputs
    score = L.Conv2D(num_classes, 1, name="score32")(c32)
    for level, skip in ((16, c16), (8, c8)):
        if stride > level:
            break
        score = learned_upsample(score, 2, name=f"up{level}")
        score = L.Add(name=f"fuse{level}")([score, L.Conv2D(num_classes, 1, name=f"score{level}")(skip)])
    score = resize_to(score, tuple(input_shape[:2]), name="upsample")
    outputs = L.Softmax(name="probabilities")(score)
    return keras.Model(features.input, outputs, name=f"fcn{stride}s_{backbone}")


for _stride in (32, 16, 8):
    registry.register(f"fcn{_stride}s", "segmentation", fcn, stride=_stride)
