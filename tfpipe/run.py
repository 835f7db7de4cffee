"""python -m tfpipe.run: train -> QAT -> convert (every convert.quantize mode) -> evaluate.

Stages whose output already exists in the run directory are reused, so a rerun after an
interruption picks up where it stopped (training itself resumes mid-way from its checkpoint).
"""

from tfpipe.cli import Stage, main


def add_arguments(parser) -> None:
    pass


def run(args, cfg) -> int:
    from tfpipe.convert.converter import export
    from tfpipe.evaluate.parity import evaluate
    from tfpipe.report import publish
    from tfpipe.rundir import RunDir

    run_dir = RunDir.for_config(cfg, args.workdir)
    with run_dir.writer(cfg):
        splits = export(cfg, run_dir, cfg.convert.quantize)
        return publish(evaluate(cfg, run_dir, splits=splits), run_dir.eval)


STAGE = Stage("run", "The whole pipeline: train, QAT, convert every convert.quantize mode, evaluate parity.",
              "python -m tfpipe.run --config configs/quickstart.yaml", add_arguments, run)

if __name__ == "__main__":
    main(STAGE)
