"""python -m tfpipe.data: dataset tools.

    convert --from voc --to coco SRC DST   a dataset's annotations in another format
    inspect --config X                     class counts, image sizes, box sizes and a PNG grid of samples
    anchors --config X [--write]           YOLO priors by k-means (1 - IoU) over the training boxes
    fetch                                  find Fashion-MNIST, downloading it when it is nowhere (make does this)
    folders DST [--size 96]                class folders of colour garment photos (data.format: folders)
    scenes --to voc DST                    FashionScenes (built on first use) written as a dataset of your own
"""

from pathlib import Path

import numpy as np

from tfpipe.cli import Stage, main


def add_arguments(parser) -> None:
    from tfpipe.cli import DEFAULT_CONFIG
    from tfpipe.data.formats.convert import FORMATS

    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser("convert", help="rewrite a dataset's annotations in another format")
    convert.add_argument("--from", dest="kind_from", choices=FORMATS, required=True)
    convert.add_argument("--to", dest="kind_to", choices=FORMATS, required=True)
    convert.add_argument("src", type=Path, help="the dataset folder (YOLO: the folder of data.yaml, or the file)")
    convert.add_argument("dst", type=Path, help="a new folder for the converted dataset (images are hard-linked)")
    convert.add_argument("--on-bad-sample", choices=("error", "skip"), default="error",
                         help="stop at the first bad sample (default), or leave bad samples out and list why "
                              "in DST/skipped_samples.txt")
    inspect = commands.add_parser("inspect", help="statistics and a PNG grid of samples of a config's dataset")
    inspect.add_argument("--config", type=Path, default=None, help=f"experiment YAML (default: {DEFAULT_CONFIG})")
    inspect.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                         help="override a config field (repeatable)")
    inspect.add_argument("--workdir", type=Path, default=Path("runs"), help="parent of run directories")
    inspect.add_argument("--split", default=None, help="split to draw (default: val, else the first)")
    inspect.add_argument("--count", type=int, default=16, help="samples in the grid (default 16)")
    anchors = commands.add_parser("anchors", help="YOLO priors by k-means over a config's training boxes")
    anchors.add_argument("--config", type=Path, default=None, help=f"experiment YAML (default: {DEFAULT_CONFIG})")
    anchors.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                         help="override a config field (repeatable)")
    anchors.add_argument("--count", type=int, default=None,
                         help="number of priors (default: as many as the config's model takes)")
    anchors.add_argument("--seed", type=int, default=0, help="k-means seed (default 0)")
    anchors.add_argument("--write", action="store_true", help="write them to model.args.priors in the config file")
    folders = commands.add_parser("folders", help="write class folders of colour photos of Fashion-MNIST garments "
                                                  "(train/ and val/), a dataset for data.format: folders")
    folders.add_argument("dst", type=Path, help="a new folder")
    folders.add_argument("--size", type=int, default=96, help="image side in pixels (default 96)")
    folders.add_argument("--train", type=int, default=2000, help="training images (default 2000)")
    folders.add_argument("--val", type=int, default=500, help="validation images (default 500)")
    folders.add_argument("--seed", type=int, default=0)
    scenes = commands.add_parser("scenes", help="write FashionScenes (built on first use) in a layout data.format "
                                                "reads: a dataset of your own to try the formats on")
    scenes.add_argument("--to", dest="kind_to", choices=FORMATS, required=True)
    scenes.add_argument("dst", type=Path, help="a new folder (images are hard-linked from the built scenes)")
    scenes.add_argument("--config", type=Path, default=None, help="take data.scenes and data.cache from this config")
    scenes.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. data.scenes.train=1000 (repeatable)")
    commands.add_parser("fetch", help="find Fashion-MNIST (data.path, $TFPIPE_DATA, Debian's package, the Keras "
                                      "cache), else download it with Keras; prints the folder")


