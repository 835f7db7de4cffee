"""Experiment configuration: YAML (safe) -> frozen dataclasses, validated across fields.

A config file may name one `base:` file (relative to itself) whose values it overrides; the base
may not have a base of its own. `--set a.b=c` overrides any field after both are merged; the value
is parsed as YAML, so `--set train.epochs=3` is an int and `--set convert.quantize=[int8]` a list.
An unknown key anywhere is an error that suggests the closest known key.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tfpipe.errors import TfpipeError
from tfpipe.runtime.contract import ENGINES, IO_DTYPES, QUANT_MODES, PreprocessSpec

TASKS = ("classification", "detection", "segmentation", "instance_segmentation")
DATASETS = ("fashion_mnist",)
RESIZE_POLICIES = ("letterbox", "stretch")
# Settings only one task reads -> (that task, the hint when another task's config sets them)
ONE_TASK = {
    "train.class_weights": ("segmentation", "class weights are per pixel class; remove them"),
    "train.dice_weight": ("segmentation", "set it to 0 for classification"),
    "convert.class_map": ("segmentation", "the argmax class map is a segmentation output; set it to false"),
}
CHANNEL_ORDERS = ("rgb", "bgr")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("cosine", "step")
STRATEGIES = ("default", "mirrored", "multiworker")
BACKENDS = ("auto", "litert", "tflite_runtime", "tf")
BUILTIN_DATASETS = (None, "fashion_scenes")
# Settings that no longer exist. A run's config.yaml holds every setting, so an old run's says
# `null` for them: that still loads; a value is an error that says why the setting went.
REMOVED = {
    "augment.multi_scale": "every model is built for one input size, the one its anchors are laid out "
                           "for: multi-scale training never ran; remove augment.multi_scale",
}


@dataclass(frozen=True)
class SceneSpec:
    """The options of data.builtin: fashion_scenes (its generator: tfpipe/data/fashion_scenes.py)."""

    size: int = 128  # square images, pixels
    train: int = 4000
    val: int = 500
    min_objects: int = 1
    max_objects: int = 5
    min_scale: float = 1.0  # garments are 28 px scaled by this ... (so 28-112 px by default)
    max_scale: float = 4.0  # ... to this
    max_occlusion: float = 0.4  # share of a garment's silhouette later garments may cover
    seed: int = 0

    def check(self, prefix: str = "") -> SceneSpec:
        """Raise a TfpipeError naming the first field (as `prefix`field) that cannot work."""
        problems = [
            ("size", self.size >= 32, "use at least 32 (pixels)"),
            ("train", self.train > 0, "use at least 1 scene"),
            ("val", self.val > 0, "use at least 1 scene"),
            ("min_objects", 1 <= self.min_objects <= self.max_objects, "use 1 <= min_objects <= max_objects"),
            ("min_scale", 0 < self.min_scale <= self.max_scale, "use 0 < min_scale <= max_scale"),
            ("max_scale", 28 * self.max_scale <= self.size,
             f"garments 28 px x {self.max_scale:g} would not fit the {self.size} px image: use at most "
             f"{self.size / 28:.2f}"),
            ("max_occlusion", 0 <= self.max_occlusion < 1, "use a share in [0, 1)"),
        ]
        for name, ok, hint in problems:
            if not ok:
                raise TfpipeError(f"{prefix}{name}: {getattr(self, name)!r} is not accepted", hint)
        return self


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "fashion_mnist"
    path: str | None = None  # folder with the dataset's files; searched before the standard places
    download: bool = True  # last resort when no local copy is found
    val_samples: int = 5000  # classification: held out of the training split to watch over-fitting
    train_limit: int | None = None  # use only the first N training images (smoke tests)
    test_limit: int | None = None  # evaluate on the first N test (scenes: val) images; None is the full split
    builtin: str | None = None  # fashion_scenes: detection/segmentation scenes built on first use
    scenes: SceneSpec = field(default_factory=SceneSpec)  # the options of data.builtin: fashion_scenes
    cache: str | None = None  # where built datasets are kept (default: $TFPIPE_CACHE, else ~/.cache/tfpipe)
    on_bad_sample: str = "error"  # error: stop at the first bad sample; skip: leave it out, list why in the run
    # A dataset of your own (tfpipe.data.files): its format and where its splits are. Each path is
    # a dataset as the format keeps it (a COCO folder or JSON, a VOC folder, a YOLO data.yaml or its
    # folder, a masks folder, a folder of class folders); a dataset with several splits gives the
    # one of the same name (val: val or valid).
    format: str | None = None  # coco | voc | yolo | masks | folders
    train: str | None = None
    val: str | None = None  # none: the train dataset's val split, else val_fraction of train held out
    test: str | None = None  # none: the train dataset's test split, else the val split is also the test split
    classes: tuple[str, ...] | None = None  # the model's classes and their order (default: the dataset's)
    val_fraction: float = 0.1  # held out of train (seeded by val_seed) when there is no val split
    val_seed: int = 0


@dataclass(frozen=True)
class ModelConfig:
    name: str = "mobilenet_v2"
    input_size: tuple[int, int] = (224, 224)  # height, width
    channels: int = 3
    args: dict = field(default_factory=dict)  # the family's own options, checked by the registry


@dataclass(frozen=True)
class PreprocessConfig:
    resize: str = "letterbox"
    scale: float = 1 / 127.5  # model input = pixel * scale + offset
    offset: float = -1.0
    channel_order: str = "rgb"
    pad_value: float = 0.0  # pixel value of letterbox borders


@dataclass(frozen=True)
class AugmentConfig:
    horizontal_flip: bool = True
    translate: float = 0.0  # largest shift, as a fraction of the image side (classification)
    jitter_scale: tuple[float, float] | None = None  # detection/segmentation: random zoom, then crop/pad
    color_jitter: float = 0.0  # brightness, contrast and saturation factor range, 0..1 (hue a quarter of it)
    mosaic: bool = False  # detection: four images in one
    mixup: bool = False  # two images blended: labels mixed (classification), both sets of boxes kept (detection)
    cutmix: bool = False  # classification: a patch of another image pasted in, labels mixed by area


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128  # global: split across the replicas of a distribution strategy
    optimizer: str = "adam"
    learning_rate: float = 3e-3  # peak, reached after the linear warm-up
    warmup_epochs: float = 1.0
    schedule: str = "cosine"  # cosine: decay to zero at the end; step: x decay_factor at each of decay_epochs
    decay_epochs: tuple[int, ...] = ()  # step: the epochs (counted from 0) where the rate drops
    decay_factor: float = 0.1
    weight_decay: float = 0.0  # decoupled, used by adamw and sgd
    label_smoothing: float = 0.1  # classification
    class_weights: tuple[float, ...] | None = None  # segmentation: one loss weight per class, background first
    dice_weight: float = 0.0  # segmentation: soft Dice added to the cross-entropy with this weight
    aux_loss_weight: float = 0.3  # models with auxiliary classifiers (GoogLeNet): weight of each
    pretrained: str | None = None  # runs/NAME, a .keras/.h5 model or weights file (layers by name, shape), imagenet
    freeze_epochs: int = 0  # with pretrained: epochs with the transferred layers frozen
    finetune_lr_factor: float = 0.1  # after unfreezing: the learning rate is scaled by this
    divergence_factor: float | None = 3.0  # stop when the loss exceeds this x its first value, or is NaN
    clip_norm: float | None = None  # the gradient's global norm (all weights together) clipped to this
    # K >= 2: snapshot ensemble (Huang et al. 2017): K cosine cycles over the epochs, the model saved at
    # the end of each (train/snapshots/), and their averaged predictions scored against the last alone
    snapshots: int = 1
    update_ratio_every: int = 50  # steps between logs of |update| / |weight| per layer (0: never)
    # steps between per-layer activation and gradient statistics on a fixed batch (0: never)
    layer_stats_every: int = 200
    strategy: str = "default"  # default | mirrored (all local devices) | multiworker (TF_CONFIG)
    seed: int = 0


@dataclass(frozen=True)
class QATConfig:
    epochs: int = 1
    learning_rate: float = 1e-4  # fine-tuning from the float weights: far below train.learning_rate


@dataclass(frozen=True)
class ConvertConfig:
    quantize: tuple[str, ...] = ("none", "int8")  # the modes `tfpipe run` exports
    calibration_samples: int = 300  # drawn from the training split for PTQ and int16x8
    # input/output type of int8 models; auto: the fastest the target accepts (contract.TARGET_IO)
    io_dtype: str = "auto"
    # who quantizes: converter (TFLiteConverter, from the Keras or QAT model) or litert (the LiteRT
    # Quantizer, from the fp32 .tflite by recipe); a mode only one of them makes uses that one
    engine: str = "converter"
    class_map: bool = False  # segmentation: add an in-graph argmax output, `class_map` (uint8 [1, H, W])
    # detection: tflite_op appends TFLite_Detection_PostProcess (finished boxes out); raw exports the
    # box encodings and class scores for decoding and NMS on the host (tfpipe.runtime.detection)
    postprocess: str = "tflite_op"


@dataclass(frozen=True)
class DetectionConfig:
    """Detectors: how anchors learn, and the decoding the evaluator and the device share (model.json)."""

    match_iou: float = 0.5  # SSD: an anchor at this IoU with a ground truth is its; YOLO: not background
    focal_alpha: float = 0.25  # focal loss (SSD): weight of the positive (object) term
    focal_gamma: float = 2.0  # focal loss (SSD): how much well-classified anchors are discounted
    lambda_coord: float = 5.0  # YOLO: weight of the coordinate term
    lambda_noobj: float = 0.5  # YOLO: weight of the no-object confidence term
    score_threshold: float = 0.01  # detections below are dropped (low, so mAP sees the whole curve)
    nms_iou: float = 0.5  # class-wise NMS: a box overlapping a better one by more is suppressed
    max_detections: int = 100  # per image, after NMS


@dataclass(frozen=True)
class EvaluateConfig:
    max_drop: float = 0.5  # largest allowed top-1 drop of any converted model, in points
    threads: int = 1
    latency_runs: int = 200
    latency_warmup: int = 20
    backend: str = "auto"
    runtime_python: str | None = None  # interpreter of the runtime worker, e.g. a venv with tflite-runtime
    reference_kernels: bool = False  # TFLite's reference kernels instead of XNNPACK: slow, reproducible
    batch: int = 256  # images sent to the runtime worker per message
    workers: int = 1  # runtime worker processes sharing the dataset (one core each)
    delegate: str | None = None  # edgetpu, gpu or the path of a delegate library
    gallery: int = 8  # images shown in the worst-disagreement gallery of each model


@dataclass(frozen=True)
class Config:
    name: str = "quickstart"
    task: str = "classification"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    qat: QATConfig = field(default_factory=QATConfig)
    convert: ConvertConfig = field(default_factory=ConvertConfig)
    detection: DetectionConfig = field(default_factory=DetectionConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)

    def preprocess_spec(self) -> PreprocessSpec:
        """The run's preprocessing: resolved here once, then passed on to every stage and written
        to model.json."""
        p = self.preprocess
        return PreprocessSpec(height=self.model.input_size[0], width=self.model.input_size[1],
                              channels=self.model.channels, resize=p.resize, scale=p.scale, offset=p.offset,
                              channel_order=p.channel_order, pad_value=p.pad_value)

    def validate(self) -> Config:
        """Check values and their combinations; raise TfpipeError naming the field."""

        def one_of(key: str, value: Any, allowed: tuple) -> None:
            if value not in allowed:
                names = ("null" if a is None else str(a) for a in allowed)
                raise TfpipeError(f"{key}: {value!r} is not accepted", f"use one of: {', '.join(names)}")

        def positive(key: str, value: float, allow_zero: bool = False) -> None:
            if value < 0 or (value == 0 and not allow_zero):
                raise TfpipeError(f"{key}: {value} is not accepted", "use a number > 0" if not allow_zero
                                  else "use a number >= 0")

        if not self.name or any(c in self.name for c in "/\\") or self.name.startswith("."):
            raise TfpipeError(f"name: {self.name!r} is not accepted", "use a plain folder name such as quickstart")
        one_of("task", self.task, TASKS)
        one_of("data.dataset", self.data.dataset, DATASETS)
        positive("data.val_samples", self.data.val_samples, allow_zero=True)
        one_of("data.builtin", self.data.builtin, BUILTIN_DATASETS)
        one_of("data.on_bad_sample", self.data.on_bad_sample, ("error", "skip"))
        if self.data.builtin:
            self.data.scenes.check("data.scenes.")
        for key in ("train_limit", "test_limit"):
            value = getattr(self.data, key)
            if value is not None:
                positive(f"data.{key}", value)
        self._check_own_dataset()
        if (self.data.builtin is None and self.data.format is None and self.data.train_limit is not None
                and self.data.val_samples >= self.data.train_limit):
            raise TfpipeError(f"data.val_samples: {self.data.val_samples} leaves no training images out of "
                              f"data.train_limit={self.data.train_limit}", "make val_samples smaller")
        h, w = self.model.input_size
        if (h < 32 or w < 32) and self.model.name != "external":  # an imported model has its own size
            raise TfpipeError(f"model.input_size: {[h, w]} is too small", "every zoo model needs at least 32x32")
        one_of("model.channels", self.model.channels, (1, 3))
        one_of("preprocess.resize", self.preprocess.resize, RESIZE_POLICIES)
        one_of("preprocess.channel_order", self.preprocess.channel_order, CHANNEL_ORDERS)
        if self.preprocess.scale == 0:
            raise TfpipeError("preprocess.scale: 0 would erase the image", "use e.g. 0.00784313725 (1/127.5)")
        d = self.detection
        for key in ("match_iou", "score_threshold", "nms_iou"):
            if not 0 < getattr(d, key) < 1:
                raise TfpipeError(f"detection.{key}: {getattr(d, key)} is not accepted", "use a number in (0, 1)")
        if not 0 < d.focal_alpha < 1:
            raise TfpipeError(f"detection.focal_alpha: {d.focal_alpha} is not accepted", "use a number in (0, 1)")
        positive("detection.focal_gamma", d.focal_gamma, allow_zero=True)
        positive("detection.lambda_coord", d.lambda_coord)
        positive("detection.lambda_noobj", d.lambda_noobj)
        positive("detection.max_detections", d.max_detections)
        jitter = self.augment.jitter_scale
        if jitter is not None and not 0 < jitter[0] <= jitter[1]:
            raise TfpipeError(f"augment.jitter_scale: {list(self.augment.jitter_scale)} is not accepted",
                              "use [low, high] with 0 < low <= high, e.g. [0.75, 1.25]")
        if not 0 <= self.augment.color_jitter <= 1:
            raise TfpipeError(f"augment.color_jitter: {self.augment.color_jitter} is not accepted", "use 0..1")
        if not 0 <= self.augment.translate < 0.5:
            raise TfpipeError(f"augment.translate: {self.augment.translate} is not accepted",
                              "use a fraction in [0, 0.5)")
        positive("train.epochs", self.train.epochs)
        positive("train.batch_size", self.train.batch_size)
        one_of("train.optimizer", self.train.optimizer, OPTIMIZERS)
        positive("train.learning_rate", self.train.learning_rate)
        positive("train.warmup_epochs", self.train.warmup_epochs, allow_zero=True)
        if self.train.warmup_epochs >= self.train.epochs:
            raise TfpipeError(f"train.warmup_epochs: {self.train.warmup_epochs} leaves no epoch for the decay "
                              f"(train.epochs={self.train.epochs})", "make it smaller than train.epochs")
        one_of("train.schedule", self.train.schedule, SCHEDULES)
        if self.train.schedule == "step":
            decays = self.train.decay_epochs
            increasing = list(decays) == sorted(set(decays))
            if not decays or not increasing or decays[0] < 1 or decays[-1] >= self.train.epochs:
                raise TfpipeError(f"train.decay_epochs: {list(decays)} is not accepted with train.schedule: step",
                                  f"list increasing epochs between 1 and {self.train.epochs - 1}, e.g. "
                                  f"[{max(1, self.train.epochs // 2)}]")
        if not 0 < self.train.decay_factor < 1:
            raise TfpipeError(f"train.decay_factor: {self.train.decay_factor} is not accepted", "use a value in (0, 1)")
        positive("train.weight_decay", self.train.weight_decay, allow_zero=True)
        positive("train.aux_loss_weight", self.train.aux_loss_weight, allow_zero=True)
        positive("train.freeze_epochs", self.train.freeze_epochs, allow_zero=True)
        pretrained = self.train.pretrained
        if pretrained is not None and (not pretrained.strip() or pretrained.endswith((".pt", ".pth", ".onnx",
                                                                                      ".tflite", ".ckpt"))):
            raise TfpipeError(f"train.pretrained: {pretrained!r} is not accepted",
                              "name a run folder (runs/NAME), a .keras or .h5 model or weights file, or imagenet")
        if self.train.freeze_epochs and not self.train.pretrained:
            raise TfpipeError(f"train.freeze_epochs: {self.train.freeze_epochs} without train.pretrained",
                              "name the weights to transfer in train.pretrained, or set freeze_epochs: 0")
        positive("train.snapshots", self.train.snapshots)
        if self.train.snapshots > 1:
            if self.train.epochs % self.train.snapshots:
                raise TfpipeError(f"train.snapshots: {self.train.snapshots} does not divide train.epochs "
                                  f"({self.train.epochs}) into equal cycles", "choose a divisor of train.epochs")
            if self.train.schedule != "cosine" or self.train.freeze_epochs:
                raise TfpipeError(f"train.snapshots: {self.train.snapshots} needs train.schedule: cosine and no "
                                  "frozen phase (each cycle is a cosine from the peak rate)",
                                  "set train.snapshots: 1, or schedule: cosine and freeze_epochs: 0")
        if self.train.freeze_epochs >= self.train.epochs:
            raise TfpipeError(f"train.freeze_epochs: {self.train.freeze_epochs} leaves no epoch to fine-tune "
                              f"(train.epochs={self.train.epochs})", "make it smaller than train.epochs")
        if not 0 < self.train.finetune_lr_factor <= 1:
            raise TfpipeError(f"train.finetune_lr_factor: {self.train.finetune_lr_factor} is not accepted",
                              "use a value in (0, 1]")
        if self.train.divergence_factor is not None and self.train.divergence_factor <= 1:
            raise TfpipeError(f"train.divergence_factor: {self.train.divergence_factor} is not accepted",
                              "use a number > 1 (3 stops at three times the first loss), or null to turn it off")
        positive("train.update_ratio_every", self.train.update_ratio_every, allow_zero=True)
        positive("train.layer_stats_every", self.train.layer_stats_every, allow_zero=True)
        if self.train.clip_norm is not None:
            positive("train.clip_norm", self.train.clip_norm)
        one_of("train.strategy", self.train.strategy, STRATEGIES)
        if not 0 <= self.train.label_smoothing < 1:
            raise TfpipeError(f"train.label_smoothing: {self.train.label_smoothing} is not accepted",
                              "use a value in [0, 1)")
        weights = self.train.class_weights
        if weights is not None and (min(weights, default=-1) < 0 or not any(weights)):
            raise TfpipeError(f"train.class_weights: {list(weights)} is not accepted",
                              "segmentation only: one weight >= 0 per class (background first), not all 0")
        positive("train.dice_weight", self.train.dice_weight, allow_zero=True)
        positive("qat.epochs", self.qat.epochs)
        positive("qat.learning_rate", self.qat.learning_rate)
        if not self.convert.quantize:
            raise TfpipeError("convert.quantize: the list is empty", f"name modes from: {', '.join(QUANT_MODES)}")
        for mode in self.convert.quantize:
            one_of("convert.quantize", mode, tuple(QUANT_MODES))
        positive("convert.calibration_samples", self.convert.calibration_samples)
        one_of("convert.io_dtype", self.convert.io_dtype, ("auto", *IO_DTYPES))
        one_of("convert.engine", self.convert.engine, ENGINES)
        one_of("convert.postprocess", self.convert.postprocess, ("tflite_op", "raw"))
        for key, (task, hint) in ONE_TASK.items():  # read by one task only: elsewhere an error, not ignored
            section, name = key.split(".")
            value = getattr(getattr(self, section), name)
            if value and self.task != task:
                shown = yaml.safe_dump(value if not isinstance(value, tuple) else list(value),
                                       default_flow_style=True).strip().removesuffix("...").strip()
                raise TfpipeError(f"{key}: {shown} needs task: {task}", hint)
        positive("evaluate.max_drop", self.evaluate.max_drop, allow_zero=True)
        positive("evaluate.threads", self.evaluate.threads)
        positive("evaluate.latency_runs", self.evaluate.latency_runs)
        positive("evaluate.latency_warmup", self.evaluate.latency_warmup, allow_zero=True)
        positive("evaluate.batch", self.evaluate.batch)
        positive("evaluate.workers", self.evaluate.workers)
        positive("evaluate.gallery", self.evaluate.gallery, allow_zero=True)
        one_of("evaluate.backend", self.evaluate.backend, BACKENDS)
        return self

    def _check_own_dataset(self) -> None:
        """data.format's companions: the paths, the class list, the held-out fraction. Whether the
        format exists and gives what the task learns from is the data layer's to say."""
        d = self.data
        own = ("train", "val", "test", "classes")
        if d.format is None:
            for key in own:
                if getattr(d, key) is not None:
                    raise TfpipeError(f"data.{key} is set but data.format is not",
                                      "set data.format (coco, voc, yolo, masks or folders) for a dataset of your own")
            return
        if d.builtin:
            raise TfpipeError(f"data.format: {d.format} and data.builtin: {d.builtin} are both set",
                              "a run reads one dataset: remove one of them")
        if not d.train:
            raise TfpipeError(f"data.format: {d.format} needs data.train", "the path of your dataset (its train split)")
        for key in ("train", "val", "test"):
            value = getattr(d, key)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise TfpipeError(f"data.{key}: {value!r} is not a path", "a folder or file of your dataset")
        if d.classes is not None:
            names = [str(n) for n in d.classes]
            if not names or any(not n.strip() for n in names):
                raise TfpipeError(f"data.classes: {list(d.classes)} is not accepted", "a list of class names")
            if len(set(names)) != len(names):
                twice = sorted({n for n in names if names.count(n) > 1})
                raise TfpipeError(f"data.classes: {', '.join(twice)} listed twice", "name each class once")
        if not 0 < d.val_fraction < 1:
            raise TfpipeError(f"data.val_fraction: {d.val_fraction} is not accepted", "use a number in (0, 1)")


