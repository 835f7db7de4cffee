"""python -m tfpipe.train: train the float model of a config."""

from tfpipe.cli import Stage, main


def add_arguments(parser) -> None:
    pass


def run(args, cfg) -> int:
    from tfpipe import tasks
    from tfpipe.rundir import RunDir
    from tfpipe.train.trainer import train

    splits = tasks.of(cfg).load_splits(cfg)  # bad data fails here, before the run directory is touched
    run_dir = RunDir.for_config(cfg, args.workdir)
    with run_dir.writer(cfg):
        run_dir.write_config(cfg)
        train(cfg, run_dir, splits)
    return 0


STAGE = Stage("train", "Train the float model (resumes from the last completed epoch if a run was killed).",
              "python -m tfpipe.train --config configs/quickstart.yaml --set train.epochs=2", add_arguments, run)

if __name__ == "__main__":
    main(STAGE)
