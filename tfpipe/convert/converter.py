"""Keras -> .tflite in every quantization mode, with batch 1 and static shapes, plus the bundle
(the train -> QAT -> convert orchestration is tfpipe.run.convert_run).

Modes: none (fp32), fp16 (float16 weights), dynamic (int8 weights, float activations), int8
(full integer: from the run's QAT model when it exists, else post-training calibration), int16x8
(int16 activations, int8 weights; calibrated). Calibration uses `convert.calibration_samples`
training images through the one preprocess.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tfpipe import io, models, tasks
from tfpipe.config import Config
from tfpipe.convert.tflite import to_tflite
from tfpipe.data.pipeline import Splits
from tfpipe.errors import TfpipeError
from tfpipe.models.registry import MAIN_OUTPUT
from tfpipe.rundir import RunDir
from tfpipe.runtime import Worker, collapse
from tfpipe.runtime.contract import IO_DTYPES, QUANT_MODES, TARGET_DEFAULT, PreprocessSpec, target_modes


def io_dtype_for(cfg: Config, quantize: str, requested: str | None = None) -> str:
    """Integer I/O applies to int8 models only; every other mode keeps float I/O unless asked."""
    return requested or (cfg.convert.io_dtype if QUANT_MODES[quantize].integer_io else "float")


def check_request(quantize: str, io_dtype: str) -> None:
    """Reject impossible combinations before anything is loaded or written."""
    if quantize not in QUANT_MODES:
        raise TfpipeError(f"--quantize: {quantize!r} is not accepted", f"use one of: {', '.join(QUANT_MODES)}")
    if io_dtype not in IO_DTYPES:
        raise TfpipeError(f"--io-dtype: {io_dtype!r} is not accepted", f"use one of: {', '.join(IO_DTYPES)}")
    if io_dtype != "float" and not QUANT_MODES[quantize].integer_io:
        raise TfpipeError(f"--io-dtype {io_dtype} needs --quantize int8 (got {quantize})",
                          "integer input/output exists only for full-integer models; use --io-dtype float")


def modes_for_target(target: str, requested: list[str] | tuple[str, ...] | None,
                     configured: tuple[str, ...]) -> list[str]:
    """The modes to convert for a deployment target: those asked for, each checked against what the
    target runs, else the target's default (cpu: the config's convert.quantize)."""
    if target not in TARGET_DEFAULT:
        raise TfpipeError(f"--target: {target!r} is not accepted", f"use one of: {', '.join(TARGET_DEFAULT)}")
    allowed = target_modes(target)
    for mode in requested or ():
        if mode not in allowed:
            raise TfpipeError(f"--target {target} --quantize {mode}: the {target} target does not run {mode} models",
                              f"use --quantize {' or '.join(allowed)} with --target {target}")
    if requested:
        return list(requested)
    return list(configured) if target == "cpu" else [allowed[0]]


def check_targets(quantize: str) -> list[str]:
    """The accelerators a model of this mode is meant for, so convert checks it for each of them."""
    return list(QUANT_MODES[quantize].targets)



def _read_bundle(run: RunDir) -> dict:
    if not run.model_json.is_file():
        return {}
    try:
        bundle = json.loads(run.model_json.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TfpipeError(f"{run.model_json}: not valid JSON ({e})",
                          "delete it; convert rewrites it for every .tflite it writes") from None
    if not isinstance(bundle, dict) or not isinstance(bundle.get("models", {}), dict):
        raise TfpipeError(f"{run.model_json}: not a tfpipe bundle (expected an object with 'models')",
                          "delete it; convert rewrites it for every .tflite it writes")
    return bundle


def _update_bundle(cfg: Config, run: RunDir, bundle: dict, class_names: tuple[str, ...], quantize: str,
                   io_dtype: str, source: str, path: Path, info: dict, splits: Splits | None) -> None:
    """model.json (the device contract) and labels.txt, updated atomically."""
    task = tasks.of(cfg)
    models = dict(bundle.get("models", {}))
    models[QUANT_MODES[quantize].label] = {
        "file": path.name,
        "quantize": quantize,
        "source": source,
        "io_dtype": io_dtype,
        "size_bytes": path.stat().st_size,
        "runtime": info["backend"],
        "inputs": info["inputs"],
        "outputs": info["outputs"],
        "ops": sorted(set(info["graph"]["ops"])),
        "activation_dtypes": info["graph"]["activation_dtypes"],
        "dynamic_tensors": info["graph"]["dynamic_tensors"],
    }
    bundle = {
        "format": "tfpipe-bundle/1",
        "task": cfg.task,
        "model": cfg.model.name,
        "classes": list(class_names),
        "labels_file": run.labels.name,
        "preprocess": cfg.preprocess_spec().to_json(),
        "outputs": task.output_contract(cfg),
        "models": dict(sorted(models.items())),
        **task.bundle_fields(cfg, len(class_names), splits),
    }
    io.write_text(run.labels, "".join(f"{name}\n" for name in class_names))
    io.write_json(run.model_json, bundle)


def convert(cfg: Config, run: RunDir, quantize: str, io_dtype: str | None = None,
            splits: Splits | None = None, from_qat: bool = True, max_drop: float | None = None,
            debug_quant: bool = False, images: tuple[np.ndarray, tuple[str, ...]] | None = None) -> Path:
    """Write export/model_<q>.tflite from the run's trained model and update the bundle.

    int8 comes from the QAT model when `from_qat` and the run has one, else from calibration;
    `max_drop` (points) makes it selective int8 (convert/selective.py), `debug_quant` writes the
    per-layer quantization error table first. `images` (preprocessed calibration inputs, class
    names) replaces the config's dataset for an imported model calibrated on a plain folder."""
    from tfpipe.qat import load_qat_model
    from tfpipe.train.trainer import load_float_model

    io_dtype = io_dtype_for(cfg, quantize, io_dtype)
    check_request(quantize, io_dtype)
    task = tasks.of(cfg)
    bundle = _read_bundle(run)  # a broken model.json stops us before anything is replaced
    if images is None:
        splits = splits or task.load_splits(cfg)
    elif max_drop is not None or debug_quant:
        raise TfpipeError("--max-drop/--debug-quant need labelled held-out data",
                          "give --calibration-data a config (its dataset's validation split is used)")
    selective = max_drop is not None and quantize == "int8"
    use_qat = from_qat and not selective and QUANT_MODES[quantize].from_qat and run.qat_model.is_file()
    model = load_qat_model(run.qat_model) if use_qat else load_float_model(run)
    source = "qat" if use_qat else ("ptq" if QUANT_MODES[quantize].calibrated else "float")
    spec = cfg.preprocess_spec()
    calibration = None
    if QUANT_MODES[quantize].calibrated:
        calibration = images[0] if images is not None else splits.calibration_inputs(
            spec, cfg.convert.calibration_samples, cfg.train.seed)
    if (selective or debug_quant) and quantize == "int8" and not use_qat:
        data, source = _debugged_int8(cfg, run, model, splits, spec, io_dtype, calibration, max_drop, debug_quant)
    else:
        data = None
    print(f"Converting the {source} model to {QUANT_MODES[quantize].label} TFLite"
          + (f" (calibrating on {len(calibration)} images)" if calibration is not None
             and source != "qat" else ""), flush=True)
    if data is None:
        data = to_tflite(model, quantize, io_dtype, calibration, class_map=cfg.convert.class_map,
                         postprocess=task.postprocess(cfg, len(images[1] if images is not None
                                                               else splits.class_names)),
                         float_layers=models.registry.float_layers(cfg.model))
    path = run.tflite(quantize)
    with io.atomic_path(path) as tmp:  # renamed into export/ only once the runtime has loaded it
        tmp.write_bytes(data)
        with Worker(tmp, threads=1) as worker:
            info = worker.info
    class_names = images[1] if images is not None else splits.class_names
    _update_bundle(cfg, run, bundle, class_names, quantize, io_dtype, source, path, info,
                   splits if images is None else None)
    print(f"Wrote {path} ({len(data) / 1024:.1f} KiB)", flush=True)
    for warning in collapse.shared_outputs(path):
        print(f"WARNING: {warning}", flush=True)
    check_delegates(path, check_targets(quantize))
    return path


