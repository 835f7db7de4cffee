"""Parity of every converted model with the Keras float model, on one data stream.

The test split is preprocessed once by the one preprocess; the same float32 inputs go to Keras and
to each .tflite (in a runtime worker that quantizes them by the model's own input parameters).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tfpipe.config import Config
from tfpipe.data.pipeline import Splits, load_splits, make_dataset
from tfpipe.data.preprocess import PreprocessSpec
from tfpipe.errors import TfpipeError
from tfpipe.evaluate.classification import classification_metrics, output_agreement
from tfpipe.rundir import RunDir
from tfpipe.runtime import Worker, check_tflite_file

SCHEMA = "tfpipe-parity/1"
REFERENCE = "model_fp32.tflite"  # latency and size ratios are relative to this file when present


def _model_label(path: Path) -> str:
    return path.stem.removeprefix("model_")


def _tflite_files(run: RunDir, explicit: list[Path] | None) -> list[Path]:
    files = list(explicit) if explicit else sorted(run.export.glob("*.tflite"))
    if not files:
        raise TfpipeError(f"no .tflite files in {run.export}", "run `python -m tfpipe.convert` first")
    return [check_tflite_file(f) for f in files]  # all checked before any work


def _tflite_outputs(worker: Worker, inputs: np.ndarray, chunk: int, label: str) -> dict[str, np.ndarray]:
    (input_name,) = worker.inputs
    parts: dict[str, list] = {}
    for start in tqdm(range(0, len(inputs), chunk), desc=f"{label:>8}", unit="chunk", leave=False,
                       disable=None):  # None: a bar on a terminal, silence in logs and pipes
        for name, value in worker.predict({input_name: inputs[start : start + chunk]}).items():
            parts.setdefault(name, []).append(value)
    return {name: np.concatenate(values) for name, values in parts.items()}


def _interpreter(python: str | None) -> str | None:
    if python is None:
        return None
    found = shutil.which(python)
    if found is None:
        raise TfpipeError(f"--runtime-python: {python} is not an executable Python",
                          "give the python of a venv with tflite-runtime, e.g. .venv-tflite/bin/python")
    return found


def evaluate(cfg: Config, run: RunDir, *, threads: int | None = None, max_drop: float | None = None,
             backend: str | None = None, python: str | None = None, reference_kernels: bool | None = None,
             models: list[Path] | None = None, splits: Splits | None = None) -> dict:
    """Evaluate the float model and every .tflite; returns the parity report (see report/).

    `python` runs the runtime workers under another interpreter (its own numpy and runtime)."""
    from tfpipe.train.trainer import load_float_model

    threads = threads or cfg.evaluate.threads
    max_drop = cfg.evaluate.max_drop if max_drop is None else max_drop
    backend = backend or cfg.evaluate.backend
    python = _interpreter(python or cfg.evaluate.runtime_python)
    reference_kernels = cfg.evaluate.reference_kernels if reference_kernels is None else reference_kernels
    files = _tflite_files(run, models)
    float_model = load_float_model(run)
    splits = splits or load_splits(cfg.data)
    test = splits.test
    spec = PreprocessSpec.from_config(cfg)
    inputs = np.concatenate(list(make_dataset(test, spec, 512, len(splits.class_names),
                                              with_labels=False).as_numpy_iterator()))
    print(f"Evaluating on {len(test):,} test images ({cfg.data.dataset}), {threads} thread(s)", flush=True)
    float_scores = float_model.predict(inputs, batch_size=256, verbose=0)
    float_metrics = classification_metrics(float_scores, test.labels)
    rows = [{"name": "float", "kind": "keras", "file": str(run.float_model), "metrics": float_metrics}]

    for path in files:
        label = _model_label(path)
        with Worker(path, backend=backend, threads=threads, python=python,
                    reference_kernels=reference_kernels) as worker:
            outputs = _tflite_outputs(worker, inputs, cfg.evaluate.batch, label)
            (input_name,) = worker.inputs
            times = np.array(worker.latency({input_name: inputs[:1]}, cfg.evaluate.latency_warmup,
                                            cfg.evaluate.latency_runs)) * 1000
            used_backend = worker.info["backend"]
        scores = outputs[float_model.output_names[0]]
        metrics = classification_metrics(scores, test.labels)
        rows.append({
            "name": label, "kind": "tflite", "file": str(path), "runtime": used_backend,
            "size_bytes": path.stat().st_size,
            "metrics": metrics,
            "delta_points": {k: 100 * (metrics[k] - float_metrics[k]) for k in ("top1", "top5")},
            "agreement_top1": float((scores.argmax(1) == float_scores.argmax(1)).mean()),
            "outputs": {float_model.output_names[0]: output_agreement(float_scores, scores)},
            "latency_ms": {"median": float(np.median(times)), "p90": float(np.percentile(times, 90)),
                           "runs": len(times), "warmup": cfg.evaluate.latency_warmup, "threads": threads},
        })

    reference = next((r for r in rows if Path(r["file"]).name == REFERENCE), None)
    if reference is not None:
        for row in rows[1:]:
            row["size_ratio_fp32"] = row["size_bytes"] / reference["size_bytes"]
            row["latency_ratio_fp32"] = row["latency_ms"]["median"] / reference["latency_ms"]["median"]

    failures = [f"{Path(r['file']).name}: top1 dropped {-r['delta_points']['top1']:.2f} points "
                f"({float_metrics['top1']:.4f} -> {r['metrics']['top1']:.4f}), more than --max-drop {max_drop:g}"
                for r in rows[1:] if -r["delta_points"]["top1"] > max_drop]
    return {
        "schema": SCHEMA,
        "task": cfg.task,
        "run": str(run.root),
        "dataset": {"name": cfg.data.dataset, "split": "test", "samples": int(len(test)),
                    "classes": list(splits.class_names)},
        "threads": threads,
        "reference_kernels": reference_kernels,
        "gate": {"metric": "top1", "max_drop_points": max_drop, "passed": not failures, "failures": failures},
        "models": rows,
    }