# --- loading ---------------------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last one
    silently, so a config could say two things and mean one)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise TfpipeError(f"config file not found: {path}",
                          "pass --config with a YAML file such as configs/quickstart.yaml")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else "?"
        raise TfpipeError(f"{path}:{line}: invalid YAML: {e.problem}", "fix the syntax at that line") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise TfpipeError(f"{path}: invalid YAML: {e}", "fix the file's syntax") from None
    if data is None:  # an empty file would silently mean `name: quickstart` with every default
        raise TfpipeError(f"{path}: the config is empty", "give at least `name:` and `task:`, or start from "
                                                           "configs/quickstart.yaml")
    if not isinstance(data, dict):
        raise TfpipeError(f"{path}: the top level is a {type(data).__name__}", "a config is a mapping of keys")
    return data


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "args":
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _unknown_key(key: str, known: list[str], prefix: str) -> TfpipeError:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
    hint = f"did you mean '{prefix}{close[0]}'?" if close else f"known keys here: {', '.join(known)}"
    return TfpipeError(f"unknown key '{prefix}{key}'", hint)


def _apply_override(raw: dict, assignment: str) -> None:
    key, sep, text = assignment.partition("=")
    if not sep or not key.strip():
        raise TfpipeError(f"--set {assignment!r}: expected KEY=VALUE", "for example --set train.epochs=3")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    parts = key.strip().split(".")
    node, cls = raw, Config
    for i, part in enumerate(parts):
        prefix = ".".join(parts[:i]) + "." if i else ""
        if cls is None:  # inside a free-form mapping (model.args)
            pass
        else:
            names = [f.name for f in dataclasses.fields(cls)]
            if part not in names:
                err = _unknown_key(part, names, prefix)
                raise TfpipeError(f"--set {key}: {err.message}", err.hint)
            hint = typing.get_type_hints(cls)[part]
            cls = hint if dataclasses.is_dataclass(hint) else None
        if i == len(parts) - 1:
            node[part] = value
        else:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child


