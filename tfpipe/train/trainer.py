"""Keras fit with warm-up + cosine or step decay, label smoothing, a checkpoint every epoch,
TensorBoard, resume (a run killed at any point, even by SIGKILL, continues from its last completed
epoch), transfer learning with a frozen phase, a divergence guard, the update/weight ratio per
layer, auxiliary classifiers, and tf.distribute strategies."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from tfpipe import io, models
from tfpipe.backend import keras, tf
from tfpipe.config import Config
from tfpipe.data.annotated import make_annotated_dataset
from tfpipe.data.augment import build_augmenter
from tfpipe.data.pipeline import SceneSplits, Splits, load_splits, make_dataset
from tfpipe.errors import TfpipeError
from tfpipe.models.detection.boxes import (
    BOXES,
    CLASS_PROBABILITIES,
    OBJECTNESS,
    SCORES,
    training_targets,
)
from tfpipe.models.detection.faster_rcnn import HEAD, HEAD_PARTS, RPN_BOXES, RPN_OBJECTNESS, two_stage_targets
from tfpipe.models.registry import MAIN_OUTPUT
from tfpipe.rundir import RunDir
from tfpipe.runtime.contract import PreprocessSpec
from tfpipe.train.callbacks import DivergenceGuard, ResumeFromBackup, UpdateRatio
from tfpipe.train.losses import (
    IGNORE,
    BoxLoss,
    FastRCNNLoss,
    FocalLoss,
    ObjectnessLoss,
    RpnObjectnessLoss,
    SegmentationLoss,
    YoloBoxLoss,
    YoloClassLoss,
)
from tfpipe.train.schedules import make_schedule
from tfpipe.train.transfer import load_pretrained, set_frozen


def make_optimizer(name: str, learning_rate, weight_decay: float = 0.0):
    decay = weight_decay or None
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True, weight_decay=decay)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay)
    return keras.optimizers.Adam(learning_rate, weight_decay=decay)


def output_names(model) -> list[str]:
    """The model's output names as built: tfmot renames a QAT copy's to quant_<name>; training
    targets and the device contract use the float names."""
    return [name.removeprefix("quant_") for name in model.output_names]


def compile_for_training(model, cfg: Config, num_classes: int, learning_rate,
                         label_smoothing: float | None = None) -> None:
    """The task's loss on `probabilities`: cross-entropy with label smoothing (classification) or
    tfpipe's SegmentationLoss (void pixels left out, optional class weights and Dice). A model with
    auxiliary outputs (GoogLeNet's classifiers, PSPNet's `aux`) adds theirs, weighted by
    train.aux_loss_weight. The metric (accuracy, or mIoU over labelled pixels) is the main output's."""
    t = cfg.train
    if cfg.task == "detection":
        d = cfg.detection
        cells = models.registry.cells(cfg.model, num_classes)
        if models.registry.rpn_anchors(cfg.model, num_classes) is not None:  # Faster R-CNN: RPN + head
            losses = {RPN_BOXES: BoxLoss(), RPN_OBJECTNESS: RpnObjectnessLoss(), HEAD: FastRCNNLoss(d.match_iou)}
        elif cells is None:  # SSD: localisation (smooth L1 on positives) + confidence (focal)
            losses = {BOXES: BoxLoss(), SCORES: FocalLoss(d.focal_alpha, d.focal_gamma)}
        else:  # YOLO: coordinates, objectness with lambda_noobj, classification (its training_view)
            anchors = models.registry.anchors(cfg.model, num_classes)
            losses = {BOXES: YoloBoxLoss(anchors, cells, d.lambda_coord), OBJECTNESS: ObjectnessLoss(d.lambda_noobj),
                      CLASS_PROBABILITIES: YoloClassLoss()}
        model.compile(optimizer=make_optimizer(t.optimizer, learning_rate, t.weight_decay),
                      loss=[losses[name] for name in output_names(model)])
        return
    if cfg.task == "segmentation":  # class_weights' length is checked with the config
        loss = SegmentationLoss(num_classes, list(t.class_weights) if t.class_weights else None, t.dice_weight)
        metric = keras.metrics.MeanIoU(num_classes, name="miou", ignore_class=IGNORE, sparse_y_pred=False)
    else:
        loss = keras.losses.CategoricalCrossentropy(
            label_smoothing=t.label_smoothing if label_smoothing is None else label_smoothing)
        metric = keras.metrics.CategoricalAccuracy(name="accuracy")
    optimizer = make_optimizer(t.optimizer, learning_rate, t.weight_decay)
    if len(model.outputs) == 1:
        model.compile(optimizer=optimizer, loss=loss, metrics=[metric])
        return
    names = model.output_names
    model.compile(optimizer=optimizer, loss={n: loss for n in names},
                  loss_weights={n: 1.0 if n == MAIN_OUTPUT else t.aux_loss_weight for n in names},
                  metrics={MAIN_OUTPUT: [metric]})


