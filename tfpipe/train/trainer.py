"""Keras fit with warm-up + cosine or step decay, label smoothing, a checkpoint every epoch,
TensorBoard, resume (a run killed at any point, even by SIGKILL, continues from its last completed
epoch), transfer learning with a frozen phase, a divergence guard, the update/weight ratio and activation
and gradient statistics per layer, auxiliary classifiers, snapshot ensembles and tf.distribute
strategies."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from tfpipe import backend, io, models, tasks
from tfpipe.backend import keras, tf
from tfpipe.config import Config
from tfpipe.data.pipeline import Splits
from tfpipe.errors import TfpipeError
from tfpipe.models.registry import MAIN_OUTPUT
from tfpipe.rundir import RunDir
from tfpipe.runtime.contract import PreprocessSpec
from tfpipe.train import cluster
from tfpipe.train.callbacks import DivergenceGuard, LayerStatistics, ResumeFromBackup, Snapshots, UpdateRatio
from tfpipe.train.ensemble import score_snapshots
from tfpipe.train.schedules import make_schedule
from tfpipe.train.transfer import load_pretrained, set_frozen


def make_optimizer(name: str, learning_rate, weight_decay: float = 0.0, clip_norm: float | None = None):
    """train.optimizer -> a tf_keras optimizer. `clip_norm` scales the whole gradient down when its
    global norm exceeds it (Keras's global_clipnorm; under a distribution strategy it applies to
    the gradient averaged over the replicas, which tf_keras aggregates before clipping)."""
    decay = weight_decay or None
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True, weight_decay=decay,
                                    global_clipnorm=clip_norm)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay, global_clipnorm=clip_norm)
    return keras.optimizers.Adam(learning_rate, weight_decay=decay, global_clipnorm=clip_norm)


def compile_for_training(model, cfg: Config, num_classes: int, learning_rate,
                         label_smoothing: float | None = None) -> None:
    """The task's losses and metric on the model as training sees it, with the configured optimizer."""
    t = cfg.train
    optimizer = make_optimizer(t.optimizer, learning_rate, t.weight_decay, t.clip_norm)
    tasks.of(cfg).compile(model, cfg, num_classes, optimizer, label_smoothing)


def fit(model, cfg: Config, splits: Splits, spec: PreprocessSpec, *, epochs: int, learning_rate,
        out_dir: Path, label_smoothing: float | None = None, initial_epoch: int = 0,
        checkpoints: Path | None = None, callbacks: tuple = ()) -> keras.callbacks.History:
    """The one training loop, shared by float training, its frozen phase, QAT and the search.

    Raises TfpipeError when the divergence guard stops it; the checkpoints of a diverged run are
    deleted, so the rerun (with a lower rate) starts afresh instead of resuming the blow-up."""
    task = tasks.of(cfg)
    model = task.training_view(model, cfg)
    compile_for_training(model, cfg, len(splits.class_names), learning_rate, label_smoothing)
    train_ds, val_ds = (shard_by_data(ds) for ds in task.training_batches(cfg, splits, spec, model))
    checkpoints = checkpoints or out_dir / "checkpoints"
    history_csv = out_dir / "history.csv"
    chief = cluster.is_chief()
    guard = DivergenceGuard(cfg.train.divergence_factor) if cfg.train.divergence_factor else None
    # Every worker backs up (its weights are read collectively; the others' copies go to temporary
    # folders tf_keras removes) and guards (the logged loss is all-reduced, so all stop together);
    # the chief alone logs.
    callbacks = ([guard] if guard else []) + list(callbacks)
    if chief and cfg.train.update_ratio_every:
        callbacks.append(UpdateRatio(out_dir / "tensorboard" / "update_ratio", cfg.train.update_ratio_every,
                                     out_dir / "update_ratio.csv"))
    # measured on one process only: the probe reads BatchNorm's synchronized statistics, which under a
    # strategy of several replicas is a collective every replica would have to join
    # The probe batch is the first validation batch: another iterator over the training pipeline would
    # advance its seeded shuffle and change the order training sees. One replica only: the probe reads
    # BatchNorm's synchronized statistics, a collective every replica would have to join.
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if chief and cfg.train.layer_stats_every and replicas == 1 and val_ds is not None:
        callbacks.append(LayerStatistics(out_dir / "tensorboard" / "layer_stats", out_dir / "layer_stats.csv",
                                         cfg.train.layer_stats_every, next(iter(val_ds))))
    elif chief and cfg.train.layer_stats_every:
        print("Layer statistics (train.layer_stats_every) are measured in one-replica runs with a validation split "
              f"only, not here ({replicas} replicas{'' if val_ds is not None else ', no validation split'})",
              flush=True)
    if chief:
        callbacks.append(keras.callbacks.TensorBoard(str(out_dir / "tensorboard"), profile_batch=0))
    # last: history.csv's row has what the others add to the logs, and is written before the checkpoint
    callbacks.append(ResumeFromBackup(str(checkpoints), history_csv if chief else None, initial_epoch))
    try:
        history = model.fit(train_ds, epochs=epochs, initial_epoch=initial_epoch, validation_data=val_ds,
                            callbacks=callbacks, verbose=1 if sys.stdout.isatty() else 2)
    except tf.errors.UnavailableError as e:  # a peer of a multi-worker cluster died or was unreachable
        if cluster.from_environment() is None:
            raise
        lines = [line for line in e.message.splitlines() if line.strip()]
        raise TfpipeError(f"another process of the cluster stopped: {' '.join(lines[:2])[:300]}",
                          "restart every worker with the same command: training resumes from the last "
                          "completed epoch") from None
    if guard and guard.tripped:
        shutil.rmtree(checkpoints, ignore_errors=True)
        raise TfpipeError(f"training diverged at {guard.tripped}; stopped, checkpoints removed",
                          "lower train.learning_rate or lengthen train.warmup_epochs "
                          "(train.divergence_factor: null turns the guard off)")
    return history


