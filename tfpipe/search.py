"""python -m tfpipe.search: random search of the learning rate (and weight decay) in log space,
coarse then fine, as the lectures teach it.

The coarse stage samples the whole range; the fine stage samples the box spanned by the best
coarse trials (widened by a factor 10**(1/6) on each side and kept inside the
coarse range). Every trial trains a fresh model for a few short epochs and is scored by its
validation top-1. Results go to runs/<name>/search/results.csv and results.md; a rerun keeps the
finished trials (the draws are seeded, so it asks for the same ones) and runs the rest.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import time
from pathlib import Path

from tfpipe import tasks
from tfpipe.cli import Stage, main
from tfpipe.errors import TfpipeError

FIELDS = ("trial", "stage", "learning_rate", "weight_decay", "val_top1", "val_loss", "seconds")
WIDEN = 10 ** (1 / 6)


def add_arguments(parser) -> None:
    parser.add_argument("--trials", type=int, default=8, help="coarse trials (default 8)")
    parser.add_argument("--fine-trials", type=int, default=6, help="fine trials (default 6)")
    parser.add_argument("--keep", type=int, default=3, help="best coarse trials that bound the fine stage (default 3)")
    parser.add_argument("--epochs", type=int, default=1, help="training epochs per trial (default 1)")
    parser.add_argument("--lr-range", type=float, nargs=2, default=(1e-4, 1e-1), metavar=("LOW", "HIGH"),
                        help="learning-rate range, sampled in log space (default 1e-4 1e-1)")
    parser.add_argument("--wd-range", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                        help="also search the weight decay in this range (log space)")


def _check(args, cfg) -> None:
    for flag, value in (("--trials", args.trials), ("--fine-trials", args.fine_trials), ("--keep", args.keep),
                        ("--epochs", args.epochs)):
        if value < (0 if flag == "--fine-trials" else 1):
            raise TfpipeError(f"{flag}: {value} is not accepted", "use a positive whole number")
    for flag, pair in (("--lr-range", args.lr_range), ("--wd-range", args.wd_range)):
        if pair is not None and not 0 < pair[0] < pair[1]:
            raise TfpipeError(f"{flag}: {list(pair)} is not accepted", "use LOW HIGH with 0 < LOW < HIGH")
    if tasks.of(cfg).gate.metric != "top1":
        raise TfpipeError(f"task: {cfg.task}: the search ranks trials by validation top-1, classification only",
                          "search the learning rate on a classification config")
    if not cfg.data.val_samples:
        raise TfpipeError("data.val_samples: 0 leaves nothing to score the trials on", "hold out e.g. 5000 images")


def sample(rng, box: dict[str, tuple[float, float]], count: int) -> list[dict[str, float]]:
    """`count` points drawn uniformly in log space inside `box` (name -> (low, high))."""
    return [{name: float(10 ** rng.uniform(math.log10(lo), math.log10(hi))) for name, (lo, hi) in box.items()}
            for _ in range(count)]


def fine_box(results: list[dict], box: dict[str, tuple[float, float]], keep: int) -> dict[str, tuple[float, float]]:
    """The box spanned by the `keep` best trials, widened by WIDEN and clipped to `box`."""
    best = sorted(results, key=lambda r: -float(r["val_top1"]))[:keep]
    narrow = {}
    for name, (lo, hi) in box.items():
        values = [float(r[name]) for r in best]
        narrow[name] = (max(lo, min(values) / WIDEN), min(hi, max(values) * WIDEN))
    return narrow


def _read(path: Path) -> dict[int, dict]:
    if not path.is_file():
        return {}
    with path.open() as f:
        return {int(row["trial"]): row for row in csv.DictReader(f)}


def _write(results: dict[int, dict], out: Path) -> None:
    from tfpipe import io

    rows = [results[k] for k in sorted(results)]

    def table(tmp: Path) -> None:
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, FIELDS)
            writer.writeheader()
            writer.writerows(rows)

    io.write_with(out / "results.csv", table)
    ranked = sorted(rows, key=lambda r: -float(r["val_top1"]))
    lines = ["| rank | trial | stage | learning rate | weight decay | val top-1 | val loss | seconds |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {i} | {r['trial']} | {r['stage']} | {float(r['learning_rate']):.3g} | "
              f"{float(r['weight_decay']):.3g} | {float(r['val_top1']):.4f} | {float(r['val_loss']):.4f} | "
              f"{float(r['seconds']):.0f} |" for i, r in enumerate(ranked, 1)]
    io.write_with(out / "results.md", lambda tmp: tmp.write_text("\n".join(lines) + "\n"))


def trial(cfg, splits, params: dict[str, float], epochs: int, out_dir: Path) -> dict:
    """Train a fresh model with these hyper-parameters; its last validation top-1 and loss."""
    from tfpipe import models
    from tfpipe.backend import keras
    from tfpipe.train.schedules import make_schedule
    from tfpipe.train.trainer import fit, steps_per_epoch, validation_score

    train_cfg = dataclasses.replace(cfg.train, epochs=epochs, schedule="cosine", learning_rate=params["learning_rate"],
                                    weight_decay=params.get("weight_decay", cfg.train.weight_decay),
                                    warmup_epochs=cfg.train.warmup_epochs * epochs / cfg.train.epochs)
    trial_cfg = dataclasses.replace(cfg, train=train_cfg)
    keras.utils.set_random_seed(cfg.train.seed)
    model = models.build(cfg.model, cfg.task, len(splits.class_names))
    start = time.perf_counter()
    try:
        history = fit(model, trial_cfg, splits, cfg.preprocess_spec(), epochs=epochs, out_dir=out_dir,
                      learning_rate=make_schedule(train_cfg, steps_per_epoch(trial_cfg, splits)))
        top1, loss = validation_score(history)[1], float(history.history["val_loss"][-1])
    except TfpipeError as e:  # the divergence guard: a diverged trial scores zero, the search goes on
        print(f"  {e.message}", flush=True)
        top1, loss = 0.0, float("nan")
    return {"learning_rate": params["learning_rate"], "weight_decay": train_cfg.weight_decay, "val_top1": top1,
            "val_loss": loss, "seconds": time.perf_counter() - start}


def run(args, cfg) -> int:
    import numpy as np

    from tfpipe import tasks
    from tfpipe.rundir import RunDir

    _check(args, cfg)
    splits = tasks.of(cfg).load_splits(cfg)
    out = RunDir.for_config(cfg, args.workdir).root / "search"
    out.mkdir(parents=True, exist_ok=True)
    results = _read(out / "results.csv")
    box = {"learning_rate": tuple(args.lr_range)}
    if args.wd_range:
        box["weight_decay"] = tuple(args.wd_range)

    def run_stage(stage: str, points: list[dict[str, float]], first: int) -> None:
        for number, params in enumerate(points, start=first):
            if number in results:
                print(f"Trial {number} ({stage}): kept from the earlier search, val top-1 "
                      f"{float(results[number]['val_top1']):.4f}", flush=True)
                continue
            print(f"Trial {number} ({stage}): {', '.join(f'{k} {v:.3g}' for k, v in params.items())}", flush=True)
            row = trial(cfg, splits, params, args.epochs, out / f"trial_{number:02d}")
            results[number] = {"trial": number, "stage": stage, **row}
            _write(results, out)
            print(f"Trial {number}: val top-1 {row['val_top1']:.4f}", flush=True)

    run_stage("coarse", sample(np.random.default_rng(cfg.train.seed), box, args.trials), 1)
    if args.fine_trials:
        coarse = [r for r in results.values() if r["stage"] == "coarse"]
        narrow = fine_box(coarse, box, args.keep)
        print(f"Fine stage in {', '.join(f'{k} {lo:.3g}..{hi:.3g}' for k, (lo, hi) in narrow.items())}", flush=True)
        run_stage("fine", sample(np.random.default_rng(cfg.train.seed + 1), narrow, args.fine_trials), args.trials + 1)
    best = max(results.values(), key=lambda r: float(r["val_top1"]))
    settings = f"--set train.learning_rate={float(best['learning_rate']):.3g}"
    if args.wd_range:
        settings += f" --set train.weight_decay={float(best['weight_decay']):.3g}"
    print(f"Best: trial {best['trial']} ({best['stage']}), val top-1 {float(best['val_top1']):.4f}: {settings}\n"
          f"Results: {out / 'results.md'}", flush=True)
    return 0


STAGE = Stage("search", "Random search of the learning rate (and weight decay) in log space, coarse then fine.",
              "python -m tfpipe.search --config configs/quickstart.yaml --trials 8 --fine-trials 6 --epochs 1",
              add_arguments, run)

if __name__ == "__main__":
    main(STAGE)
