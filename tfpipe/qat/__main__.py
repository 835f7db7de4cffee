"""python -m tfpipe.qat: quantization-aware fine-tuning from the float checkpoint."""

from tfpipe.cli import Stage, main, workers_flag


def add_arguments(parser) -> None:
    workers_flag(parser)


def before_tensorflow(args, cfg) -> None:
    from tfpipe.train import cluster

    if not args.workers:
        cluster.prepare(cfg.train.strategy)


def run(args, cfg) -> int:
    from tfpipe import tasks
    from tfpipe.qat import finetune
    from tfpipe.rundir import RunDir
    from tfpipe.train import cluster
    from tfpipe.train.trainer import require_float_model

    run_dir = RunDir.for_config(cfg, args.workdir)
    require_float_model(run_dir)  # fails early, naming the missing file
    if args.workers:
        return cluster.launch("tfpipe.qat", cluster.without_flag(args.argv, "--workers"), args.workers)
    splits = tasks.of(cfg).load_splits(cfg)
    with cluster.run_writer(run_dir, cfg):
        finetune(cfg, run_dir, splits)
    return 0


STAGE = Stage("qat", "Quantization-aware fine-tuning of the run's float model; writes qat/model.h5.",
              "python -m tfpipe.qat --config configs/quickstart.yaml --set qat.epochs=1", add_arguments, run,
              before_tensorflow=before_tensorflow)

if __name__ == "__main__":
    main(STAGE)