def shard_by_data(ds):
    """Under a multi-worker strategy, each worker runs the whole (seeded, so identical) pipeline
    and keeps its share of every global batch: the steps see the same images as one process with
    the same global batch would, whatever the data source (sharding by file would need the
    pipeline to start from files, which in-memory and decoded-image sources do not). Costs each
    worker the decoding and augmentation of the others' images. No effect on one process."""
    if ds is None:
        return None
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def validation_score(history: keras.callbacks.History) -> tuple[str, float] | None:
    """The main output's validation metric after the last epoch: ("top-1", accuracy) or ("mIoU", mIoU)."""
    for key, label in (("accuracy", "top-1"), ("miou", "mIoU")):
        values = history.history.get(f"val_{key}") or history.history.get(f"val_{MAIN_OUTPUT}_{key}")
        if values:
            return label, float(values[-1])
    return None


def describe_validation(history: keras.callbacks.History) -> str:
    score = validation_score(history)
    return f", validation {score[0]} {score[1]:.4f}" if score else ""


def steps_per_epoch(cfg: Config, splits: Splits) -> int:
    """Full batches per epoch (training drops the last partial one, so every step has the batch's
    statistics); a batch larger than the split would leave none."""
    if splits.num_train < cfg.train.batch_size:
        raise TfpipeError(f"train.batch_size: {cfg.train.batch_size} is larger than the training split "
                          f"({splits.num_train:,} images)", f"use at most {splits.num_train}, or more training data")
    return splits.num_train // cfg.train.batch_size


def distribution(name: str):
    """train.strategy -> a tf.distribute strategy. mirrored: one replica per local device (GPUs,
    or logical CPUs); multiworker: one per process named in TF_CONFIG (docs/training.md), made
    when TensorFlow starts (a training command calls cluster.prepare before that)."""
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if backend.multiworker_strategy is None:  # not made at start-up: say why, in one line
            cluster.prepare(name)
        return backend.multiworker_strategy
    return tf.distribute.get_strategy()


def describe_strategy(strategy) -> str:
    """The progress line of a distributed run: which process this is, who the chief is, how many
    replicas keep the weights in sync."""
    place = cluster.from_environment() if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) else None
    if place is not None:
        return place.describe(strategy.num_replicas_in_sync)
    return f"{strategy.num_replicas_in_sync} replicas in sync" if strategy.num_replicas_in_sync > 1 else ""


