"""python -m tfpipe.data convert --from voc --to coco SRC DST: a dataset in another annotation format."""

from pathlib import Path

from tfpipe.cli import Stage, main


def add_arguments(parser) -> None:
    from tfpipe.data.formats.convert import FORMATS

    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser("convert", help="rewrite a dataset's annotations in another format")
    convert.add_argument("--from", dest="kind_from", choices=FORMATS, required=True)
    convert.add_argument("--to", dest="kind_to", choices=FORMATS, required=True)
    convert.add_argument("src", type=Path, help="the dataset folder (YOLO: the folder of data.yaml, or the file)")
    convert.add_argument("dst", type=Path, help="a new folder for the converted dataset (images are hard-linked)")


def run(args, cfg) -> int:
    from tfpipe.data.formats.convert import convert

    dataset = convert(args.kind_from, args.kind_to, args.src, args.dst)
    print(f"Wrote {args.kind_to} annotations for {dataset.summary()} to {args.dst}")
    return 0


STAGE = Stage("data", "Dataset tools: convert between COCO, VOC and YOLO annotation formats.",
              "python -m tfpipe.data convert --from voc --to coco data/voc data/coco", add_arguments, run,
              needs_config=False)

if __name__ == "__main__":
    main(STAGE)
