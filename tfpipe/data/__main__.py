"""python -m tfpipe.data: dataset tools.

    convert --from voc --to coco SRC DST   a dataset's annotations in another format
    inspect --config X                     class counts, image sizes, box sizes and a PNG grid of samples
"""

from pathlib import Path

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


def run(args, cfg) -> int:
    if args.command == "convert":
        from tfpipe.data.formats.convert import convert

        dataset = convert(args.kind_from, args.kind_to, args.src, args.dst, args.on_bad_sample)
        for reason in dataset.skipped[:5]:
            print(f"Skipped: {reason}")
        if len(dataset.skipped) > 5:
            print(f"... and {len(dataset.skipped) - 5:,} more, all in {args.dst / 'skipped_samples.txt'}")
        print(f"Wrote {args.kind_to} annotations for {dataset.summary()} to {args.dst}")
        return 0
    from tfpipe.cli import default_config
    from tfpipe.config import load_config
    from tfpipe.data.inspect import inspect
    from tfpipe.errors import TfpipeError
    from tfpipe.rundir import RunDir

    if args.count < 1:
        raise TfpipeError(f"--count: {args.count} is not accepted", "use 1 or more")
    cfg = load_config(args.config or default_config(), args.overrides)
    inspect(cfg, RunDir.for_config(cfg, args.workdir).root / "data", args.split, args.count)
    return 0


STAGE = Stage("data", "Dataset tools: convert between COCO, VOC and YOLO; inspect a config's dataset.",
              "python -m tfpipe.data inspect --set data.builtin=fashion_scenes", add_arguments, run,
              needs_config=False)

if __name__ == "__main__":
    main(STAGE)
