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
    from tfpipe.convert.converter import check_request, convert, io_dtype_for
    from tfpipe.data.pipeline import load_splits
    from tfpipe.qat import ensure_qat
    from tfpipe.rundir import RunDir
    from tfpipe.train.trainer import ensure_trained

    modes = args.quantize or list(cfg.convert.quantize)
    for mode in modes:  # every flag is checked before any work is done
        check_request(mode, io_dtype_for(cfg, mode, args.io_dtype))
    splits = load_splits(cfg.data)  # bad data fails here, before the run directory is touched
    run_dir = RunDir.for_config(cfg, args.workdir)
    run_dir.write_config(cfg)
    ensure_trained(cfg, run_dir, splits)
    if "int8" in modes and not args.ptq:
        ensure_qat(cfg, run_dir, splits)
    for mode in modes:
        convert(cfg, run_dir, mode, args.io_dtype, splits, from_qat=not args.ptq)
    return 0


STAGE = Stage("convert", "Convert the run's model to TFLite (trains and runs QAT first when the run has none).",
              "python -m tfpipe.convert --quantize int8", add_arguments, run)

if __name__ == "__main__":
    main(STAGE)
