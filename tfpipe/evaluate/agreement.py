"""`evaluate --images DIR`: every converted model against the float model on a folder of images
that carries no labels (an imported model calibrated on a folder): agreement of the argmax over
classes (top-1 of a classifier, per pixel of a segmenter), cosine similarity and largest error of
the main output. Without labels there is no accuracy and so no gate; the figures say how faithful
each conversion is on the user's own images."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfpipe import io
from tfpipe.config import Config
from tfpipe.convert.external import folder_images
from tfpipe.evaluate.parity import check_signatures, model_label, runtime_python, tflite_files
from tfpipe.evaluate.sharding import predict_sharded
from tfpipe.metrics.classification import output_agreement
from tfpipe.models.registry import MAIN_OUTPUT
from tfpipe.rundir import RunDir

MAX_IMAGES = 1_000  # drawn at random (seeded) from a larger folder: 0.1-point resolution, bounded memory at 224 px


def folder_agreement(cfg: Config, run: RunDir, folder: Path, models: list[Path] | None = None,
                     **worker_options) -> dict:
    """The agreement table of every .tflite in export/ (or `models`), written to eval/agreement.json."""
    from tfpipe.train.trainer import load_float_model

    files = tflite_files(run, models)
    worker_options = {**worker_options, "python": runtime_python(worker_options.get("python") or
                                                                 cfg.evaluate.runtime_python)}
    inputs = folder_images(folder, cfg.preprocess_spec(), MAX_IMAGES, cfg.train.seed, flag="--images")
    check_signatures(files, inputs.shape[1:], {MAIN_OUTPUT}, worker_options)
    print(f"Agreement on {len(inputs):,} unlabelled images from {folder} (no labels: no accuracy, no gate)",
          flush=True)
    reference = load_float_model(run).predict(inputs, batch_size=64, verbose=0)
    rows = []
    for path in files:
        result = predict_sharded(path, inputs, label=model_label(path), **worker_options)
        if result.failures:
            rows.append({"name": model_label(path), "file": str(path), "status": "failed",
                         "errors": [f.describe() for f in result.failures]})
            continue
        scores = result.outputs[MAIN_OUTPUT]
        rows.append({"name": model_label(path), "file": str(path), "status": "ok",
                     "argmax_agreement": float(np.mean(scores.argmax(-1) == reference.argmax(-1))),
                     **output_agreement(reference, scores)})
    report = {"format": "tfpipe-agreement/1", "run": run.root.name, "images": {"folder": str(folder),
              "count": int(len(inputs))}, "models": rows}
    io.write_json(run.eval / "agreement.json", report)
    return report


def table(report: dict) -> list[str]:
    lines = [f"{'model':<10} {'agree':>7} {'cosine':>8} {'max err':>8}", "-" * 36]
    for row in report["models"]:
        if row["status"] != "ok":
            lines.append(f"{row['name']:<10} failed: {'; '.join(row['errors'])}")
            continue
        lines.append(f"{row['name']:<10} {row['argmax_agreement']:>7.4f} {row['cosine_similarity']:>8.5f} "
                     f"{row['max_abs_error']:>8.4f}")
    return lines
