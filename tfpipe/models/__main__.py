"""python -m tfpipe.models: the zoo's names, and a model's parameters and multiply-adds.

    list                         every registered model, with params and multiply-adds at 224x224x3
    summary NAME [--input-size H W] [--channels C] [--classes N] [--layers]
"""

from tfpipe.cli import Stage, main


def add_arguments(parser) -> None:
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="every registered model with its size at 224x224x3, 1,000 classes")
    summary = commands.add_parser("summary", help="parameters, multiply-adds and feature strides of one model")
    summary.add_argument("name")
    summary.add_argument("--input-size", type=int, nargs=2, default=(224, 224), metavar=("H", "W"))
    summary.add_argument("--channels", type=int, default=3, choices=(1, 3))
    summary.add_argument("--classes", type=int, default=1000)
    summary.add_argument("--layers", action="store_true", help="also print Keras' layer-by-layer summary")


# Segmentation models are listed at a VOC-like setting (21 classes) and a size every head accepts:
# divisible by 32 (FCN, SegNet), and stride-16 features divisible by PSPNet's 6 bins.
SEGMENTATION_LISTING = ((480, 480), 21)
# Detectors at COCO's 80 classes and 320x320, the MobileNetV2 paper's SSDLite setting.
DETECTION_LISTING = ((320, 320), 80)
LISTING = {"segmentation": SEGMENTATION_LISTING, "detection": DETECTION_LISTING}


def _size(name: str, input_size=(224, 224), channels: int = 3, classes: int = 1000):
    """The model `name` built to be sized: its weights are zeros, not initialized."""
    from tfpipe import models
    from tfpipe.config import ModelConfig
    from tfpipe.models.summary import shapes_only

    entry = models.registry.get(name)
    with shapes_only():
        return models.build(ModelConfig(name=name, input_size=tuple(input_size), channels=channels), entry.task,
                            classes)


def run(args, cfg) -> int:
    from tfpipe import models
    from tfpipe.errors import TfpipeError
    from tfpipe.models.summary import feature_layers, multiply_adds

    if args.command == "list":
        print(f"{'model':<26} {'task':<15} {'params':>9} {'mult-adds':>10}   classification at 224x224x3 with "
              "1,000 classes; " + "; ".join(f"{task} at {size[0]}x{size[1]}x3 with {classes} classes"
                                            for task, (size, classes) in LISTING.items()))
        for name in models.registry.names():
            task = models.registry.get(name).task
            size, classes = LISTING.get(task, (None, None))  # else classification's ImageNet shape
            model = _size(name, *((size, 3, classes) if size else ()))
            print(f"{name:<26} {task:<15} {model.count_params() / 1e6:>8.2f}M "
                  f"{multiply_adds(model) / 1e9:>9.3f}G")
        return 0
    if args.classes < 1:
        raise TfpipeError(f"--classes: {args.classes} is not accepted", "use 1 or more")
    if min(args.input_size) < 32:
        raise TfpipeError(f"--input-size: {args.input_size} is too small", "every zoo model needs at least 32x32")
    model = _size(args.name, args.input_size, args.channels, args.classes)
    if args.layers:
        model.summary(line_length=110)
    h, w = args.input_size
    print(f"{args.name}: {model.count_params():,} parameters, {multiply_adds(model):,} multiply-adds "
          f"at {h}x{w}x{args.channels} with {args.classes:,} classes")
    for stride, layer in sorted(feature_layers(model).items()):
        print(f"  stride {stride:>2}: {layer} {tuple(model.get_layer(layer).output.shape[1:])}")
    return 0


STAGE = Stage("models", "The model zoo: list the registered models, or one model's size and feature strides.",
              "python -m tfpipe.models summary resnet50", add_arguments, run, needs_config=False)

if __name__ == "__main__":
    main(STAGE)