def train(cfg: Config, run: RunDir, splits: Splits | None = None) -> Path:
    """Train the float model and save it to train/model.keras; returns that path.

    With train.pretrained and train.freeze_epochs, the transferred layers are frozen for the first
    epochs (saved to train/frozen_weights.h5 when that phase ends, so a kill after it does not
    repeat it), then all layers train at train.finetune_lr_factor x the rate."""
    splits = splits or tasks.of(cfg).load_splits(cfg)
    spec = cfg.preprocess_spec()
    keras.utils.set_random_seed(cfg.train.seed)
    strategy = distribution(cfg.train.strategy)
    steps = steps_per_epoch(cfg, splits)
    for note in splits.notes:
        print(note, flush=True)
    if splits.skipped and cluster.is_chief():
        listing = io.write_text(run.train / "skipped_samples.txt", "".join(f"{reason}\n" for reason in splits.skipped))
        print(f"{len(splits.skipped):,} bad samples left out (data.on_bad_sample: skip), first: {splits.skipped[0]}; "
              f"all in {listing}", flush=True)
    with strategy.scope():
        model = models.build(cfg.model, cfg.task, len(splits.class_names))
        transferred = load_pretrained(model, cfg.train.pretrained) if cfg.train.pretrained else []
        if describe_strategy(strategy):
            print(describe_strategy(strategy), flush=True)
        replicas = f" on {strategy.num_replicas_in_sync} replicas" if strategy.num_replicas_in_sync > 1 else ""
        print(f"Training {cfg.model.name} ({model.count_params():,} parameters) on {splits.num_train:,} images, "
              f"{cfg.train.epochs} epoch{'s' if cfg.train.epochs != 1 else ''} of {steps} steps{replicas}", flush=True)
        if transferred:
            print(f"Transferred the weights of {len(transferred)} of {sum(1 for la in model.layers if la.weights)} "
                  f"weighted layers from {cfg.train.pretrained}", flush=True)
        frozen_epochs = cfg.train.freeze_epochs if transferred else 0
        frozen_weights = run.train / "frozen_weights.h5"
        if frozen_epochs and frozen_weights.is_file():
            model.load_weights(frozen_weights)
            print(f"Using the frozen phase's weights {frozen_weights}", flush=True)
        elif frozen_epochs:
            print(f"Epochs 1-{frozen_epochs}: the transferred layers are frozen", flush=True)
            set_frozen(model, transferred, True)
            fit(model, cfg, splits, spec, epochs=frozen_epochs, out_dir=run.train,
                checkpoints=run.train / "checkpoints_frozen",
                learning_rate=make_schedule(cfg.train, steps, last_epoch=frozen_epochs))
            set_frozen(model, transferred, False)
            cluster.save_from_every_worker(frozen_weights, lambda tmp: model.save_weights(tmp))
        if frozen_epochs:
            rate = cfg.train.learning_rate * cfg.train.finetune_lr_factor
            print(f"Epochs {frozen_epochs + 1}-{cfg.train.epochs}: all layers train, at learning rate {rate:g}",
                  flush=True)
            schedule = make_schedule(cfg.train, steps, first_epoch=frozen_epochs, peak=rate, warmup=False)
        else:
            schedule = make_schedule(cfg.train, steps)
        snapshots = cfg.train.snapshots
        if snapshots > 1:
            print(f"Snapshot ensemble: {snapshots} cosine cycles of {cfg.train.epochs // snapshots} epochs, a "
                  f"snapshot at the end of each in {run.snapshot(1).parent}", flush=True)
        keep = (Snapshots(cfg.train.epochs // snapshots, lambda k: cluster.save_from_every_worker(
            run.snapshot(k), lambda tmp: tasks.of(cfg).trained_model(model).save(tmp))),) if snapshots > 1 else ()
        history = fit(model, cfg, splits, spec, epochs=cfg.train.epochs, learning_rate=schedule, out_dir=run.train,
                      initial_epoch=frozen_epochs, callbacks=keep)
        model = tasks.of(cfg).trained_model(model)
        cluster.save_from_every_worker(run.float_model, lambda tmp: model.save(tmp))
    if cluster.is_chief():
        print(f"Saved the float model to {run.float_model}{describe_validation(history)}", flush=True)
        if snapshots > 1:
            score_snapshots(cfg, splits, [run.snapshot(k) for k in range(1, snapshots + 1)],
                            run.train / "snapshots.json")
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
