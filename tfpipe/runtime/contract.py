"""The device contract that every floor shares, TensorFlow-free: what a tfpipe .tflite takes and
gives, and how model.json describes it. The training pipeline, the converter, the evaluator, the
Coral runner and the Android core all read these, so each fact is written once.

- Output names a device reads by name: every task's, and a detector's raw outputs and those of
  TFLite_Detection_PostProcess (their decoding is tfpipe.runtime.detection's).
- `PreprocessSpec`: the one description of the preprocessing (model.json's `preprocess`);
  tfpipe.data.preprocess applies it in TensorFlow, tfpipe.runtime.preprocess in NumPy.
- `QUANT_MODES`: every quantization mode and its facts (file label, calibration, integer I/O,
  which deployment targets run it, which engines make it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

PROBABILITIES = "probabilities"  # classification [1, classes], segmentation [1, H, W, classes]: softmax
CLASS_MAP = "class_map"  # segmentation, optional: uint8 [1, H, W], the argmax over classes, in the graph
# A detector's raw outputs (separate tensors, so int8 gives offsets and probabilities their own scales)
BOXES = "box_encodings"  # [B, N, 4] (ty, tx, th, tw) per anchor
SCORES = "class_scores"  # [B, N, classes] a sigmoid per class (background: every score low)
# An instance segmenter's per-RoI outputs, beside BOXES and SCORES (decoding: tfpipe.runtime.instance)
MASKS = "instance_masks"  # [B, N, S, S] a soft mask (sigmoid) over each row's box
KEYPOINTS = "keypoint_heatmaps"  # [B, N, S, S, K] logits, one map per keypoint over each row's box
# A detector ending in TFLite_Detection_PostProcess (convert.postprocess: tflite_op), in the op's order
DETECTION_BOXES = "detection_boxes"  # [1, M, 4] (ymin, xmin, ymax, xmax) normalised
DETECTION_CLASSES = "detection_classes"  # [1, M] float class ids
DETECTION_SCORES = "detection_scores"  # [1, M]
NUM_DETECTIONS = "num_detections"  # [1] how many of the M rows are detections
POSTPROCESS_OUTPUTS = (DETECTION_BOXES, DETECTION_CLASSES, DETECTION_SCORES, NUM_DETECTIONS)


@dataclass(frozen=True)
class PreprocessSpec:
    """Pixels 0..255 -> model input: channels (gray <-> RGB, then `channel_order`), resize to
    height x width (`letterbox` on a `pad_value` canvas, or `stretch`), then pixel * scale + offset."""

    height: int
    width: int
    channels: int
    resize: str = "letterbox"
    scale: float = 1 / 127.5
    offset: float = -1.0
    channel_order: str = "rgb"
    pad_value: float = 0.0

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> PreprocessSpec:
        """model.json's `preprocess` (fields it lacks take their defaults); an unknown field is a
        ValueError naming it, so a bundle from a newer tfpipe is not silently misread."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown preprocess field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**data)


@dataclass(frozen=True)
class QuantMode:
    name: str  # the --quantize value
    label: str  # in file names (model_<label>.tflite), model.json and reports
    calibrated: bool  # needs representative inputs (activation ranges), from calibration or QAT
    integer_io: bool  # may take and give uint8/int8 tensors (convert.io_dtype)
    targets: tuple[str, ...]  # the accelerators it is meant for (cpu runs every mode)
    from_qat: bool = False  # converted from the run's QAT model when there is one (else calibrated)
    engines: tuple[str, ...] = ("converter", "litert")  # who can make it, the default first


# The quantization engines: TensorFlow's TFLiteConverter (from the Keras model, QAT or calibrated)
# and Google's LiteRT Quantizer (from the fp32 .tflite, by recipe; tfpipe.convert.litert).
ENGINES = ("converter", "litert")


QUANT_MODES: dict[str, QuantMode] = {m.name: m for m in (
    QuantMode("none", "fp32", calibrated=False, integer_io=False, targets=("gpu",), engines=("converter",)),
    QuantMode("fp16", "fp16", calibrated=False, integer_io=False, targets=("gpu", "nnapi"), engines=("converter",)),
    QuantMode("dynamic", "dynamic", calibrated=False, integer_io=False, targets=()),
    QuantMode("int8", "int8", calibrated=True, integer_io=True, targets=("edgetpu", "nnapi"), from_qat=True),
    QuantMode("int16x8", "int16x8", calibrated=True, integer_io=False, targets=()),
    # int8 weights dequantized before float kernels: a quarter of the size, float accuracy and speed
    QuantMode("weight_int8", "weight_int8", calibrated=False, integer_io=False, targets=(), engines=("litert",)),
)}
IO_DTYPES = ("uint8", "int8", "float")
# What `--target T` converts when no mode is asked for (cpu: the config's convert.quantize).
TARGET_DEFAULT = {"cpu": "none", "edgetpu": "int8", "gpu": "fp16", "nnapi": "int8"}
# The interface of an int8 model when convert.io_dtype is `auto` (the default): the fastest each
# target accepts. int8 saves the requantizing op at each end (benchmarks/quantizers.py: 7 % of a
# segmenter's invoke, whose 96x96x11 output it requantizes; within 2 % elsewhere); NNAPI runs
# signed int8 models from Android 11 (API 30) only, so uint8 I/O would not open older devices
# anyway; the Edge TPU kit and Coral's examples feed uint8.
TARGET_IO = {"cpu": "int8", "gpu": "int8", "nnapi": "int8", "edgetpu": "uint8"}


# The label suffix of an Edge TPU build (delegates/rewrite.py): the model re-expressed in ops the
# Edge TPU compiler maps, beside the CPU build (the compiler's own output adds _edgetpu after it).
TPU_BUILD = "tpu"


def model_label(quantize: str, engine: str = "converter", tpu_build: bool = False) -> str:
    """A converted model's name in file names (model_<label>.tflite), model.json and reports: the
    mode's label, the engine when it is not the mode's default (both engines' files side by side),
    and `tpu` for an Edge TPU build."""
    mode = QUANT_MODES[quantize]
    label = mode.label if engine == mode.engines[0] else f"{mode.label}_{engine}"
    return f"{label}_{TPU_BUILD}" if tpu_build else label


def target_modes(target: str) -> tuple[str, ...]:
    """The modes a deployment target runs, its default first (cpu runs every mode)."""
    default = TARGET_DEFAULT[target]
    runs = [m.name for m in QUANT_MODES.values() if target == "cpu" or target in m.targets]
    return (default, *(m for m in runs if m != default))
