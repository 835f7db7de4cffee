"""The QAT stage: fine-tune the run's float model with fake quantization (qat/model.py), its
activation ranges started at the float model's; writes qat/model.h5."""

from __future__ import annotations

from pathlib import Path

from tfpipe import tasks
from tfpipe.backend import keras
from tfpipe.config import Config
from tfpipe.data.pipeline import Splits
from tfpipe.qat.model import apply_qat, calibrate_ranges, save_h5
from tfpipe.rundir import RunDir


def finetune(cfg: Config, run: RunDir, splits: Splits | None = None) -> Path:
    """Fine-tune train/model.keras with QAT for qat.epochs; saves qat/model.h5."""
    from tfpipe.train import cluster
    from tfpipe.train.schedules import warmup_cosine
    from tfpipe.train.trainer import (
        describe_strategy,
        describe_validation,
        distribution,
        fit,
        load_float_model,
        steps_per_epoch,
    )

    splits = splits or tasks.of(cfg).load_splits(cfg)
    keras.utils.set_random_seed(cfg.train.seed)
    strategy = distribution(cfg.train.strategy)  # the training's strategy (train.strategy) fine-tunes too
    float_model = load_float_model(run)  # outside the strategy: it only measures the ranges
    spec = cfg.preprocess_spec()
    images = splits.calibration_inputs(spec, cfg.convert.calibration_samples, cfg.train.seed)
    with strategy.scope():
        if describe_strategy(strategy):
            print(describe_strategy(strategy), flush=True)
        model = apply_qat(float_model)
        count = calibrate_ranges(model, float_model, images)
        print(f"Started {count} activation ranges at the float model's, measured on {len(images)} training images",
              flush=True)
        # Its own schedule: cosine from qat.learning_rate, no warm-up (the weights are already trained).
        schedule = warmup_cosine(cfg.qat.learning_rate, cfg.qat.epochs * steps_per_epoch(cfg, splits), 0)
        print(f"Quantization-aware fine-tuning for {cfg.qat.epochs} epoch(s) at learning rate "
              f"{cfg.qat.learning_rate:g}", flush=True)
        history = fit(model, cfg, splits, spec, epochs=cfg.qat.epochs,
                      learning_rate=schedule, out_dir=run.qat_model.parent)
        cluster.save_from_every_worker(run.qat_model, lambda tmp: save_h5(model, tmp))
    if cluster.is_chief():
        print(f"Saved the QAT model to {run.qat_model}{describe_validation(history)}", flush=True)
    return run.qat_model


def ensure_qat(cfg: Config, run: RunDir, splits: Splits | None = None) -> Path:
    if run.qat_model.is_file():
        print(f"Using the QAT model {run.qat_model}", flush=True)
        return run.qat_model
    print(f"No QAT model in {run.root}: running quantization-aware training first", flush=True)
    return finetune(cfg, run, splits)
