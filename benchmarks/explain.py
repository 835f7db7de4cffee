"""How long `python -m tfpipe.explain` takes on a run, part by part, against issue 22's budget of
3 minutes for the quickstart run on a 2-core CPU.

    make demo                                   # the quickstart run, runs/quickstart
    python benchmarks/explain.py [--config configs/quickstart.yaml] [--workdir runs]

Runs the command's own function (tfpipe.explain.explain) with its defaults on the run's trained
float model and int8 file, then prints the seconds of each part (first filters; top images over
the whole validation split; activation maximization and deep dream; float vs int8 on 500 images)
and the total as a share of the budget. The data loading before the first part is included in the
total. Other work on the machine makes every figure larger: run it alone.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import tfpipe  # noqa: E402,F401  (Keras-2 switch before TensorFlow)

BUDGET_SECONDS = 180.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "quickstart.yaml")
    parser.add_argument("--workdir", type=Path, default=Path("runs"))
    args = parser.parse_args()

    from tfpipe.config import load_config
    from tfpipe.explain import explain
    from tfpipe.rundir import RunDir
    from tfpipe.train.trainer import require_float_model

    cfg = load_config(args.config)
    run = RunDir.for_config(cfg, args.workdir)
    require_float_model(run)
    start = time.perf_counter()
    found = explain(cfg, run)
    total = time.perf_counter() - start
    print(f"\nexplain on {run.root} ({cfg.model.name}, {found['images']['searched']:,} validation images)")
    print(f"{'part':<26}{'seconds':>10}{'share':>8}")
    for part, seconds in found["seconds"].items():
        print(f"{part:<26}{seconds:>10.1f}{seconds / total:>8.0%}")
    print(f"{'total':<26}{total:>10.1f}{1:>8.0%}")
    print(f"total / budget ({BUDGET_SECONDS:.0f} s): {total / BUDGET_SECONDS:.2f}")


if __name__ == "__main__":
    main()