def training_view(model):
    """The model as training sees it. A YOLO detector (models/detection/yolo.py) exports
    `box_encodings` and `class_scores`, the product of the objectness and the class probabilities
    its loss trains: those two layers (tfmot's `quant_` copies in a QAT model) become the outputs
    in place of the product. A Faster R-CNN (models/detection/faster_rcnn.py) trains its RPN's
    outputs and its head's: proposals, encodings and softmax in one tensor, for the loss that
    matches proposals to ground truths. The view shares every weight with `model`."""
    layers = {layer.name.removeprefix("quant_"): layer for layer in model.layers}
    if SCORES not in output_names(model):
        return model
    if RPN_OBJECTNESS in layers:  # Faster R-CNN: the RPN's outputs, and the head's with its proposals
        head = keras.layers.Concatenate(name=HEAD)([layers[n].output for n in HEAD_PARTS])
        return keras.Model(model.input, [layers[RPN_BOXES].output, layers[RPN_OBJECTNESS].output, head],
                           name=model.name)
    if OBJECTNESS not in layers:
        return model
    outputs = [model.outputs[output_names(model).index(BOXES)], layers[OBJECTNESS].output,
               layers[CLASS_PROBABILITIES].output]
    return keras.Model(model.input, outputs, name=model.name)


def training_batches(cfg: Config, splits: Splits | SceneSplits, spec: PreprocessSpec, model
                     ) -> tuple[tf.data.Dataset, tf.data.Dataset | None]:
    """(training batches, augmented and shuffled; validation batches or None) for the task, with
    targets as `model` takes them: a detector's per-anchor targets in the order of its outputs, and
    for auxiliary outputs a copy of the main target each."""
    if isinstance(splits, SceneSplits):
        train_ds = make_annotated_dataset(splits.dataset, splits.train, spec, cfg.train.batch_size, splits.task,
                                          training=True, augment=cfg.augment, seed=cfg.train.seed)
        val_ds = make_annotated_dataset(splits.dataset, splits.test, spec, cfg.train.batch_size, splits.task)
        if splits.task == "detection":  # ground-truth boxes -> per-anchor targets of this model
            anchors = models.registry.anchors(cfg.model, len(splits.class_names))
            cells = models.registry.cells(cfg.model, len(splits.class_names))
            rpn = models.registry.rpn_anchors(cfg.model, len(splits.class_names))
            names = output_names(model)

            def to_targets(x, y):
                if rpn is not None:
                    targets = two_stage_targets(x, y["boxes"], y["classes"], rpn)
                else:
                    targets = training_targets(x, y["boxes"], y["classes"], anchors, cfg.detection.match_iou, cells)
                return x, tuple(targets[n] for n in names)

            return (train_ds.map(to_targets, num_parallel_calls=tf.data.AUTOTUNE),
                    val_ds.map(to_targets, num_parallel_calls=tf.data.AUTOTUNE))
        return _per_output(model, train_ds), _per_output(model, val_ds)
    num_classes = len(splits.class_names)
    train_ds = make_dataset(splits.train, spec, cfg.train.batch_size, num_classes, training=True,
                            augmenter=build_augmenter(cfg.augment, cfg.train.seed), seed=cfg.train.seed)
    val_ds = make_dataset(splits.val, spec, cfg.train.batch_size, num_classes) if splits.val else None
    return _per_output(model, train_ds), _per_output(model, val_ds)


def _per_output(model, ds: tf.data.Dataset | None) -> tf.data.Dataset | None:
    """Auxiliary outputs (GoogLeNet's classifiers, PSPNet's `aux`) learn the main target."""
    if ds is None or len(model.outputs) == 1:
        return ds
    names = model.output_names
    return ds.map(lambda x, y: (x, {n: y for n in names}))


def has_backup(checkpoints: Path) -> bool:
    return any(checkpoints.rglob("checkpoint"))


def fit(model, cfg: Config, splits: Splits | SceneSplits, spec: PreprocessSpec, *, epochs: int, learning_rate,
        out_dir: Path, label_smoothing: float | None = None, initial_epoch: int = 0,
        checkpoints: Path | None = None) -> keras.callbacks.History:
    """The one training loop, shared by float training, its frozen phase, QAT and the search.

    Raises TfpipeError when the divergence guard stops it; the checkpoints of a diverged run are
    deleted, so the rerun (with a lower rate) starts afresh instead of resuming the blow-up."""
    model = training_view(model)
    compile_for_training(model, cfg, len(splits.class_names), learning_rate, label_smoothing)
    train_ds, val_ds = training_batches(cfg, splits, spec, model)
    checkpoints = checkpoints or out_dir / "checkpoints"
    history_csv = out_dir / "history.csv"
    if initial_epoch == 0 and not has_backup(checkpoints) and history_csv.exists():
        history_csv.unlink()  # a fresh run: the old history belongs to a finished model
    guard = DivergenceGuard(cfg.train.divergence_factor) if cfg.train.divergence_factor else None
    callbacks = [ResumeFromBackup(str(checkpoints))]  # first, so an epoch is saved before it is logged
    if guard:
        callbacks.append(guard)
    if cfg.train.update_ratio_every:  # before the CSV logger, which writes the ratio it adds
        callbacks.append(UpdateRatio(out_dir / "tensorboard" / "update_ratio", cfg.train.update_ratio_every))
    callbacks += [keras.callbacks.CSVLogger(str(history_csv), append=True),
                  keras.callbacks.TensorBoard(str(out_dir / "tensorboard"), profile_batch=0)]
    history = model.fit(train_ds, epochs=epochs, initial_epoch=initial_epoch, validation_data=val_ds,
                        callbacks=callbacks, verbose=1 if sys.stdout.isatty() else 2)
    if guard and guard.tripped:
        shutil.rmtree(checkpoints, ignore_errors=True)
        raise TfpipeError(f"training diverged at {guard.tripped}; stopped, checkpoints removed",
                          "lower train.learning_rate or lengthen train.warmup_epochs "
                          "(train.divergence_factor: null turns the guard off)")
    return history


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


