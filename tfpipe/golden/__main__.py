"""python -m tfpipe.golden --run runs/NAME: golden vectors of the run's export bundle for the
device-side code, written next to the bundle (runs/NAME/export/golden_<model>.json)."""

from pathlib import Path

from tfpipe.cli import Stage, main


def add_arguments(parser) -> None:
    parser.add_argument("--run", type=Path, required=True, help="a run folder (runs/NAME) with export/model.json")
    parser.add_argument("--model", default="int8", help="which of the bundle's models (default int8)")
    parser.add_argument("--count", type=int, default=8, help="images of the evaluation split (default 8)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output file (default: RUN/export/golden_<model>.json)")


def run(args, cfg) -> int:
    from tfpipe.errors import TfpipeError
    from tfpipe.golden.vectors import write

    if args.count < 1:
        raise TfpipeError(f"--count: {args.count} is not accepted", "use 1 or more")
    path = write(args.run, args.out, args.model, args.count)
    print(f"Wrote {path} ({args.count} images)")
    return 0


STAGE = Stage("golden", "Golden vectors of a run's export bundle, for the Android core and the Coral runner.",
              "python -m tfpipe.golden --run runs/quickstart", add_arguments, run, needs_config=False)

if __name__ == "__main__":
    main(STAGE)
