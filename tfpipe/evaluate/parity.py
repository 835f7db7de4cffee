"""Parity of every converted model with the Keras float model, on one data stream.

The test split is preprocessed once by the one preprocess; the same float32 inputs go to Keras and
to each .tflite (in runtime workers that quantize them by the model's own input parameters), and
the same metric code scores every model's outputs.
"""

from __future__ import annotations

import shutil
from functools import partial
from pathlib import Path

import numpy as np

from tfpipe.config import Config
from tfpipe.convert.converter import output_contract
from tfpipe.data.pipeline import SceneSplits, Splits, evaluation_arrays, load_splits
from tfpipe.errors import TfpipeError
from tfpipe.evaluate.classification import classification_metrics, disagreement, output_agreement
from tfpipe.evaluate.detection import COCO_STATS, ImageBoxes, coco_metrics, detection_agreement, predictions
from tfpipe.evaluate.segmentation import class_maps, confusion, pixel_agreement, segmentation_metrics
from tfpipe.evaluate.sharding import predict_sharded
from tfpipe.models.registry import MAIN_OUTPUT
from tfpipe.report import Evaluation
from tfpipe.rundir import RunDir
from tfpipe.runtime import Worker, WorkerCrashed, check_delegate, check_tflite_file
from tfpipe.runtime.contract import CLASS_MAP, PreprocessSpec
from tfpipe.runtime.detection import BOXES, SCORES

SCHEMA = "tfpipe-parity/1"
REFERENCE = "model_fp32.tflite"  # latency and size ratios are relative to this file when present


def model_label(path: Path) -> str:
    return path.stem.removeprefix("model_")


def tflite_files(run: RunDir, explicit: list[Path] | None) -> list[Path]:
    # dot-files are a writer's temporary files (io.atomic_path), complete or not: never models
    files = list(explicit) if explicit else sorted(p for p in run.export.glob("*.tflite") if not p.name.startswith("."))
    if not files:
        raise TfpipeError(f"no .tflite files in {run.export}", "run `python -m tfpipe.convert` first")
    return [check_tflite_file(f) for f in files]  # all checked before any work


def check_signatures(files: list[Path], input_shape: tuple[int, ...], outputs: set[str], options: dict) -> None:
    """Every model takes the run's input and gives the outputs the task decodes, checked before any
    work: a file made for another run (or not by tfpipe) is one line naming what differs."""
    for path in files:
        with Worker(path, **options) as worker:
            worker.image_input(input_shape)
            missing = sorted(outputs - set(worker.outputs))
        if missing:
            raise TfpipeError(f"{path}: has no output named {', '.join(missing)} (it has: "
                              f"{', '.join(sorted(worker.outputs))})",
                              "evaluate models converted by tfpipe for this run's task, or convert it with "
                              "`python -m tfpipe.convert --model`")


def runtime_python(python: str | None) -> str | None:
    if python is None:
        return None
    found = shutil.which(python)
    if found is None:
        raise TfpipeError(f"--runtime-python: {python} is not an executable Python",
                          "give the python of a venv with tflite-runtime, e.g. .venv-tflite/bin/python")
    return found


def _latency(path: Path, sample: np.ndarray, cfg: Config, threads: int, **worker_options) -> dict:
    """Median and p90 of timed invokes in one worker, alone on the machine (no shard running)."""
    with Worker(path, threads=threads, **worker_options) as worker:
        times = np.array(worker.latency({worker.image_input(): sample}, cfg.evaluate.latency_warmup,
                                        cfg.evaluate.latency_runs)) * 1000
    return {"median": float(np.median(times)), "p90": float(np.percentile(times, 90)), "runs": len(times),
            "warmup": cfg.evaluate.latency_warmup, "threads": threads}


def _worst(float_scores: np.ndarray, scores: np.ndarray, labels: np.ndarray, count: int) -> list[dict]:
    """The `count` images where the model disagrees most with the float model (for the gallery)."""
    flipped, distance = disagreement(float_scores, scores)
    order = np.lexsort((-distance, ~flipped))[:count]  # top-1 flips first, then by distance
    return [{"index": int(i), "label": int(labels[i]),
             "float_class": int(float_scores[i].argmax()), "float_score": float(float_scores[i].max()),
             "model_class": int(scores[i].argmax()), "model_score": float(scores[i].max()),
             "top1_differs": bool(flipped[i]), "distance": float(distance[i])} for i in order]