def steps_per_epoch(cfg: Config, splits: Splits | SceneSplits) -> int:
    """Full batches per epoch (training drops the last partial one, so every step has the batch's
    statistics); a batch larger than the split would leave none."""
    if splits.num_train < cfg.train.batch_size:
        raise TfpipeError(f"train.batch_size: {cfg.train.batch_size} is larger than the training split "
                          f"({splits.num_train:,} images)", f"use at most {splits.num_train}, or more training data")
    return splits.num_train // cfg.train.batch_size


def distribution(name: str):
    """train.strategy -> a tf.distribute strategy. mirrored: one replica per local device (GPUs,
    or logical CPUs); multiworker: one per process named in TF_CONFIG (docs/training.md)."""
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise TfpipeError("train.strategy: multiworker needs the TF_CONFIG environment variable",
                              "set it on every worker as docs/training.md shows, or use default or mirrored")
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def _is_chief(strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0
                                             and "chief" not in resolver.cluster_spec().as_dict())


def train(cfg: Config, run: RunDir, splits: Splits | SceneSplits | None = None) -> Path:
    """Train the float model and save it to train/model.keras; returns that path.

    With train.pretrained and train.freeze_epochs, the transferred layers are frozen for the first
    epochs (saved to train/frozen_weights.h5 when that phase ends, so a kill after it does not
    repeat it), then all layers train at train.finetune_lr_factor x the rate."""
    splits = splits or load_splits(cfg.data, cfg.task)
    spec = cfg.preprocess_spec()
    keras.utils.set_random_seed(cfg.train.seed)
    strategy = distribution(cfg.train.strategy)
    steps = steps_per_epoch(cfg, splits)
    with strategy.scope():
        model = models.build(cfg.model, cfg.task, len(splits.class_names))
        transferred = load_pretrained(model, cfg.train.pretrained) if cfg.train.pretrained else []
        replicas = f" on {strategy.num_replicas_in_sync} replicas" if strategy.num_replicas_in_sync > 1 else ""
        print(f"Training {cfg.model.name} ({model.count_params():,} parameters) on {splits.num_train:,} images, "
              f"{cfg.train.epochs} epochs of {steps} steps{replicas}", flush=True)
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
            io.write_with(frozen_weights, lambda tmp: model.save_weights(tmp))
        if frozen_epochs:
            rate = cfg.train.learning_rate * cfg.train.finetune_lr_factor
            print(f"Epochs {frozen_epochs + 1}-{cfg.train.epochs}: all layers train, at learning rate {rate:g}",
                  flush=True)
            schedule = make_schedule(cfg.train, steps, first_epoch=frozen_epochs, peak=rate, warmup=False)
        else:
            schedule = make_schedule(cfg.train, steps)
        history = fit(model, cfg, splits, spec, epochs=cfg.train.epochs, learning_rate=schedule, out_dir=run.train,
                      initial_epoch=frozen_epochs)
    if len(model.outputs) > 1 and cfg.task != "detection":  # auxiliary classifiers only serve training
        model = keras.Model(model.input, model.get_layer(MAIN_OUTPUT).output, name=model.name)
    if _is_chief(strategy):
        io.write_with(run.float_model, lambda tmp: model.save(tmp))
    print(f"Saved the float model to {run.float_model}{describe_validation(history)}", flush=True)
    return run.float_model


def require_float_model(run: RunDir) -> Path:
    if not run.float_model.is_file():
        raise TfpipeError(f"no trained model at {run.float_model}",
                          "run `python -m tfpipe.train` with this config first")
    return run.float_model


def load_float_model(run: RunDir):
    return keras.models.load_model(require_float_model(run), compile=False)


def ensure_trained(cfg: Config, run: RunDir, splits: Splits | SceneSplits | None = None) -> Path:
    """Reuse train/model.keras when present, otherwise train it (and say so)."""
    if run.float_model.is_file():
        print(f"Using the trained float model {run.float_model}", flush=True)
        return run.float_model
    print(f"No trained model in {run.root}: training it first", flush=True)
    return train(cfg, run, splits)