def _coerce(value: Any, hint: Any, key: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(value, inner, key)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key + ".")
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise TfpipeError(f"{key}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TfpipeError(f"{key}: expected a whole number, got {value!r}")
    if hint is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None:
            raise TfpipeError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(number):  # .nan compares false with every bound: a gate at nan never fails
            raise TfpipeError(f"{key}: {value!r} is not a finite number", "use a plain number such as 0.5")
        return number
    if hint is str:
        if isinstance(value, str):
            return value
        raise TfpipeError(f"{key}: expected a string, got {value!r}")
    if hint is dict or origin is dict:
        if isinstance(value, dict):
            return dict(value)
        raise TfpipeError(f"{key}: expected a mapping, got {value!r}")
    if origin is tuple:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise TfpipeError(f"{key}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], key) for v in items)
        if len(items) != len(args):
            raise TfpipeError(f"{key}: expected {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, key) for v, a in zip(items, args, strict=True))
    raise TypeError(f"unsupported config type {hint} for {key}")


def _build(cls: type, data: Any, prefix: str = "") -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise TfpipeError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            if f"{prefix}{key}" in REMOVED:
                if data[key] is None:
                    continue
                raise TfpipeError(f"{prefix}{key}: this setting was removed", REMOVED[f"{prefix}{key}"])
            raise _unknown_key(str(key), names, prefix)
    kwargs = {name: _coerce(data[name], hints[name], prefix + name) for name in names if name in data}
    return cls(**kwargs)


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read, merge (`base:`, then `--set`), type-check and validate a config."""
    path = Path(path)
    raw = _read_yaml(path)
    if "base" in raw:
        base_path = path.parent / str(raw.pop("base"))
        base = _read_yaml(base_path)
        if "base" in base:
            raise TfpipeError(f"{base_path}: has a base of its own", "only one level of base: is supported")
        raw = _merge(base, raw)
    try:
        for assignment in overrides:
            _apply_override(raw, assignment)
        return _build(Config, raw).validate()
    except TfpipeError as e:
        if e.message.startswith("--set"):
            raise
        # a field a --set gave is the flag's fault, not the file's
        flag = next((a for a in reversed(overrides) if e.message.startswith(a.partition("=")[0].strip() + ":")), None)
        where = f"--set {flag}" if flag else str(path)
        raise TfpipeError(f"{where}: {e.message}", e.hint) from None


def to_dict(cfg: Config) -> dict:
    """The resolved config as plain YAML-able data (tuples become lists)."""

    def plain(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(cfg))


def dump(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
