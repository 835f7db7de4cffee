"""The Task: what one kind of task knows end to end, so the stages (trainer, QAT, converter,
selective quantization, evaluator, report) ask it instead of branching on the task's name. In the
spirit of TF Model Garden's `Task` (build_inputs, build_losses, build_metrics, validation_step).

A task module in tfpipe/tasks/ subclasses `Task` and adds one line to tasks/__init__.py's
`TASKS`. docs/architecture.md says which methods a new task overrides.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfpipe.backend import keras
from tfpipe.config import Config
from tfpipe.data.pipeline import Splits
from tfpipe.data.sources import load_splits
from tfpipe.errors import TfpipeError
from tfpipe.models.registry import MAIN_OUTPUT
from tfpipe.runtime.bundle import Contract
from tfpipe.runtime.contract import PreprocessSpec


@dataclass(frozen=True)
class Gate:
    metric: str  # the key in each model's metrics and delta_points that the parity gate reads
    label: str  # how reports and messages name it


@dataclass(frozen=True)
class ReportView:
    """How the reports (report/) show the task's parity rows; the gate metric's change has a column."""

    metrics: tuple[tuple[str, str], ...]  # the table's metric columns: (title, key in a row's metrics)
    agreement: str  # the row key of the `agree` column
    per_class: tuple[str, str, str]  # (key of the per-class values in metrics, what a class counts, their title)
    note: str  # what the columns mean


class Task:
    name: str  # config.task
    targets: str  # what it learns from: "labels", "boxes" or "masks" (data.pipeline.TARGETS)
    gate: Gate
    report: ReportView
    selective: bool = True  # selective int8 (--max-drop) can score it on the held-out split

    # train.snapshots >= 2 averages the snapshots' outputs (train/ensemble.py): class probabilities
    # average; boxes would need fusing, which nothing here does
    snapshot_ensembles: bool = False

    def check(self, cfg: Config) -> None:
        """Refuse settings the task cannot honour (a TfpipeError naming the setting); config.validate
        has checked each setting's own range."""
        if cfg.train.snapshots > 1 and not self.snapshot_ensembles:
            raise TfpipeError(f"train.snapshots: {cfg.train.snapshots}: snapshot ensembles are scored for "
                              f"classification only, not {self.name}", "set train.snapshots: 1")

    # data ---------------------------------------------------------------------------------------
    def class_names(self, dataset_names: tuple[str, ...]) -> tuple[str, ...]:
        """The model's classes, from the dataset's."""
        return tuple(dataset_names)

    def load_splits(self, cfg: Config) -> Splits:
        """The configured dataset as this task reads it (bad data fails here, before any stage
        writes)."""
        splits = load_splits(cfg.data, self.targets)
        return splits.for_task(self.targets, self.class_names(splits.class_names))

    # training -----------------------------------------------------------------------------------
    def compile(self, model, cfg: Config, num_classes: int, optimizer, label_smoothing: float | None = None) -> None:
        """Losses and metrics on the model `training_view` gave."""
        raise NotImplementedError

    def training_view(self, model, cfg: Config):
        """The model as training fits it, sharing every weight with `model`."""
        return model

    def training_batches(self, cfg: Config, splits: Splits, spec: PreprocessSpec, model):
        """(training batches, augmented and shuffled; validation batches or None), with targets as
        `model` (the training view) takes them: for auxiliary outputs, a copy of the main target each."""
        train_ds = splits.batches(splits.train, spec, cfg.train.batch_size, training=True, augment=cfg.augment,
                                  seed=cfg.train.seed)
        val_ds = splits.batches(splits.val, spec, cfg.train.batch_size) if splits.val else None
        return _per_output(model, train_ds), _per_output(model, val_ds)

    def trained_model(self, model):
        """What is saved after training: auxiliary outputs (GoogLeNet's classifiers, PSPNet's `aux`)
        only serve training, so the saved model has the main output alone."""
        if len(model.outputs) == 1:
            return model
        return keras.Model(model.input, model.get_layer(MAIN_OUTPUT).output, name=model.name)

    # export -------------------------------------------------------------------------------------
    def output_contract(self, cfg: Config) -> dict[str, str]:
        """What each output of the task's .tflite holds, for model.json (the device reads outputs
        by name)."""
        raise NotImplementedError

    def missing_outputs(self, cfg: Config, names: set[str]) -> list[str]:
        """What a converted model with outputs `names` lacks for the evaluator to decode it (each
        entry names an output, or the alternatives that would do)."""
        return sorted(set(self.output_contract(cfg)) - names)

    def bundle_fields(self, cfg: Config, num_classes: int, splits: Splits | None = None) -> dict:
        """Task-specific sections of model.json (a detector's box coding and anchors); `splits`: the
        run's dataset (None for an imported model calibrated on a folder)."""
        return {}

    def postprocess(self, cfg: Config, num_classes: int):
        """What the export signature appends after the model's outputs (the detection
        post-processing op), or None."""
        return None

    # evaluation ---------------------------------------------------------------------------------
    def scorer(self, contract: Contract, targets, gallery: int) -> Scorer:
        """The scorer of every model's outputs on the evaluation split, decoding them as the bundle's
        model.json (`contract`) says."""
        raise NotImplementedError

    def held_out_score(self, outputs: dict[str, np.ndarray], targets) -> float:
        """The gate metric of a model's outputs on the held-out split (selective quantization)."""
        raise TfpipeError(f"--max-drop: selective int8 does not score {self.name} models",
                          "convert without --max-drop (int8 by QAT keeps the accuracy)")


    # reports ------------------------------------------------------------------------------------
    def plots(self, report: dict, plot_dir: Path) -> dict[str, Path]:
        """The task's plots of a parity report (title -> PNG); latency and galleries are drawn for all."""
        return {}

    def gallery(self, report: dict, row: dict, images: dict[int, np.ndarray], drawn: dict, path: Path) -> Path:
        """A converted model's worst disagreements drawn on their images (`drawn`: the scorer's
        gallery items by model name, "truth" and "float" included)."""
        raise NotImplementedError


