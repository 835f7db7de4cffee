"""Keras fit with warm-up + cosine decay, label smoothing, a checkpoint every epoch, TensorBoard,
and resume: a run killed at any point (even SIGKILL) continues from its last completed epoch."""

from __future__ import annotations

import sys
from pathlib import Path

from tfpipe import io, models
from tfpipe.backend import keras
from tfpipe.config import Config, TrainConfig
from tfpipe.data.augment import build_augmenter
from tfpipe.data.pipeline import Splits, load_splits, make_dataset
from tfpipe.data.preprocess import PreprocessSpec
from tfpipe.errors import TfpipeError
from tfpipe.rundir import RunDir


def warmup_cosine(peak: float, total_steps: int, warmup_steps: int):
    """Linear warm-up from 0 to `peak` over `warmup_steps`, then cosine decay to 0 at `total_steps`."""
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup_steps else peak,
        decay_steps=max(1, total_steps - warmup_steps),
        alpha=0.0,
        warmup_target=peak if warmup_steps else None,
        warmup_steps=warmup_steps,
    )


def make_optimizer(name: str, learning_rate, weight_decay: float = 0.0):
    decay = weight_decay or None
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True, weight_decay=decay)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay)
    return keras.optimizers.Adam(learning_rate, weight_decay=decay)


def compile_for_training(model, cfg: TrainConfig, learning_rate, label_smoothing: float | None = None) -> None:
    model.compile(
        optimizer=make_optimizer(cfg.optimizer, learning_rate, cfg.weight_decay),
        loss=keras.losses.CategoricalCrossentropy(
            label_smoothing=cfg.label_smoothing if label_smoothing is None else label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )


class ResumeFromBackup(keras.callbacks.BackupAndRestore):
    """BackupAndRestore (a tf.train checkpoint of weights, optimizer and epoch at every epoch end,
    written before the index that points at it) that also tells the user when it resumes."""

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        # The restored epoch counter is private to tf_keras; -1 means "nothing restored".
        state = getattr(self.model, "_training_state", None)
        saved = int(state._ckpt_saved_epoch.numpy()) if state is not None else -1
        if saved >= 0:
            print(f"Resuming from the checkpoint of epoch {saved + 1}: "
                  f"continuing at epoch {saved + 2}/{self.params['epochs']}", flush=True)


def has_backup(checkpoints: Path) -> bool:
    return any(checkpoints.rglob("checkpoint"))


def fit(model, cfg: Config, splits: Splits, spec: PreprocessSpec, *, epochs: int, learning_rate, out_dir: Path,
        label_smoothing: float | None = None) -> keras.callbacks.History:
    """The one training loop, shared by float training and QAT fine-tuning."""
    num_classes = len(splits.class_names)
    compile_for_training(model, cfg.train, learning_rate, label_smoothing)
    train_ds = make_dataset(splits.train, spec, cfg.train.batch_size, num_classes, training=True,
                            augmenter=build_augmenter(cfg.augment, cfg.train.seed), seed=cfg.train.seed)
    val_ds = (make_dataset(splits.val, spec, cfg.train.batch_size, num_classes) if splits.val else None)
    checkpoints = out_dir / "checkpoints"
    history_csv = out_dir / "history.csv"
    if not has_backup(checkpoints) and history_csv.exists():
        history_csv.unlink()  # a fresh run: the old history belongs to a finished model
    callbacks = [
        ResumeFromBackup(str(checkpoints)),  # first, so an epoch is saved before it is logged
        keras.callbacks.CSVLogger(str(history_csv), append=True),
        keras.callbacks.TensorBoard(str(out_dir / "tensorboard"), profile_batch=0),
    ]
    return model.fit(train_ds, epochs=epochs, validation_data=val_ds, callbacks=callbacks,
                     verbose=1 if sys.stdout.isatty() else 2)


def steps_per_epoch(cfg: Config, splits: Splits) -> int:
    return max(1, len(splits.train) // cfg.train.batch_size)


def train(cfg: Config, run: RunDir, splits: Splits | None = None) -> Path:
    """Train the float model and save it to train/model.keras; returns that path."""
    splits = splits or load_splits(cfg.data)
    spec = PreprocessSpec.from_config(cfg)
    keras.utils.set_random_seed(cfg.train.seed)
    model = models.build(cfg.model, cfg.task, len(splits.class_names))
    steps = steps_per_epoch(cfg, splits)
    schedule = warmup_cosine(cfg.train.learning_rate, cfg.train.epochs * steps,
                             round(cfg.train.warmup_epochs * steps))
    print(f"Training {cfg.model.name} ({model.count_params():,} parameters) on {len(splits.train):,} images, "
          f"{cfg.train.epochs} epochs of {steps} steps", flush=True)
    history = fit(model, cfg, splits, spec, epochs=cfg.train.epochs, learning_rate=schedule, out_dir=run.train)
    io.write_with(run.float_model, lambda tmp: model.save(tmp))
    val = history.history.get("val_accuracy")
    tail = f", validation top-1 {val[-1]:.4f}" if val else ""
    print(f"Saved the float model to {run.float_model}{tail}", flush=True)
    return run.float_model


def require_float_model(run: RunDir) -> Path:
    if not run.float_model.is_file():
        raise TfpipeError(f"no trained model at {run.float_model}",
                          "run `python -m tfpipe.train` with this config first")
    return run.float_model


def load_float_model(run: RunDir):
    return keras.models.load_model(require_float_model(run), compile=False)


def ensure_trained(cfg: Config, run: RunDir, splits: Splits | None = None) -> Path:
    """Reuse train/model.keras when present, otherwise train it (and say so)."""
    if run.float_model.is_file():
        print(f"Using the trained float model {run.float_model}", flush=True)
        return run.float_model
    print(f"No trained model in {run.root}: training it first", flush=True)
    return train(cfg, run, splits)
