"""python -m tfpipe.run: train -> QAT -> convert (every convert.quantize mode) -> evaluate.

Stages whose output already exists in the run directory are reused, so a rerun after an
interruption picks up where it stopped (training itself resumes mid-way from its checkpoint).
"""

from tfpipe.cli import Stage, main


def add_arguments(parser) -> None:
    pass


def run(args, cfg) -> int:
    from tfpipe.convert.converter import check_request, convert, io_dtype_for
    from tfpipe.data.pipeline import load_splits
    from tfpipe.evaluate.parity import evaluate
    from tfpipe.qat import ensure_qat
    from tfpipe.report import publish
    from tfpipe.rundir import RunDir
    from tfpipe.train.trainer import ensure_trained

    for mode in cfg.convert.quantize:
        check_request(mode, io_dtype_for(cfg, mode))
    splits = load_splits(cfg.data)  # bad data fails here, before the run directory is touched
    run_dir = RunDir.for_config(cfg, args.workdir)
    run_dir.write_config(cfg)
    ensure_trained(cfg, run_dir, splits)
    if "int8" in cfg.convert.quantize:
        ensure_qat(cfg, run_dir, splits)
    for mode in cfg.convert.quantize:
        convert(cfg, run_dir, mode, splits=splits)
    return publish(evaluate(cfg, run_dir, splits=splits), run_dir.eval)


STAGE = Stage("run", "The whole pipeline: train, QAT, convert every convert.quantize mode, evaluate parity.",
              "python -m tfpipe.run --config configs/quickstart.yaml", add_arguments, run)

if __name__ == "__main__":
    main(STAGE)
