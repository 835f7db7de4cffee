"""Parity of every converted model with the Keras float model, on one data stream.

The test split is preprocessed once, as the run's model.json says; the same float32 inputs go to
Keras and to each .tflite (in runtime workers that quantize them by the model's own input
parameters); every model's outputs are decoded as model.json says, by the code a device runs
(tfpipe.runtime.bundle.Contract), and scored by the same metric code.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tfpipe import tasks
from tfpipe.config import Config
from tfpipe.data.pipeline import Splits
from tfpipe.errors import TfpipeError
from tfpipe.evaluate.result import Evaluation
from tfpipe.evaluate.sharding import predict_sharded
from tfpipe.rundir import RunDir
from tfpipe.runtime import Worker, WorkerCrashed, check_delegate, check_tflite_file, collapse
from tfpipe.runtime.bundle import Contract
from tfpipe.runtime.contract import PreprocessSpec

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


def check_signatures(files: list[Path], input_shape: tuple[int, ...], missing_outputs: Callable[[set[str]], list[str]],
                     options: dict) -> None:
    """Every model takes the run's input and gives the outputs the task decodes (`missing_outputs`:
    what a set of output names lacks), checked before any work: a file made for another run (or
    not by tfpipe) is one line naming what differs."""
    for path in files:
        with Worker(path, **options) as worker:
            worker.image_input(input_shape)
            missing = missing_outputs(set(worker.outputs))
        if missing:
            raise TfpipeError(f"{path}: has no output named {', '.join(missing)} (it has: "
                              f"{', '.join(sorted(worker.outputs))})",
                              "evaluate models converted by tfpipe for this run's task, or convert it with "
                              "`python -m tfpipe.convert --model`")


def read_contract(cfg: Config, run: RunDir, class_names: tuple[str, ...]) -> Contract:
    """The run's model.json, which every model is decoded by (as on a device), checked against the
    config and data being evaluated: a bundle converted from another config is one line naming the
    field, not a silent misreading."""
    contract = Contract(run.export)
    hint = "convert the run again (python -m tfpipe.convert) so model.json describes this config"
    if contract.task != cfg.task:
        raise TfpipeError(f"{contract.path}: task {contract.task!r}, but the config's is {cfg.task!r}", hint)
    if tuple(contract.classes) != tuple(class_names):
        raise TfpipeError(f"{contract.path}: classes {contract.classes} differ from the dataset's {list(class_names)}",
                          hint)
    spec = cfg.preprocess_spec()
    if contract.spec != spec:
        differ = [f"{k} {v!r} (config: {getattr(spec, k)!r})" for k, v in contract.spec.to_json().items()
                  if getattr(spec, k) != v]
        raise TfpipeError(f"{contract.path}: preprocess {', '.join(differ)}", hint)
    return contract


def runtime_python(python: str | None) -> str | None:
    if python is None:
        return None
    found = shutil.which(python)
    if found is None:
        raise TfpipeError(f"--runtime-python: {python} is not an executable Python",
                          "give the python of a venv with tflite-runtime, e.g. .venv-tflite/bin/python")
    return found


def float_reference(run: RunDir, inputs: np.ndarray, **worker_options) -> tuple[dict[str, np.ndarray], str]:
    """The float model's outputs by name over `inputs` and its file: the Keras model, or for an
    imported .tflite (convert --tflite: no Keras source) the fp32 file itself, by the same runtime
    as the models compared with it."""
    from tfpipe.train.trainer import load_float_model

    fp32 = run.tflite("none")
    if not run.float_model.is_file() and fp32.is_file():
        result = predict_sharded(fp32, inputs, label="float", **worker_options)
        if result.failures:
            raise TfpipeError(f"{fp32}: the float .tflite failed: {'; '.join(f.describe() for f in result.failures)}",
                              "check it runs: python -m tfpipe.check " + str(fp32))
        return result.outputs, str(fp32)
    model = load_float_model(run)
    predicted = model.predict(inputs, batch_size=64, verbose=0)
    return dict(zip(model.output_names, predicted if isinstance(predicted, list) else [predicted],
                    strict=True)), str(run.float_model)


def _latency(path: Path, sample: np.ndarray, cfg: Config, threads: int, **worker_options) -> dict:
    """Median and p90 of timed invokes in one worker, alone on the machine (no shard running)."""
    with Worker(path, threads=threads, **worker_options) as worker:
        times = np.array(worker.latency({worker.image_input(): sample}, cfg.evaluate.latency_warmup,
                                        cfg.evaluate.latency_runs)) * 1000
    return {"median": float(np.median(times)), "p90": float(np.percentile(times, 90)), "runs": len(times),
            "warmup": cfg.evaluate.latency_warmup, "threads": threads}


def _pixels(inputs: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Model inputs back to 0..255 RGB pixels (the letterboxed image the model saw), for galleries."""
    pixels = np.clip(np.round((inputs - spec.offset) / spec.scale), 0, 255).astype(np.uint8)
    return pixels[..., ::-1] if spec.channel_order == "bgr" else pixels


