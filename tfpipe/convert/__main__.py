"""python -m tfpipe.convert: write TFLite models and the bundle for a run."""

from tfpipe.cli import Stage, main
from tfpipe.config import IO_DTYPES, QUANT_MODES, TARGET_MODES


def add_arguments(parser) -> None:
    parser.add_argument("--target", choices=TARGET_MODES, default="cpu",
                        help="deployment preset: edgetpu = int8 with uint8 I/O; gpu = fp16 or none; nnapi = int8 "
                             "or fp16; cpu (default) = any mode. A mode the target does not run is refused")
    parser.add_argument("--quantize", choices=QUANT_MODES, action="append", default=None,
                        help="mode(s) to export (repeatable; default: convert.quantize of the config)")
    parser.add_argument("--io-dtype", choices=IO_DTYPES, default=None,
                        help="input/output type of int8 models (default: convert.io_dtype, uint8)")
    parser.add_argument("--max-drop", type=float, default=None, metavar="POINTS",
                        help="selective int8 by post-training calibration: keep the layers int8 hurts most in float, "
                             "one at a time, until top-1 / mIoU on the held-out split is at most POINTS below float")
    parser.add_argument("--debug-quant", action="store_true",
                        help="run TensorFlow's QuantizationDebugger on held-out data first: per-layer RMSE/scale and "
                             "SQNR written to export/quant_debug_int8.csv and .png (post-training int8)")
    parser.add_argument("--ptq", action="store_true",
                        help="int8 by post-training calibration, without quantization-aware training")


def run(args, cfg) -> int:
    from tfpipe.convert.converter import export, modes_for_target
    from tfpipe.convert.selective import check_max_drop
    from tfpipe.rundir import RunDir

    check_max_drop(args.max_drop)
    modes = modes_for_target(args.target, args.quantize, cfg.convert.quantize)
    ptq = args.ptq or args.max_drop is not None or args.debug_quant  # both work on calibrated int8
    export(cfg, RunDir.for_config(cfg, args.workdir), modes, args.io_dtype, from_qat=not ptq, max_drop=args.max_drop,
           debug_quant=args.debug_quant)
    return 0


STAGE = Stage("convert", "Convert the run's model to TFLite (trains and runs QAT first when the run has none).",
              "python -m tfpipe.convert --quantize int8", add_arguments, run)

if __name__ == "__main__":
    main(STAGE)
