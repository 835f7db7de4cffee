"""python -m tfpipe.convert: write TFLite models and the bundle for a run."""

from tfpipe.cli import Stage, main
from tfpipe.config import IO_DTYPES, QUANT_MODES


def add_arguments(parser) -> None:
    parser.add_argument("--quantize", choices=QUANT_MODES, action="append", default=None,
                        help="mode(s) to export (repeatable; default: convert.quantize of the config)")
    parser.add_argument("--io-dtype", choices=IO_DTYPES, default=None,
                        help="input/output type of int8 models (default: convert.io_dtype, uint8)")
    parser.add_argument("--ptq", action="store_true",
                        help="int8 by post-training calibration, without quantization-aware training")


def run(args, cfg) -> int:
    from tfpipe.convert.converter import export
    from tfpipe.rundir import RunDir

    export(cfg, RunDir.for_config(cfg, args.workdir), args.quantize or cfg.convert.quantize, args.io_dtype,
           from_qat=not args.ptq)
    return 0


STAGE = Stage("convert", "Convert the run's model to TFLite (trains and runs QAT first when the run has none).",
              "python -m tfpipe.convert --quantize int8", add_arguments, run)

if __name__ == "__main__":
    main(STAGE)