def evaluate(cfg: Config, run: RunDir, *, threads: int | None = None, max_drop: float | None = None,
             backend: str | None = None, python: str | None = None, reference_kernels: bool | None = None,
             workers: int | None = None, delegate: str | None = None,
             models: list[Path] | None = None, splits: Splits | None = None) -> Evaluation:
    """Evaluate the float model and every .tflite: the parity report (schema in report/) and the
    test images its galleries show.

    `python` runs the runtime workers under another interpreter (its own numpy and runtime);
    `workers` shards the test split over that many worker processes."""
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
    task = tasks.of(cfg)
    gate_metric = task.gate.metric
    splits = splits or task.load_splits(cfg)
    contract = read_contract(cfg, run, splits.class_names)
    spec = contract.spec
    inputs, targets = splits.evaluation_arrays(spec)
    check_signatures(files, inputs.shape[1:], lambda names: task.missing_outputs(cfg, names), options)
    print(f"Evaluating on {len(inputs):,} {splits.test_name} images ({splits.name}), {workers} worker(s) x "
          f"{threads} thread(s)" + (f", delegate {delegate}" if delegate else ""), flush=True)
    float_outputs, float_file = float_reference(run, inputs, threads=threads, **options)
    scorer = task.scorer(contract, targets, ev.gallery)
    float_metrics = scorer.reference(float_outputs)["metrics"]
    rows = [{"name": "float", "kind": "keras" if float_file == str(run.float_model) else "tflite", "status": "ok",
             "file": float_file, "metrics": float_metrics}]
    drawn: dict[str, dict[int, object]] = {}  # galleries: model name -> image index -> what is drawn on it

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
        scored = scorer.score(result.outputs, float_outputs)
        scales = {name: d["scale"] for name, d in result.info.get("outputs", {}).items()
                  if d.get("dtype") in ("int8", "uint8", "int16") and d.get("scale")}
        collapsed = collapse.collapsed(result.outputs, float_outputs, scales)
        for sentence in collapsed:  # before any metric is trusted
            print(f"WARNING: {path.name}: {sentence}", flush=True)
        if collapsed:
            row["collapsed_outputs"] = collapsed
        try:
            latency = _latency(path, inputs[:1], cfg, threads, **options)
        except WorkerCrashed as e:
            row.update(status="failed", errors=["the runtime worker died while timing invokes"], crash_logs=[str(e)])
            continue
        items = scorer.gallery_items(result.outputs, scored, [w["index"] for w in scored["worst_disagreements"]])
        if items is not None:
            drawn[label] = items
        for key in scorer.private:  # what only the gallery reads, not the report
            scored.pop(key, None)
        row.update({"status": "ok", **scored, "latency_ms": latency})

    reference = next((r for r in rows[1:] if Path(r["file"]).name == REFERENCE and r["status"] == "ok"), None)
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
        "dataset": {"name": splits.name, "split": splits.test_name, "samples": int(len(inputs)),
                    "classes": list(splits.class_names)},
        "threads": threads,
        "workers": workers,
        "delegate": delegate,
        "reference_kernels": reference_kernels,
        "gate": {"metric": gate_metric, "max_drop_points": max_drop, "passed": not failures, "failures": failures},
        "models": rows,
    }
    shown = sorted({w["index"] for r in rows for w in r.get("worst_disagreements", [])})
    images = {i: _pixels(inputs[i], spec) for i in shown}  # as the model saw them (letterboxed)
    references = scorer.reference_items(float_outputs, shown)
    return Evaluation(report, images, {} if references is None else {**drawn, **references})
