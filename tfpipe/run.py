"""python -m tfpipe.run: train -> QAT -> convert (every convert.quantize mode) -> evaluate.

Stages whose output already exists in the run directory are reused, so a rerun after an
interruption picks up where it stopped (training itself resumes mid-way from its checkpoint).
"""

from tfpipe.cli import Stage, main


def add_arguments(parser) -> None:
    pass


def convert_run(cfg, run_dir, modes: list[str] | tuple[str, ...], io_dtype: str | None = None,
                from_qat: bool = True, max_drop: float | None = None, debug_quant: bool = False,
                engine: str | None = None, target: str = "cpu"):
    """What `tfpipe convert` and `tfpipe run` do: check every requested mode, load the data (bad
    input fails here, before the run directory is touched), train, and run QAT for the modes made
    from it, when the run has no such model (saying so), then convert each mode. Returns the
    splits for evaluation."""
    from tfpipe import tasks
    from tfpipe.convert.converter import check_request, convert, engine_for, io_dtype_for
    from tfpipe.qat import ensure_qat
    from tfpipe.runtime.contract import QUANT_MODES
    from tfpipe.train.trainer import distribution, ensure_trained

    engines = {}
    for mode in modes:
        check_request(mode, io_dtype_for(cfg, mode, io_dtype, target))
        engines[mode] = engine_for(mode, engine, cfg.convert.engine)
    splits = tasks.of(cfg).load_splits(cfg)
    # QAT is the converter's source of int8; the LiteRT Quantizer calibrates the fp32 file
    qat_needed = from_qat and any(QUANT_MODES[mode].from_qat and engines[mode] == "converter" for mode in modes)
    if not run_dir.float_model.is_file() or (qat_needed and not run_dir.qat_model.is_file()):
        distribution(cfg.train.strategy)  # one it cannot train under here (multiworker) fails before any write
    run_dir.write_config(cfg)
    ensure_trained(cfg, run_dir, splits)
    if qat_needed:
        ensure_qat(cfg, run_dir, splits)
    for mode in modes:
        convert(cfg, run_dir, mode, io_dtype, splits, from_qat=from_qat, max_drop=max_drop, debug_quant=debug_quant,
                engine=engines[mode], target=target)
    return splits


def run(args, cfg) -> int:
    from tfpipe.evaluate.parity import evaluate
    from tfpipe.report import publish
    from tfpipe.rundir import RunDir

    run_dir = RunDir.for_config(cfg, args.workdir)
    with run_dir.writer(cfg):
        splits = convert_run(cfg, run_dir, cfg.convert.quantize)
        return publish(evaluate(cfg, run_dir, splits=splits), run_dir.eval)


STAGE = Stage("run", "The whole pipeline: train, QAT, convert every convert.quantize mode, evaluate parity.",
              "python -m tfpipe.run --config configs/quickstart.yaml", add_arguments, run)

if __name__ == "__main__":
    main(STAGE)
