"""python -m tfpipe.convert: write TFLite models and the bundle for a run."""

from pathlib import Path

from tfpipe.cli import Stage, main, points
from tfpipe.runtime.contract import ENGINES, IO_DTYPES, QUANT_MODES, TARGET_DEFAULT


def add_arguments(parser) -> None:
    parser.add_argument("--target", choices=TARGET_DEFAULT, default="cpu",
                        help="deployment preset: edgetpu = int8 with uint8 I/O; gpu = fp16 or none; nnapi = int8 "
                             "or fp16; cpu (default) = any mode. A mode the target does not run is refused")
    parser.add_argument("--quantize", choices=QUANT_MODES, action="append", default=None,
                        help="mode(s) to export (repeatable; default: convert.quantize of the config)")
    parser.add_argument("--engine", choices=ENGINES, default=None,
                        help="who quantizes: converter = TFLiteConverter from the Keras model (QAT or calibrated); "
                             "litert = Google's LiteRT Quantizer from the fp32 .tflite, by recipe; with --max-drop "
                             "it searches int8/int16/float per op (default: convert.engine, converter)")
    parser.add_argument("--io-dtype", choices=IO_DTYPES, default=None,
                        help="input/output type of int8 models (default: convert.io_dtype, auto = the fastest the "
                             "target accepts: uint8 for edgetpu, int8 otherwise)")
    parser.add_argument("--max-drop", type=points, default=None, metavar="POINTS",
                        help="selective int8 by post-training calibration: keep the layers int8 hurts most in float, "
                             "one at a time, until top-1 / mIoU on the held-out split is at most POINTS below float")
    parser.add_argument("--debug-quant", action="store_true",
                        help="run TensorFlow's QuantizationDebugger on held-out data first: per-layer RMSE/scale and "
                             "SQNR written to export/quant_debug_int8.csv and .png (post-training int8)")
    parser.add_argument("--model", type=Path, default=None, metavar="PATH",
                        help="convert this Keras model (.keras, .h5, SavedModel dir) instead of a tfpipe-trained one: "
                             "it is imported as the float model of WORKDIR/<file stem> (needs --calibration-data)")
    parser.add_argument("--tflite", type=Path, default=None, metavar="PATH",
                        help="quantize this float .tflite (any source: litert-torch, onnx2tf, a vendor) with the "
                             "LiteRT Quantizer; it becomes model_fp32 of WORKDIR/<stem> (needs --calibration-data)")
    parser.add_argument("--calibration-data", type=Path, default=None, metavar="DIR_OR_CONFIG",
                        help="with --model: a folder of images (preprocess from --set preprocess.*, default x/127.5-1 "
                             "letterbox), or a tfpipe config whose dataset calibrates and later evaluates")
    parser.add_argument("--input-size", type=int, nargs=2, default=None, metavar=("H", "W"),
                        help="with --model: the size to convert at, when the model's input has no fixed size")
    parser.add_argument("--output", default=None, metavar="NAME",
                        help="with --model: the output to convert when the model has several")
    parser.add_argument("--classes", default=None, metavar="FILE|a,b,c",
                        help="with --model and a folder of images: the class names, in the order of the model's "
                             "output (a file with one name a line, or a comma-separated list)")
    parser.add_argument("--name", default=None,
                        help="with --model: the run's name (default: the model's file stem)")
    parser.add_argument("--force", action="store_true",
                        help="with --model: replace an existing run of that name, all of it")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--from-qat", action="store_true",
                        help="int8 from the run's QAT checkpoint, running QAT first when there is none (the default)")
    source.add_argument("--ptq", action="store_true",
                        help="int8 by post-training calibration, without quantization-aware training")


def run(args, cfg) -> int:
    from tfpipe import tasks
    from tfpipe.convert.converter import modes_for_target
    from tfpipe.errors import TfpipeError
    from tfpipe.run import convert_run
    from tfpipe.rundir import RunDir

    if args.from_qat and (args.max_drop is not None or args.debug_quant or args.model is not None
                          or args.tflite is not None):
        raise TfpipeError("--from-qat: --max-drop, --debug-quant, --model and --tflite work on post-training int8",
                          "leave --from-qat out")
    if args.model is not None and args.tflite is not None:
        raise TfpipeError("--model and --tflite: give one model", "--model for Keras files, --tflite for .tflite")
    if args.tflite is not None:
        return convert_tflite(args)
    if args.model is not None:
        return convert_external(args)
    if args.calibration_data or args.input_size or args.output or args.classes or args.name or args.force:
        raise TfpipeError("--calibration-data, --input-size, --output, --classes, --name and --force go with "
                          "--model or --tflite PATH", "add --model, or leave them out to convert the config's run")
    if args.max_drop is not None and not tasks.of(cfg).selective:
        # its search scores held-out images by the task's metric and converts without the detectors'
        # post-processing op or float layers
        raise TfpipeError(f"--max-drop: selective int8 is for classification and segmentation, and {cfg.name} is a "
                          f"{cfg.task} model", "leave --max-drop out: QAT int8 (the default) is what it ships")
    modes = modes_for_target(args.target, args.quantize, cfg.convert.quantize)
    ptq = args.ptq or args.max_drop is not None or args.debug_quant  # both work on calibrated int8
    run_dir = RunDir.for_config(cfg, args.workdir)
    with run_dir.writer(cfg):
        convert_run(cfg, run_dir, modes, args.io_dtype, from_qat=not ptq, max_drop=args.max_drop,
                    debug_quant=args.debug_quant, engine=args.engine, target=args.target)
    return 0