def _debugged_int8(cfg: Config, run: RunDir, model, splits: Splits, spec: PreprocessSpec, io_dtype: str,
                   calibration: np.ndarray, max_drop: float | None, debug_quant: bool) -> tuple[bytes | None, str]:
    """--debug-quant (per-layer error table and plot) and --max-drop (selective int8) on the
    held-out split; returns the selective model's bytes (None without --max-drop) and its source."""
    from tfpipe.convert import selective

    if cfg.convert.class_map:
        raise TfpipeError("--max-drop/--debug-quant with convert.class_map: the debugger's converter cannot name "
                          "the class_map output", "convert without --set convert.class_map=true")
    inputs, labels = splits.held_out_arrays(spec)
    rows = None
    if debug_quant:
        rows = selective.layer_errors(model, io_dtype, calibration, inputs)
        written = selective.write_layer_errors(rows, run.export)
        worst = min(rows, key=lambda r: r["sqnr_db"])
        print(f"Quantization debugger: {len(rows)} quantized ops; worst median-channel SQNR {worst['sqnr_db']:.1f} dB "
              f"at {worst['op']} {' '.join(worst['keras_layers'])} ({', '.join(p.name for p in written)})", flush=True)
    if max_drop is None:
        return None, "ptq"
    task = tasks.of(cfg)

    def score(outputs: dict) -> float:
        return task.held_out_score(outputs, labels)

    float_score = score({MAIN_OUTPUT: model.predict(inputs, batch_size=64, verbose=0)})
    data, report = selective.select(model, score, io_dtype, calibration, inputs, float_score, max_drop, errors=rows)
    io.write_json(run.export / "selective_int8.json", report)
    print("\n".join(selective.describe(report, task.gate.label)), flush=True)
    if not report["met"]:
        print(f"Post-training int8 misses --max-drop {max_drop:g}: quantization-aware training usually closes the "
              f"gap: python -m tfpipe.qat --config {run.root / 'config.yaml'} --workdir {run.root.parent}, "
              "then convert without --ptq", flush=True)
    return data, "ptq-selective" if len(report["rounds"]) > 1 else "ptq"


def check_delegates(path: Path, targets: list[str]) -> None:
    """The delegate checks for a fresh model: printed, and written as compat_<target>.json."""
    from tfpipe import delegates

    for target in targets:
        report = delegates.check(path, target)
        written = delegates.write(report, path)
        print("\n".join(delegates.summary_lines(report)) + f"\n  ({written.name})", flush=True)
