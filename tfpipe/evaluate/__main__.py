"""python -m tfpipe.evaluate: the float model against every .tflite of the run, with a parity gate."""

from pathlib import Path

from tfpipe.cli import Stage, main
from tfpipe.config import BACKENDS


def add_arguments(parser) -> None:
    parser.add_argument("--models", nargs="+", type=Path, default=None, metavar="TFLITE",
                        help="evaluate these files instead of every .tflite in the run's export/")
    parser.add_argument("--max-drop", type=float, default=None,
                        help="largest allowed top-1 drop in points (default: evaluate.max_drop, 0.5)")
    parser.add_argument("--threads", type=int, default=None, help="interpreter threads (default: evaluate.threads)")
    parser.add_argument("--runtime", choices=BACKENDS, default=None,
                        help="TFLite runtime (default: auto = ai-edge-litert, then tflite_runtime, then tf.lite)")


def run(args, cfg) -> int:
    from tfpipe.evaluate.parity import evaluate
    from tfpipe.rundir import RunDir

    return evaluate_and_report(cfg, RunDir.for_config(cfg, args.workdir), threads=args.threads,
                               max_drop=args.max_drop, backend=args.runtime, models=args.models,
                               evaluate=evaluate)


def evaluate_and_report(cfg, run_dir, *, evaluate=None, **kwargs) -> int:
    """Evaluate, write the reports, print the table; raise GateFailed when the gate fails."""
    from tfpipe.errors import GateFailed, TfpipeError
    from tfpipe.report import format_table, write_report

    if evaluate is None:
        from tfpipe.evaluate.parity import evaluate
    if kwargs.get("threads") is not None and kwargs["threads"] < 1:
        raise TfpipeError(f"--threads: {kwargs['threads']} is not accepted", "use 1 or more")
    report = evaluate(cfg, run_dir, **kwargs)
    paths = write_report(report, run_dir.eval)
    print(format_table(report))
    print(f"Wrote {paths['json']}, {paths['markdown']} and {paths['confusion']}")
    if not report["gate"]["passed"]:
        raise GateFailed("; ".join(report["gate"]["failures"]))
    print(f"Parity gate passed: no converted model lost more than {report['gate']['max_drop_points']:g} "
          "top-1 points")
    return 0


STAGE = Stage("evaluate", "Top-1/top-5, agreement, output error, size and latency of every .tflite against the "
              "float model on the full test split; exits 1 when a model drops more than --max-drop.",
              "python -m tfpipe.evaluate --config configs/quickstart.yaml --max-drop 0.5", add_arguments, run)

if __name__ == "__main__":
    main(STAGE)