def check_import(args, flag: str) -> None:
    """What an import (--model or --tflite) needs: calibration data, given as such, not as --config."""
    from tfpipe.cli import default_config
    from tfpipe.errors import TfpipeError

    if args.calibration_data is None:
        raise TfpipeError(f"{flag} needs --calibration-data DIR_OR_CONFIG",
                          "give a folder of representative images, or a tfpipe config")
    if args.config.resolve() != default_config().resolve():
        raise TfpipeError(f"{flag}: pass the config as --calibration-data, not --config",
                          "--calibration-data CONFIG calibrates on its dataset and records it for evaluation")


def convert_external(args) -> int:
    """--model PATH: import the Keras model into WORKDIR/<stem>, then convert each mode (int8 by calibration)."""
    from tfpipe.cli import default_config
    from tfpipe.convert.converter import convert, modes_for_target
    from tfpipe.convert.external import prepare_import
    from tfpipe.errors import TfpipeError

    check_import(args, "--model")
    if args.calibration_data.is_dir() and (args.max_drop is not None or args.debug_quant):
        raise TfpipeError("--max-drop/--debug-quant need labelled held-out data, and a folder of images has none",
                          "give --calibration-data a config (its dataset's validation split is used)")
    modes = modes_for_target(args.target, args.quantize, ("none", "int8"))
    imported = prepare_import(args.model, args.calibration_data, args.workdir, args.overrides,
                              tuple(args.input_size) if args.input_size else None, default_config(),
                              output=args.output, classes=args.classes, name=args.name, force=args.force)
    cfg, run = imported.cfg, imported.run
    images = None if imported.images is None else (imported.images, imported.class_names)
    with run.writer():
        imported.write(args.force)
        for mode in modes:  # an imported model has no QAT checkpoint: int8 is calibrated
            convert(cfg, run, mode, args.io_dtype, from_qat=False, max_drop=args.max_drop,
                    debug_quant=args.debug_quant, images=images, engine=args.engine, target=args.target)
    if images is None:
        print(f"Verify it: python -m tfpipe.evaluate --config {run.root / 'config.yaml'} --workdir {args.workdir}",
              flush=True)
    else:
        print(f"Verify it: python -m tfpipe.evaluate --config {run.root / 'config.yaml'} --workdir {args.workdir} "
              f"--images {args.calibration_data} (agreement of every converted model with the Keras model on "
              "those images; they carry no labels)", flush=True)
    return 0


def convert_tflite(args) -> int:
    """--tflite PATH: import the float .tflite into WORKDIR/<stem>, then quantize each mode with the
    LiteRT Quantizer."""
    from tfpipe.cli import default_config
    from tfpipe.convert import tflite_import
    from tfpipe.convert.converter import modes_for_target, publish_tflite, quantize_tflite, tflite_engine
    from tfpipe.errors import TfpipeError

    check_import(args, "--tflite")
    if args.max_drop is not None or args.debug_quant or args.input_size:
        raise TfpipeError("--max-drop, --debug-quant and --input-size do not apply to --tflite",
                          "leave them out: the file's input size is fixed; search mixed precision on a tfpipe run")
    modes = [m for m in modes_for_target(args.target, args.quantize, ("int8",)) if m != "none"]
    for mode in modes:  # before anything is written
        tflite_engine(mode, args.engine)
    imported = tflite_import.prepare(args.tflite, args.calibration_data, args.workdir, args.overrides,
                                     default_config(), output=args.output, classes=args.classes, name=args.name,
                                     force=args.force)
    cfg, run = imported.cfg, imported.run
    with run.writer():
        # every mode made in memory first: a quantizer failing on this file leaves no half-imported run
        made = [quantize_tflite(cfg, mode, args.io_dtype, imported.model, imported.images, args.engine, args.target)
                for mode in ["none", *modes]]
        imported.write(args.force)
        for model in made:
            publish_tflite(cfg, run, model, imported.class_names)
    check = f"python -m tfpipe.evaluate --config {run.root / 'config.yaml'} --workdir {args.workdir}"
    print(f"Verify it: {check}" + ("" if imported.images is None else f" --images {args.calibration_data} "
          "(agreement of every quantized model with the float .tflite on those images, or better on a held-out "
          "folder; they carry no labels)"), flush=True)
    return 0


STAGE = Stage("convert", "Convert the run's model to TFLite (trains and runs QAT first when the run has none).",
              "python -m tfpipe.convert --quantize int8", add_arguments, run)

if __name__ == "__main__":
    main(STAGE)