def run(args, cfg) -> int:
    if args.command == "fetch":
        from tfpipe.data import fashion_mnist

        print(f"Fashion-MNIST: {fashion_mnist.locate(None, allow_download=True)}")
        return 0
    if args.command == "folders":
        from tfpipe.data.fashion_scenes import write_class_folders
        from tfpipe.errors import TfpipeError

        for flag, value, least in (("--size", args.size, 32), ("--train", args.train, 1), ("--val", args.val, 1)):
            if value < least:
                raise TfpipeError(f"{flag}: {value} is not accepted", f"use {least} or more")
        counts = write_class_folders(args.dst, args.size, {"train": args.train, "val": args.val}, args.seed)
        print(f"Wrote {counts['train']:,} train and {counts['val']:,} val images ({args.size}x{args.size} RGB PNG, "
              f"one folder per class) to {args.dst}")
        return 0
    if args.command in ("convert", "scenes"):
        from tfpipe.data.formats.convert import convert, dropped

        if args.command == "scenes":
            from tfpipe.config import load_config
            from tfpipe.data import fashion_scenes

            if args.config is None:
                from tfpipe.cli import default_config

                args.config = default_config()
            data = load_config(args.config, args.overrides).data
            args.kind_from, args.src, args.on_bad_sample = "coco", fashion_scenes.ensure(
                fashion_scenes.cache_dir(data.cache), data.scenes, data.path), "error"
        dataset = convert(args.kind_from, args.kind_to, args.src, args.dst, args.on_bad_sample)
        if note := dropped(dataset, args.kind_to):
            print(note)
        for reason in dataset.skipped[:5]:
            print(f"Skipped: {reason}")
        if len(dataset.skipped) > 5:
            print(f"... and {len(dataset.skipped) - 5:,} more, all in {args.dst / 'skipped_samples.txt'}")
        print(f"Wrote {args.kind_to} annotations for {dataset.summary()} to {args.dst}")
        return 0
    from tfpipe import io
    from tfpipe.cli import default_config
    from tfpipe.config import load_config
    from tfpipe.data.inspect import inspect
    from tfpipe.errors import TfpipeError
    from tfpipe.rundir import RunDir

    path = args.config or default_config()
    if args.command == "anchors":
        from tfpipe.models.detection.priors import compute, format_priors, write_priors

        cfg = load_config(path, args.overrides)
        priors, fit, boxes = compute(cfg, args.count, args.seed)
        h, w = cfg.model.input_size
        print(f"{len(priors)} priors (width, height) as fractions of the {w}x{h} input, by k-means with 1 - IoU "
              f"over {boxes:,} training boxes; mean best IoU {fit:.4f}")
        for pw, ph in priors:
            print(f"  {pw:.4f} x {ph:.4f}   ({pw * w:.1f} x {ph * h:.1f} px)")
        print(f"priors: {format_priors(priors)}")
        if args.write:
            original = path.read_text()
            write_priors(path, priors)
            try:
                written = load_config(path, args.overrides).model.args.get("priors")
            except TfpipeError:
                written = None
            if written is None or not np.allclose(written, np.round(priors, 4)):
                io.write_text(path, original)  # the file as it was
                raise TfpipeError(f"{path}: model.args.priors did not read back as written; the file is unchanged",
                                  "paste the printed priors: line into model.args by hand")
            print(f"Wrote them to {path} (model.args.priors)")
        return 0
    if args.count < 1:
        raise TfpipeError(f"--count: {args.count} is not accepted", "use 1 or more")
    cfg = load_config(path, args.overrides)
    inspect(cfg, RunDir.for_config(cfg, args.workdir).root / "data", args.split, args.count)
    return 0


STAGE = Stage("data", "Dataset tools: convert between COCO, VOC and YOLO; inspect a config's dataset.",
              "python -m tfpipe.data inspect --set data.builtin=fashion_scenes", add_arguments, run,
              needs_config=False)

if __name__ == "__main__":
    main(STAGE)
