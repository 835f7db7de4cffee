"""PSPNet (Zhao et al., CVPR 2017): a pyramid pooling module on the backbone's last features.

The features are average-pooled into 1x1, 2x2, 3x3 and 6x6 bins, each reduced by a 1x1 convolution
to 1/4 of the channels (over the 4 levels), resized back bilinearly and concatenated with the
features; a 3x3 convolution and the classifier follow, and the scores are resized to the input.
The paper's dilated ResNet keeps stride 8; here the backbone's stride-16 features are used
(`feature_stride`), which the bins need to divide: 96x96 and 192x192 inputs give 6x6 and 12x12.

`aux_loss=True` adds the paper's auxiliary classifier on the previous stage's features (half the
stride) as a second output, `aux`, for a deeply supervised loss (weight 0.4 in the paper).
"""

from __future__ import annotations

from tfpipe.backend import keras
from tfpipe.models import registry
from tfpipe.models.blocks import conv_bn
from tfpipe.models.segmentation.common import resize_to
from tfpipe.models.summary import backbone as backbone_of

L = keras.layers
BINS = (1, 2, 3, 6)


def pyramid_pooling(x, bins: tuple[int, ...] = BINS, name: str = "ppm"):
    """Average-pool into each bins x bins grid (windows of side/bins, which must divide), 1x1 conv,
    resize back, concatenate with `x`."""
    h, w, channels = x.shape[1:]
    branches = [x]
    for b in bins:
        if h % b or w % b:
            raise ValueError(f"pyramid pooling: the {h}x{w} features do not divide into {b}x{b} bins")
        y = L.AveragePooling2D((h // b, w // b), name=f"{name}_pool{b}")(x)
        y = conv_bn(y, max(1, channels // len(bins)), 1, act="relu", name=f"{name}_reduce{b}")
        branches.append(resize_to(y, (h, w), name=f"{name}_resize{b}"))
    return L.Concatenate(name=f"{name}_concat")(branches)


def pspnet(input_shape, num_classes: int, backbone: str = "resnet18", backbone_args: dict | None = None,
           feature_stride: int = 16, aux_loss: bool = False):
    base = registry.get(backbone)
    classifier = base.builder(input_shape=input_shape, num_classes=1, **base.fixed, **(backbone_args or {}))
    strides = (feature_stride // 2, feature_stride)
    previous, features = backbone_of(classifier, strides).outputs
    x = pyramid_pooling(features)
    x = conv_bn(x, 256, 3, act="relu", name="fuse")
    x = L.Conv2D(num_classes, 1, name="classes")(x)
    outputs = [L.Softmax(name="probabilities")(resize_to(x, input_shape[:2], name="upsample"))]
    if aux_loss:
        aux = conv_bn(previous, 128, 3, act="relu", name="aux_conv")
        aux = L.Conv2D(num_classes, 1, name="aux_classes")(aux)
        outputs.append(L.Softmax(name="aux")(resize_to(aux, input_shape[:2], name="aux_upsample")))
    return keras.Model(classifier.input, outputs, name=f"pspnet_{backbone}")


registry.register("pspnet", "segmentation", pspnet)
