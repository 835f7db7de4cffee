"""python -m tfpipe.explain: what a run's network learned, float and int8 (runs/NAME/explain/)."""

import argparse
from pathlib import Path

from tfpipe.cli import Stage, main


def count(text: str) -> int:
    """argparse type: a whole number >= 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not accepted: use a whole number >= 1")
    return int(text)


def add_arguments(parser) -> None:
    parser.add_argument("--layers", default=None, metavar="A,B",
                        help="layers to look into, comma-separated (default: one per stage, the last activation "
                             "at each feature-map size)")
    parser.add_argument("--channels", type=count, default=8, help="first channels drawn per layer (default 8)")
    parser.add_argument("--top-k", type=count, default=8, help="images per channel (default 8)")
    parser.add_argument("--images", type=count, default=None,
                        help="validation images searched for the top images (default: the whole split)")
    parser.add_argument("--steps", type=count, default=128, help="gradient-ascent steps per image (default 128)")
    parser.add_argument("--int8-images", type=count, default=500,
                        help="validation images of the float vs int8 view (default 500)")
    parser.add_argument("--int8-model", type=Path, default=None, metavar="TFLITE",
                        help="the int8 file to compare (default: the run's export/model_int8.tflite)")
    parser.add_argument("--untrained", action="store_true",
                        help="the config's model at its initial weights instead, into explain/untrained/")


def run(args, cfg) -> int:
    from tfpipe.errors import TfpipeError
    from tfpipe.explain import Options, explain
    from tfpipe.rundir import RunDir

    if args.int8_model is not None and not args.int8_model.is_file():
        raise TfpipeError(f"--int8-model: {args.int8_model} is not a file", "pass a .tflite converted from this run")
    layers = tuple(name.strip() for name in args.layers.split(",") if name.strip()) if args.layers else ()
    run_dir = RunDir.for_config(cfg, args.workdir)
    options = Options(layers=layers, channels=args.channels, top_k=args.top_k, images=args.images, steps=args.steps,
                      int8_images=args.int8_images, untrained=args.untrained, int8_model=args.int8_model)
    with run_dir.writer(cfg):  # one writer at a time: never beside a convert that is replacing the int8 file
        explain(cfg, run_dir, options)
    return 0


STAGE = Stage("explain", "Draw what the network learned: first filters, top images per channel with receptive "
              "fields, activation maximization, deep dream, and float vs int8 layer by layer.",
              "python -m tfpipe.explain --config configs/quickstart.yaml", add_arguments, run)

if __name__ == "__main__":
    main(STAGE)
