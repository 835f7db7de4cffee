"""python -m tfpipe.qat: quantization-aware fine-tuning from the float checkpoint."""

from tfpipe.cli import Stage, main


def add_arguments(parser) -> None:
    pass


def run(args, cfg) -> int:
    from tfpipe import tasks
    from tfpipe.qat import finetune
    from tfpipe.rundir import RunDir
    from tfpipe.train.trainer import require_float_model

    run_dir = RunDir.for_config(cfg, args.workdir)
    require_float_model(run_dir)  # fails early, naming the missing file
    splits = tasks.of(cfg).load_splits(cfg)
    with run_dir.writer(cfg):
        run_dir.write_config(cfg)
        finetune(cfg, run_dir, splits)
    return 0


STAGE = Stage("qat", "Quantization-aware fine-tuning of the run's float model; writes qat/model.h5.",
              "python -m tfpipe.qat --config configs/quickstart.yaml --set qat.epochs=1", add_arguments, run)

if __name__ == "__main__":
    main(STAGE)