def _classification_scores(outputs: dict[str, np.ndarray], float_outputs: dict[str, np.ndarray] | None,
                           labels: np.ndarray, gallery: int) -> dict:
    """Metrics of one model's classification outputs, and against the float model's when given."""
    scores = outputs[MAIN_OUTPUT]
    metrics = classification_metrics(scores, labels)
    if float_outputs is None:
        return {"metrics": metrics}
    float_scores, float_metrics = float_outputs[MAIN_OUTPUT], classification_metrics(float_outputs[MAIN_OUTPUT], labels)
    return {
        "metrics": metrics,
        "delta_points": {k: 100 * (metrics[k] - float_metrics[k]) for k in ("top1", "top5")},
        "delta_per_class_points": [100 * (m - f) for m, f in zip(metrics["per_class_top1"],
                                                                 float_metrics["per_class_top1"], strict=True)],
        "agreement_top1": float((scores.argmax(1) == float_scores.argmax(1)).mean()),
        "outputs": {MAIN_OUTPUT: output_agreement(float_scores, scores)},
        "worst_disagreements": _worst(float_scores, scores, labels, gallery),
    }


def _segmentation_scores(outputs: dict[str, np.ndarray], float_outputs: dict[str, np.ndarray] | None,
                         labels: np.ndarray, gallery: int) -> dict:
    """mIoU and friends from one confusion matrix over the labelled pixels; against the float
    model: pixel agreement and the images where the class maps differ most (for the gallery)."""
    num_classes = outputs[MAIN_OUTPUT].shape[-1]
    predicted = class_maps(outputs)
    matrix = confusion(labels, predicted, num_classes)
    metrics = {**segmentation_metrics(matrix), "confusion": matrix.tolist()}
    if float_outputs is None:
        return {"metrics": metrics}
    float_predicted = class_maps(float_outputs)
    float_metrics = segmentation_metrics(confusion(labels, float_predicted, num_classes))
    agreement = pixel_agreement(float_predicted, predicted, labels)
    per_image = np.array(agreement["per_image"])
    return {
        "metrics": metrics,
        "delta_points": {k: 100 * (metrics[k] - float_metrics[k]) for k in ("miou", "pixel_accuracy")},
        "delta_per_class_points": [None if m is None or f is None else 100 * (m - f) for m, f in
                                   zip(metrics["per_class_iou"], float_metrics["per_class_iou"], strict=True)],
        "agreement_pixels": agreement["pixel_agreement"],
        "outputs": {MAIN_OUTPUT: output_agreement(float_outputs[MAIN_OUTPUT], outputs[MAIN_OUTPUT])},
        "worst_disagreements": [{"index": int(i), "pixel_agreement": float(per_image[i])}
                                for i in np.argsort(per_image, kind="stable")[:gallery]],
    }


def _detection_scores(outputs: dict[str, np.ndarray], float_outputs: dict[str, np.ndarray] | None,
                      labels: list[ImageBoxes], gallery: int, *, detect, num_classes: int,
                      reference: dict | None = None) -> dict:
    """COCO mAP of one model's detections (decoded and NMS'd by `detect`, the same for every model);
    against the float model: how many boxes find a partner, their IoU and score difference.
    `reference` is the float model's own result, so its decoding and mAP are computed once."""
    found = detect(outputs)
    coco = coco_metrics(labels, found, num_classes)
    counts = np.bincount(np.concatenate([g.classes for g in labels]).astype(int), minlength=num_classes)
    metrics = {"map": coco["AP"], "map50": coco["AP50"], "map75": coco["AP75"], "coco": {
        k: coco[k] for k in COCO_STATS}, "per_class_ap": coco["per_class_AP"], "per_class_count": counts.tolist(),
        "pr_curve_iou50": coco["pr_curve_iou50"], "detections": int(sum(len(f.boxes) for f in found))}
    if float_outputs is None:
        return {"metrics": metrics, "detections": found}
    if reference is None:
        reference = _detection_scores(float_outputs, None, labels, gallery, detect=detect, num_classes=num_classes)
    float_found = reference["detections"]
    float_metrics = {"AP": reference["metrics"]["map"], "AP50": reference["metrics"]["map50"],
                     "per_class_AP": reference["metrics"]["per_class_ap"]}
    agreement = detection_agreement(float_found, found)
    per_image = np.array(agreement.pop("per_image"))
    return {
        "metrics": metrics,
        "detections": found,
        "delta_points": {"map": 100 * (coco["AP"] - float_metrics["AP"]),
                         "map50": 100 * (coco["AP50"] - float_metrics["AP50"])},
        "delta_per_class_points": [None if m is None or f is None else 100 * (m - f) for m, f in
                                   zip(coco["per_class_AP"], float_metrics["per_class_AP"], strict=True)],
        "agreement_boxes": agreement["matched_share_reference"],
        "box_agreement": agreement,
        # raw outputs, when the model has them (a model ending in the post-processing op has not)
        "outputs": {name: output_agreement(float_outputs[name], outputs[name]) for name in (SCORES, BOXES)
                    if name in outputs},
        "worst_disagreements": [{"index": int(i), "unmatched": float(per_image[i])}
                                for i in np.argsort(-per_image, kind="stable")[:gallery]],
    }


