"""python -m tfpipe.train: train the float model of a config."""

from tfpipe.cli import Stage, main, workers_flag


def add_arguments(parser) -> None:
    workers_flag(parser)


def before_tensorflow(args, cfg) -> None:
    from tfpipe.train import cluster

    if not args.workers:
        cluster.prepare(cfg.train.strategy)


def run(args, cfg) -> int:
    from tfpipe import tasks
    from tfpipe.rundir import RunDir
    from tfpipe.train import cluster
    from tfpipe.train.trainer import train

    if args.workers:
        return cluster.launch("tfpipe.train", cluster.without_flag(args.argv, "--workers"), args.workers)
    splits = tasks.of(cfg).load_splits(cfg)  # bad data fails here, before the run directory is touched
    run_dir = RunDir.for_config(cfg, args.workdir)
    with cluster.run_writer(run_dir, cfg):
        train(cfg, run_dir, splits)
    return 0


STAGE = Stage("train", "Train the float model (resumes from the last completed epoch if a run was killed).",
              "python -m tfpipe.train --config configs/quickstart.yaml --set train.epochs=2", add_arguments, run,
              before_tensorflow=before_tensorflow)

if __name__ == "__main__":
    main(STAGE)