class Scorer:
    """Scores every model's outputs on the evaluation split against its targets, and against the
    float model's outputs (`float_outputs`) for a converted model."""

    _reference: dict | None = None
    private: tuple[str, ...] = ("detections",)  # keys of `score` that feed the gallery, not the report

    def reference(self, float_outputs: dict[str, np.ndarray]) -> dict:
        """The float model's own score, computed once: every converted model is compared with it."""
        if self._reference is None:
            self._reference = self.score(float_outputs)
        return self._reference

    def score(self, outputs: dict[str, np.ndarray], float_outputs: dict[str, np.ndarray] | None = None) -> dict:
        """{"metrics": ..., and against the float model: "delta_points", "delta_per_class_points",
        agreement, "outputs" (output agreement), "worst_disagreements" [{"index": ...}]}."""
        raise NotImplementedError

    def gallery_items(self, outputs: dict[str, np.ndarray], scored: dict, indices: list[int]
                      ) -> dict[int, object] | None:
        """What a gallery draws on these images for one model, from its outputs and its `score`
        (None: the gallery shows the images alone)."""
        return None

    def reference_items(self, float_outputs: dict[str, np.ndarray], indices: list[int]) -> dict[str, dict] | None:
        """The gallery's "truth" and "float" items for these images (None: nothing to draw)."""
        return None


def _per_output(model, ds):
    """Auxiliary outputs (GoogLeNet's classifiers, PSPNet's `aux`) learn the main target."""
    if ds is None or len(model.outputs) == 1:
        return ds
    names = model.output_names
    return ds.map(lambda x, y: (x, {n: y for n in names}))


def compile_single_output(model, optimizer, loss, metric, aux_loss_weight: float) -> None:
    """`loss` and `metric` on `probabilities`; auxiliary outputs add the same loss, weighted."""
    if len(model.outputs) == 1:
        model.compile(optimizer=optimizer, loss=loss, metrics=[metric])
        return
    names = model.output_names
    model.compile(optimizer=optimizer, loss={n: loss for n in names},
                  loss_weights={n: 1.0 if n == MAIN_OUTPUT else aux_loss_weight for n in names},
                  metrics={MAIN_OUTPUT: [metric]})
