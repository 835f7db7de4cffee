"""ResNet-18/34/50/101 (He et al., CVPR 2016), ResNeXt-50 32x4d (Xie et al., CVPR 2017) and
Squeeze-and-Excitation (Hu et al., CVPR 2018) as an option, in torchvision's form (the stride
of a bottleneck sits on its 3x3 convolution, "v1.5"). Published at 224x224x3, 1,000 classes:
ResNet-18 11.7M parameters / 1.8G multiply-adds, ResNet-50 25.5M / 4.1G, ResNeXt-50 32x4d
25.0M / 4.2G.

`v1: true` (bottleneck depths) builds ResNet v1 as keras.applications does instead - the stride on
a bottleneck's first 1x1, convolutions with biases, BatchNorm epsilon 1.001e-5, explicit zero
padding before the stem and its pool - so keras.applications' ImageNet weights compute the same
function in it (train.pretrained: imagenet; tests/unit/test_training.py).

Basic block: two 3x3 convolutions. Bottleneck: 1x1 reduce -> 3x3 (grouped for ResNeXt: `groups`
paths of `width_per_group` channels each) -> 1x1 expand x4. A projection shortcut (1x1 conv + BN)
where the shape changes. `se_ratio` adds an SE gate (blocks.squeeze_excite) before each block's
addition.
"""

from __future__ import annotations

from tfpipe.backend import keras
from tfpipe.models.blocks import activation, conv_bn, squeeze_excite
from tfpipe.models.registry import register

L = keras.layers

DEPTHS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3)),
          101: ("bottleneck", (3, 4, 23, 3))}


KERAS_EPSILON = 1.001e-5  # keras.applications.ResNet's BatchNorm epsilon


def conv_bn_v1(x, filters: int, kernel: int, stride: int = 1, *, act: str | None, name: str):
    """keras.applications' ResNet v1 unit: a biased convolution ('same' only for 3x3) -> BN -> act."""
    x = L.Conv2D(filters, kernel, stride, padding="same" if kernel == 3 else "valid", name=f"{name}_conv")(x)
    x = L.BatchNormalization(epsilon=KERAS_EPSILON, momentum=0.9, name=f"{name}_bn")(x)
    return activation(x, act, name)


def block(x, planes: int, stride: int, kind: str, groups: int, width_per_group: int, se_ratio: int | None,
          name: str, v1: bool = False):
    expansion = 1 if kind == "basic" else 4
    out_channels = planes * expansion
    if v1:
        y = conv_bn_v1(x, planes, 1, stride, act="relu", name=f"{name}_1")
        y = conv_bn_v1(y, planes, 3, act="relu", name=f"{name}_2")
        y = conv_bn_v1(y, out_channels, 1, act=None, name=f"{name}_3")
        shortcut = x
        if stride != 1 or x.shape[-1] != out_channels:
            shortcut = conv_bn_v1(x, out_channels, 1, stride, act=None, name=f"{name}_shortcut")
        return activation(L.Add(name=f"{name}_add")([shortcut, y]), "relu", f"{name}_out")
    if kind == "basic":
        y = conv_bn(x, planes, 3, stride, act="relu", name=f"{name}_1")
        y = conv_bn(y, planes, 3, act=None, name=f"{name}_2")
    else:
        width = int(planes * width_per_group / 64) * groups
        y = conv_bn(x, width, 1, act="relu", name=f"{name}_1")
        y = conv_bn(y, width, 3, stride, act="relu", groups=groups, name=f"{name}_2")
        y = conv_bn(y, out_channels, 1, act=None, name=f"{name}_3")
    if se_ratio:
        y = squeeze_excite(y, se_ratio, name)
    shortcut = x
    if stride != 1 or x.shape[-1] != out_channels:
        shortcut = conv_bn(x, out_channels, 1, stride, act=None, name=f"{name}_shortcut")
    return activation(L.Add(name=f"{name}_add")([shortcut, y]), "relu", f"{name}_out")


def resnet(input_shape, num_classes: int, depth: int = 50, groups: int = 1, width_per_group: int = 64,
           se_ratio: int | None = None, dropout: float = 0.0, v1: bool = False):
    if depth not in DEPTHS:
        raise ValueError(f"depth must be one of {sorted(DEPTHS)}")
    kind, repeats = DEPTHS[depth]
    if kind == "basic" and (groups != 1 or width_per_group != 64):
        raise ValueError("groups and width_per_group apply to bottleneck ResNets (depth 50, 101)")
    if v1 and (kind == "basic" or groups != 1 or se_ratio):
        raise ValueError("v1 (keras.applications' ResNet) is for plain bottleneck ResNets (depth 50, 101)")
    inputs = keras.Input(input_shape, name="images")
    if v1:
        x = L.ZeroPadding2D(3, name="stem_pad")(inputs)
        x = conv_bn_v1(x, 64, 7, 2, act="relu", name="stem")
        x = L.MaxPooling2D(3, 2, name="stem_pool")(L.ZeroPadding2D(1, name="stem_pool_pad")(x))
    else:
        x = conv_bn(inputs, 64, 7, 2, act="relu", name="stem")
        x = L.MaxPooling2D(3, 2, padding="same", name="stem_pool")(x)
    for stage, (planes, n) in enumerate(zip((64, 128, 256, 512), repeats, strict=True)):
        for i in range(n):
            stride = 2 if stage > 0 and i == 0 else 1
            x = block(x, planes, stride, kind, groups, width_per_group, se_ratio, name=f"stage{stage + 1}_{i}", v1=v1)
    x = L.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = L.Dropout(dropout, name="dropout")(x)
    x = L.Dense(num_classes, name="logits")(x)
    prefix = "se_" if se_ratio else ""
    family = f"resnext{depth}_{groups}x{width_per_group}d" if groups > 1 else f"resnet{depth}" + ("_v1" if v1 else "")
    model = keras.Model(inputs, L.Softmax(name="probabilities")(x), name=prefix + family)
    # C3, C4, C5 are the outputs of stages 2-4 (the last layer at each size would be the next
    # stage's 1x1 reduction, which runs before its stride-2 3x3)
    model.stage_ends = {stride: f"stage{stage}_{repeats[stage - 1] - 1}_out_relu"
                        for stride, stage in ((8, 2), (16, 3), (32, 4))}
    return model


register("resnet", "classification", resnet)
for _depth in DEPTHS:
    register(f"resnet{_depth}", "classification", resnet, depth=_depth)
register("resnext50_32x4d", "classification", resnet, depth=50, groups=32, width_per_group=4)
register("se_resnet50", "classification", resnet, depth=50, se_ratio=16)
