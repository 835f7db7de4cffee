"""python -m tfpipe.evaluate: the float model against every .tflite of the run, with a parity gate."""

from pathlib import Path

from tfpipe.cli import Stage, main, points
from tfpipe.config import BACKENDS


def add_arguments(parser) -> None:
    parser.add_argument("--models", nargs="+", type=Path, default=None, metavar="TFLITE",
                        help="evaluate these files instead of every .tflite in the run's export/")
    parser.add_argument("--images", type=Path, default=None, metavar="DIR",
                        help="no labels: agreement of every .tflite with the float model on these images (searched "
                             "recursively), through the run's preprocess; writes eval/agreement.json")
    parser.add_argument("--max-drop", type=points, default=None,
                        help="largest allowed drop in points of top-1 (classification) or mIoU (segmentation) "
                             "(default: evaluate.max_drop)")
    parser.add_argument("--threads", type=int, default=None, help="interpreter threads (default: evaluate.threads)")
    parser.add_argument("--runtime", choices=BACKENDS, default=None,
                        help="TFLite runtime (default: auto = ai-edge-litert, then tflite_runtime, then tf.lite)")
    parser.add_argument("--runtime-python", default=None, metavar="PYTHON",
                        help="run the runtime workers under this interpreter, e.g. .venv-tflite/bin/python "
                             "(tflite-runtime 2.14 needs numpy<2 and cannot share a process with TensorFlow)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="shard the test split over N runtime worker processes (default: evaluate.workers, 1)")
    parser.add_argument("--delegate", default=None, metavar="edgetpu|gpu|PATH.so",
                        help="load this delegate into every runtime worker (load_delegate): edgetpu, gpu, or the "
                             "path of a delegate library")
    parser.add_argument("--reference-kernels", action="store_true", default=None,
                        help="TFLite's reference kernels instead of the XNNPACK delegate: about 15x slower, "
                             "the same outputs on every CPU, and within 2 int8 steps across runtime versions "
                             "(XNNPACK: dozens)")


def run(args, cfg) -> int:
    from tfpipe.errors import TfpipeError
    from tfpipe.evaluate.parity import evaluate
    from tfpipe.report import publish
    from tfpipe.rundir import RunDir

    if args.threads is not None and args.threads < 1:
        raise TfpipeError(f"--threads: {args.threads} is not accepted", "use 1 or more")
    if args.workers is not None and args.workers < 1:
        raise TfpipeError(f"--workers: {args.workers} is not accepted", "use 1 or more")
    run_dir = RunDir.for_config(cfg, args.workdir)
    if args.images is not None:
        from tfpipe.evaluate.agreement import folder_agreement, table

        if not args.images.is_dir():
            raise TfpipeError(f"--images: {args.images} is not a folder", "give a folder of images")
        with run_dir.writer(cfg):
            report = folder_agreement(cfg, run_dir, args.images, args.models, threads=args.threads or 1,
                                      backend=args.runtime or cfg.evaluate.backend, python=args.runtime_python)
        print("\n".join(table(report)) + f"\nWrote {run_dir.eval / 'agreement.json'}", flush=True)
        return 0
    with run_dir.writer(cfg):
        evaluation = evaluate(cfg, run_dir, threads=args.threads, max_drop=args.max_drop, backend=args.runtime,
                              python=args.runtime_python, reference_kernels=args.reference_kernels,
                              models=args.models, workers=args.workers, delegate=args.delegate)
        return publish(evaluation, run_dir.eval)


STAGE = Stage("evaluate", "Top-1/top-5 (classification) or mIoU (segmentation), agreement, output error, size and "
              "latency of every .tflite against the float model on the full test (scenes: val) split; exits 1 "
              "when a model drops more than --max-drop or its runtime worker crashes.",
              "python -m tfpipe.evaluate --config configs/quickstart.yaml --max-drop 0.5", add_arguments, run)

if __name__ == "__main__":
    main(STAGE)
