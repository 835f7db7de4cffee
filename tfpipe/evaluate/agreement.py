"""`evaluate --images DIR`: every converted model against the float model on a folder of images
that carries no labels (an imported model calibrated on a folder): agreement of the argmax over
classes (top-1 of a classifier, per pixel of a segmenter), cosine similarity and largest error of
the main output, and per output those figures, its value statistics and the collapse checks
(tfpipe.runtime.collapse: constant, all zeros, NaN, squeezed into a few int8 steps). The float
reference is the Keras model, or for an imported .tflite its fp32 file. Without labels there is
no accuracy and so no gate; the figures say how faithful each conversion is on the user's own
images."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfpipe import io
from tfpipe.config import Config
from tfpipe.convert.external import folder_images
from tfpipe.evaluate.parity import check_signatures, float_reference, model_label, runtime_python, tflite_files
from tfpipe.evaluate.sharding import predict_sharded
from tfpipe.metrics.classification import output_agreement
from tfpipe.models.registry import MAIN_OUTPUT
from tfpipe.rundir import RunDir
from tfpipe.runtime import collapse

MAX_IMAGES = 1_000  # drawn at random (seeded) from a larger folder: 0.1-point resolution, bounded memory at 224 px


def folder_agreement(cfg: Config, run: RunDir, folder: Path, models: list[Path] | None = None,
                     **worker_options) -> dict:
    """The agreement table of every .tflite in export/ (or `models`) with the float model (the
    Keras model, or an imported .tflite's fp32 file), written to eval/agreement.json."""
    files = tflite_files(run, models)
    worker_options = {**worker_options, "python": runtime_python(worker_options.get("python") or
                                                                 cfg.evaluate.runtime_python)}
    inputs = folder_images(folder, cfg.preprocess_spec(), MAX_IMAGES, cfg.train.seed, flag="--images")
    check_signatures(files, inputs.shape[1:], lambda names: sorted({MAIN_OUTPUT} - names), worker_options)
    print(f"Agreement on {len(inputs):,} unlabelled images from {folder} (no labels: no accuracy, no gate)",
          flush=True)
    reference, reference_file = float_reference(run, inputs, **worker_options)
    rows = []
    for path in files:
        if str(path) == reference_file:
            continue  # the reference itself
        result = predict_sharded(path, inputs, label=model_label(path), **worker_options)
        if result.failures:
            rows.append({"name": model_label(path), "file": str(path), "status": "failed",
                         "errors": [f.describe() for f in result.failures]})
            continue
        scores = result.outputs[MAIN_OUTPUT]
        scales = {name: d["scale"] for name, d in result.info.get("outputs", {}).items()
                  if d.get("dtype") in ("int8", "uint8", "int16") and d.get("scale")}
        compared = {name: values for name, values in result.outputs.items() if name in reference}
        collapsed = collapse.collapsed(compared, reference, scales)
        for sentence in collapsed:
            print(f"WARNING: {path.name}: {sentence}", flush=True)
        rows.append({"name": model_label(path), "file": str(path), "status": "ok",
                     "argmax_agreement": float(np.mean(scores.argmax(-1) == reference[MAIN_OUTPUT].argmax(-1))),
                     **output_agreement(reference[MAIN_OUTPUT], scores),
                     "outputs": {name: {**output_agreement(reference[name], values), **statistics(values)}
                                 for name, values in compared.items()},
                     **({"collapsed_outputs": collapsed} if collapsed else {})})
    report = {"format": "tfpipe-agreement/1", "run": run.root.name, "reference": reference_file,
              "images": {"folder": str(folder), "count": int(len(inputs))}, "models": rows}
    io.write_json(run.eval / "agreement.json", report)
    return report


def statistics(values: np.ndarray) -> dict:
    """An output's values over all images: what a collapsed or saturated output shows first."""
    return {"min": float(values.min()), "max": float(values.max()), "mean": float(values.mean()),
            "std": float(values.std()), "distinct_values": int(len(np.unique(values)))}


def table(report: dict) -> list[str]:
    lines = [f"Against {Path(report['reference']).name}:", f"{'model':<14} {'agree':>7} {'cosine':>8} {'max err':>8}",
             "-" * 40]
    for row in report["models"]:
        if row["status"] != "ok":
            lines.append(f"{row['name']:<14} failed: {'; '.join(row['errors'])}")
            continue
        lines.append(f"{row['name']:<14} {row['argmax_agreement']:>7.4f} {row['cosine_similarity']:>8.5f} "
                     f"{row['max_abs_error']:>8.4f}" + ("  COLLAPSED: see the warnings above"
                                                         if row.get("collapsed_outputs") else ""))
    return lines