# task -> (scores of one model, the gate's metric)
TASKS = {"classification": (_classification_scores, "top1"), "segmentation": (_segmentation_scores, "miou"),
         "detection": (_detection_scores, "map")}


def _pixels(inputs: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Model inputs back to 0..255 RGB pixels (the letterboxed image the model saw), for galleries."""
    pixels = np.clip(np.round((inputs - spec.offset) / spec.scale), 0, 255).astype(np.uint8)
    return pixels[..., ::-1] if spec.channel_order == "bgr" else pixels


def evaluate(cfg: Config, run: RunDir, *, threads: int | None = None, max_drop: float | None = None,
             backend: str | None = None, python: str | None = None, reference_kernels: bool | None = None,
             workers: int | None = None, delegate: str | None = None,
             models: list[Path] | None = None, splits: Splits | SceneSplits | None = None) -> Evaluation:
    """Evaluate the float model and every .tflite: the parity report (schema in report/) and the
    test images its galleries show.

    `python` runs the runtime workers under another interpreter (its own numpy and runtime);
    `workers` shards the test split over that many worker processes."""
    from tfpipe.models import registry as model_registry
    from tfpipe.train.trainer import load_float_model

    ev = cfg.evaluate
    threads = threads or ev.threads
    workers = workers or ev.workers
    max_drop = ev.max_drop if max_drop is None else max_drop
    backend = backend or ev.backend
    python = runtime_python(python or ev.runtime_python)
    reference_kernels = ev.reference_kernels if reference_kernels is None else reference_kernels
    delegate = delegate or ev.delegate
    files = tflite_files(run, models)
    if delegate:  # a missing library is bad input: say so before any work
        check_delegate(delegate, backend, python)
    options = {"backend": backend, "python": python, "reference_kernels": reference_kernels, "delegate": delegate}
    score, gate_metric = TASKS[cfg.task]
    float_model = load_float_model(run)
    splits = splits or load_splits(cfg.data, cfg.task)
    spec = cfg.preprocess_spec()
    inputs, targets = evaluation_arrays(splits, spec)
    check_signatures(files, inputs.shape[1:], set(output_contract(cfg)) - {CLASS_MAP}, options)
    split_name = "test" if isinstance(splits, Splits) else splits.test
    dataset_name = cfg.data.dataset if isinstance(splits, Splits) else cfg.data.builtin
    print(f"Evaluating on {len(inputs):,} {split_name} images ({dataset_name}), {workers} worker(s) x "
          f"{threads} thread(s)" + (f", delegate {delegate}" if delegate else ""), flush=True)
    predicted = float_model.predict(inputs, batch_size=64, verbose=0)
    float_outputs = dict(zip(float_model.output_names, predicted if isinstance(predicted, list) else [predicted],
                             strict=True))
    if cfg.task == "detection":  # boxes in model-input pixels, decoded by the runtime's code for every model
        targets = [ImageBoxes(b, c) for b, c in targets]
        anchors = model_registry.anchors(cfg.model, len(splits.class_names))
        d = cfg.detection
        score = partial(score, num_classes=len(splits.class_names), detect=partial(
            predictions, anchors=anchors, image_size=tuple(cfg.model.input_size), score_threshold=d.score_threshold,
            iou_threshold=d.nms_iou, max_detections=d.max_detections))
    float_result = score(float_outputs, None, targets, ev.gallery)
    float_metrics = float_result["metrics"]
    if cfg.task == "detection":  # every converted model is compared with these detections: decode them once
        score = partial(score, reference=float_result)
    rows = [{"name": "float", "kind": "keras", "status": "ok", "file": str(run.float_model),
             "metrics": float_metrics}]
    maps: dict[str, dict[int, np.ndarray]] = {}  # segmentation galleries: model name -> index -> class map
    boxes: dict[str, dict[int, ImageBoxes]] = {}  # detection galleries: model name -> index -> detections

    for path in files:
        label = model_label(path)
        row = {"name": label, "kind": "tflite", "file": str(path), "size_bytes": path.stat().st_size}
        rows.append(row)
        result = predict_sharded(path, inputs, workers=workers, chunk=ev.batch, label=label, threads=threads,
                                 **options)
        row["runtime"] = result.info.get("backend", backend)
        if result.failures:
            row.update(status="failed", errors=[f.describe() for f in result.failures],
                       crash_logs=[str(crash) for f in result.failures for crash in f.crashes])
            continue
        if result.recovered:
            row["recovered_crashes"] = result.recovered
            print(f"Warning: {path.name}: {len(result.recovered)} runtime worker crash(es), recovered by rerunning "
                  "the shard; see recovered_crashes in parity.json", flush=True)
        scored = score(result.outputs, float_outputs, targets, ev.gallery)
        try:
            latency = _latency(path, inputs[:1], cfg, threads, **options)
        except WorkerCrashed as e:
            row.update(status="failed", errors=["the runtime worker died while timing invokes"], crash_logs=[str(e)])
            continue
        if cfg.task == "detection":  # this model's boxes on the images its gallery shows
            boxes[label] = {w["index"]: scored["detections"][w["index"]] for w in scored["worst_disagreements"]}
        scored.pop("detections", None)
        row.update({"status": "ok", **scored, "latency_ms": latency})
        if cfg.task == "segmentation":  # this model's maps of the images its gallery shows
            predicted = class_maps(result.outputs)
            maps[label] = {w["index"]: predicted[w["index"]] for w in scored["worst_disagreements"]}

    reference = next((r for r in rows if Path(r["file"]).name == REFERENCE and r["status"] == "ok"), None)
    if reference is not None:
        for row in rows[1:]:
            row["size_ratio_fp32"] = row["size_bytes"] / reference["size_bytes"]
            if row["status"] == "ok":
                row["latency_ratio_fp32"] = row["latency_ms"]["median"] / reference["latency_ms"]["median"]

    failures = []
    for r in rows[1:]:
        name = Path(r["file"]).name
        if r["status"] == "failed":
            failures += [f"{name}: {error}" for error in r["errors"]]
        elif -r["delta_points"][gate_metric] > max_drop:
            failures.append(f"{name}: {gate_metric} dropped {-r['delta_points'][gate_metric]:.2f} points "
                            f"({float_metrics[gate_metric]:.4f} -> {r['metrics'][gate_metric]:.4f}), "
                            f"more than --max-drop {max_drop:g}")
    report = {
        "schema": SCHEMA,
        "task": cfg.task,
        "run": str(run.root),
        "dataset": {"name": dataset_name, "split": split_name, "samples": int(len(inputs)),
                    "classes": list(splits.class_names)},
        "threads": threads,
        "workers": workers,
        "delegate": delegate,
        "reference_kernels": reference_kernels,
        "gate": {"metric": gate_metric, "max_drop_points": max_drop, "passed": not failures, "failures": failures},
        "models": rows,
    }
    shown = sorted({w["index"] for r in rows for w in r.get("worst_disagreements", [])})
    if isinstance(splits, Splits):
        return Evaluation(report, {i: splits.test.images[i] for i in shown})
    if cfg.task == "detection":
        float_found = score.keywords["detect"](float_outputs)
        boxes.update(truth={i: targets[i] for i in shown}, float={i: float_found[i] for i in shown})
        return Evaluation(report, {i: _pixels(inputs[i], spec) for i in shown}, boxes=boxes)
    float_maps = class_maps(float_outputs)
    maps.update(truth={i: targets[i] for i in shown}, float={i: float_maps[i] for i in shown})
    return Evaluation(report, {i: _pixels(inputs[i], spec) for i in shown}, maps)
