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
from tfpipe.convert.tflite import layer_tensors, to_tflite
from tfpipe.data.pipeline import Splits
from tfpipe.errors import TfpipeError
from tfpipe.models.registry import MAIN_OUTPUT
from tfpipe.rundir import RunDir
from tfpipe.runtime import Worker, collapse
from tfpipe.runtime.contract import (
    ENGINES,
    IO_DTYPES,
    QUANT_MODES,
    TARGET_DEFAULT,
    TARGET_IO,
    PreprocessSpec,
    model_label,
    target_modes,
)


def io_dtype_for(cfg: Config, quantize: str, requested: str | None = None, target: str = "cpu") -> str:
    """Integer I/O applies to int8 models only; every other mode keeps float I/O unless asked.
    convert.io_dtype `auto` is the fastest interface the deployment target accepts."""
    if not QUANT_MODES[quantize].integer_io:
        return requested or "float"
    configured = requested or cfg.convert.io_dtype
    return TARGET_IO[target] if configured == "auto" else configured


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


def engine_for(quantize: str, requested: str | None, configured: str = "converter") -> str:
    """The engine that makes `quantize`: the one asked for (--engine), which must make that mode,
    else the config's convert.engine when it does, else the mode's own (weight_int8: litert). fp32
    is TFLiteConverter's always: it is what the LiteRT Quantizer starts from."""
    engines = QUANT_MODES[quantize].engines
    if requested is not None and requested not in ENGINES:
        raise TfpipeError(f"--engine: {requested!r} is not accepted", f"use one of: {', '.join(ENGINES)}")
    if quantize == "none" or (requested is None and configured not in engines):
        return engines[0]
    engine = requested or configured
    if engine not in engines:
        raise TfpipeError(f"--engine {engine} --quantize {quantize}: the {engine} engine does not make {quantize} "
                          "models", f"use --engine {' or '.join(engines)} for {quantize}")
    return engine


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
                   io_dtype: str, source: str, path: Path, info: dict, splits: Splits | None,
                   engine: str = "converter", rewrites: list[str] = ()) -> None:
    """model.json (the device contract) and labels.txt, updated atomically."""
    task = tasks.of(cfg)
    models = dict(bundle.get("models", {}))
    models[model_label(quantize, engine, tpu_build=bool(rewrites))] = {
        "file": path.name,
        "quantize": quantize,
        "engine": engine,
        "source": source,
        "io_dtype": io_dtype,
        "size_bytes": path.stat().st_size,
        "runtime": info["backend"],
        "inputs": info["inputs"],
        "outputs": info["outputs"],
        "ops": sorted(set(info["graph"]["ops"])),
        "activation_dtypes": info["graph"]["activation_dtypes"],
        "dynamic_tensors": info["graph"]["dynamic_tensors"],
        **({"edgetpu_rewrites": list(rewrites)} if rewrites else {}),
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
            debug_quant: bool = False, images: tuple[np.ndarray, tuple[str, ...]] | None = None,
            engine: str | None = None, target: str = "cpu") -> Path:
    """Write export/model_<label>.tflite from the run's trained model and update the bundle.

    With the converter engine (TFLiteConverter), int8 comes from the QAT model when `from_qat` and
    the run has one, else from calibration; `max_drop` (points) makes it selective int8
    (convert/selective.py), `debug_quant` writes the per-layer quantization error table first.
    With the litert engine (the LiteRT Quantizer) the run's fp32 conversion is quantized by recipe,
    and `max_drop` searches mixed int8/int16/float precision (convert/mixed.py).
    `images` (preprocessed calibration inputs, class names) replaces the config's dataset for an
    imported model calibrated on a plain folder. `target` resolves convert.io_dtype `auto`."""
    from tfpipe.qat import load_qat_model
    from tfpipe.train.trainer import load_float_model

    io_dtype = io_dtype_for(cfg, quantize, io_dtype, target)
    check_request(quantize, io_dtype)
    engine = engine_for(quantize, engine, cfg.convert.engine)
    if engine == "litert" and debug_quant:
        raise TfpipeError("--debug-quant is TensorFlow's QuantizationDebugger, for the converter engine",
                          "leave it out: --engine litert --max-drop prints its own per-op noise ranking")
    task = tasks.of(cfg)
    bundle = _read_bundle(run)  # a broken model.json stops us before anything is replaced
    if images is None:
        splits = splits or task.load_splits(cfg)
    elif max_drop is not None or debug_quant:
        raise TfpipeError("--max-drop/--debug-quant need labelled held-out data",
                          "give --calibration-data a config (its dataset's validation split is used)")
    selective = max_drop is not None and quantize == "int8"
    use_qat = (engine == "converter" and from_qat and not selective and QUANT_MODES[quantize].from_qat
               and run.qat_model.is_file())
    model = load_qat_model(run.qat_model) if use_qat else load_float_model(run)
    spec = cfg.preprocess_spec()
    calibration = None
    if QUANT_MODES[quantize].calibrated:
        calibration = images[0] if images is not None else splits.calibration_inputs(
            spec, cfg.convert.calibration_samples, cfg.train.seed)
    rewrites, class_map = [], cfg.convert.class_map
    if target == "edgetpu":
        model, class_map, rewrites, use_qat = _edgetpu_build(run, model, use_qat, calibration, class_map)
    source = "qat" if use_qat else ("ptq" if QUANT_MODES[quantize].calibrated else "float")
    _warn_constant(calibration if source != "qat" else None)
    class_names = images[1] if images is not None else splits.class_names
    postprocess = task.postprocess(cfg, len(class_names))
    float_layers = models.registry.float_layers(cfg.model)
    data = None
    if engine == "litert":
        data, source, io_dtype = _litert(cfg, run, model, splits, spec, quantize, io_dtype, calibration, max_drop,
                                         postprocess, float_layers, class_map)
    elif (selective or debug_quant) and quantize == "int8" and not use_qat:
        data, source = _debugged_int8(cfg, run, model, splits, spec, io_dtype, calibration, max_drop, debug_quant)
    if data is None:
        print(f"Converting the {source} model to {QUANT_MODES[quantize].label} TFLite"
              + (f" (calibrating on {len(calibration)} images)" if calibration is not None
                 and source != "qat" else ""), flush=True)
        data = to_tflite(model, quantize, io_dtype, calibration, class_map=class_map,
                         postprocess=postprocess, float_layers=float_layers)
    return _publish(cfg, run, bundle, data, quantize, engine, io_dtype, source, class_names,
                    splits if images is None else None, rewrites)


def _edgetpu_build(run: RunDir, model, use_qat: bool, calibration,
                   class_map: bool | str) -> tuple[object, bool | str, list[str], bool]:
    """(model, class_map setting, rewrites, use_qat) for --target edgetpu, whichever engine
    quantizes: the run's model re-expressed in ops the Edge TPU maps (delegates/rewrite.py), from
    the QAT model's fine-tuned weights when int8 would have come from it (the rewritten graph is
    then calibrated: a QAT model cannot be rewritten), or unchanged when no rewrite applies; a
    segmenter's class map alone."""
    from tfpipe.delegates.rewrite import edgetpu_target
    from tfpipe.qat.model import float_twin
    from tfpipe.train.trainer import load_float_model

    base = float_twin(load_float_model(run), model) if use_qat else model
    rewritten, class_map, changes, lines = edgetpu_target(base, calibration, class_map)
    if changes:
        print(f"Edge TPU build ({len(changes)} rewrites of the same function; weights from the "
              f"{'QAT' if use_qat else 'float'} model):\n  " + "\n  ".join(lines[:len(changes)]), flush=True)
    for line in lines[len(changes):]:
        print(f"Edge TPU build: {line}", flush=True)
    if not changes:
        return model, class_map, lines, use_qat
    return rewritten, class_map, lines, False


def _warn_constant(calibration) -> None:
    sentence = None if calibration is None else collapse.constant_calibration(calibration)
    if sentence:
        print(f"WARNING: {sentence}", flush=True)


def _publish(cfg: Config, run: RunDir, bundle: dict, data: bytes, quantize: str, engine: str, io_dtype: str,
             source: str, class_names: tuple[str, ...], splits: Splits | None, rewrites: list[str] = ()) -> Path:
    """The model into export/ (once the runtime has loaded it), the bundle updated, and its static
    checks printed: shared outputs, the delegates of its mode's targets. `rewrites`: an Edge TPU
    build's (model_<mode>_tpu.tflite, beside the CPU build)."""
    path = run.tflite(quantize, engine, tpu_build=bool(rewrites))
    with io.atomic_path(path) as tmp:  # renamed into export/ only once the runtime has loaded it
        tmp.write_bytes(data)
        with Worker(tmp, threads=1) as worker:
            info = worker.info
    _update_bundle(cfg, run, bundle, class_names, quantize, io_dtype, source, path, info, splits, engine, rewrites)
    print(f"Wrote {path} ({len(data) / 1024:.1f} KiB)", flush=True)
    for warning in collapse.shared_outputs(path):
        print(f"WARNING: {warning}", flush=True)
    check_delegates(path, check_targets(quantize))
    return path


def tflite_engine(quantize: str, requested: str | None) -> str:
    """The engine of a mode of `convert --tflite`: the LiteRT Quantizer (fp32 is the file itself)."""
    from tfpipe.convert import litert

    if quantize == "none":
        return "converter"
    if requested == "converter" or quantize not in litert.RECIPES:
        raise TfpipeError(f"--tflite: TFLiteConverter starts from a Keras model, so --engine converter and --quantize "
                          f"fp16 do not apply to a .tflite (asked: {requested or 'litert'}, {quantize})",
                          f"use --quantize {' or '.join(litert.RECIPES)}")
    return engine_for(quantize, "litert")


def quantize_tflite(cfg: Config, quantize: str, io_dtype: str | None, fp32: bytes, images: np.ndarray | None,
                    engine: str | None = None, target: str = "cpu") -> dict:
    """`convert --tflite`: a third-party float model (convert/tflite_import.py) quantized in memory
    by the LiteRT Quantizer, the only engine that starts from a .tflite; nothing is written (the
    import writes its run only once every mode has been made: `publish_tflite`). `images`:
    preprocessed calibration inputs of a folder; None calibrates on the config's dataset."""
    from tfpipe.convert import litert

    io_dtype = io_dtype_for(cfg, quantize, io_dtype, target)
    check_request(quantize, io_dtype)
    engine = tflite_engine(quantize, engine)
    splits = None
    calibration = images
    if QUANT_MODES[quantize].calibrated and images is None:
        splits = tasks.of(cfg).load_splits(cfg)
        calibration = splits.calibration_inputs(cfg.preprocess_spec(), cfg.convert.calibration_samples,
                                                cfg.train.seed)
    _warn_constant(calibration if QUANT_MODES[quantize].calibrated else None)
    if quantize == "none":
        data, source = fp32, "imported"
    else:
        print(f"Quantizing to {QUANT_MODES[quantize].label} with the LiteRT Quantizer "
              f"({litert.RECIPES[quantize]}" + (f", calibrating on {len(calibration)} images" if
                                                 QUANT_MODES[quantize].calibrated else "") + ")", flush=True)
        data = litert.quantize(fp32, quantize, calibration if QUANT_MODES[quantize].calibrated else None, io_dtype)
        source = "ptq" if QUANT_MODES[quantize].calibrated else "float"
    return {"data": data, "quantize": quantize, "engine": engine, "io_dtype": io_dtype, "source": source,
            "splits": splits}


def publish_tflite(cfg: Config, run: RunDir, made: dict, class_names: tuple[str, ...]) -> Path:
    """One of `quantize_tflite`'s models into the imported run's export/ and bundle."""
    return _publish(cfg, run, _read_bundle(run), made["data"], made["quantize"], made["engine"], made["io_dtype"],
                    made["source"], class_names, made["splits"])


def _litert(cfg: Config, run: RunDir, model, splits: Splits | None, spec: PreprocessSpec, quantize: str,
            io_dtype: str, calibration: np.ndarray | None, max_drop: float | None, postprocess,
            float_layers: tuple[str, ...], class_map: bool | str) -> tuple[bytes, str, str]:
    """--engine litert: the float model converted to fp32 by TFLiteConverter (as model_fp32, with
    `class_map` as to_tflite takes it), then quantized by the LiteRT Quantizer's recipe, or by the
    mixed-precision search under --max-drop. Returns the bytes, their source and their I/O dtype (a
    mixed model may have float I/O)."""
    from tfpipe.convert import litert, mixed, selective

    fp32 = to_tflite(model, "none", "float", None, class_map=class_map, postprocess=postprocess)
    label = QUANT_MODES[quantize].label
    if max_drop is None or quantize != "int8":
        # the layers a family keeps float (Faster R-CNN's box arithmetic) stay float here too
        precision = {name: "float" for name in layer_tensors(fp32, float_layers)}
        print(f"Quantizing the fp32 model to {label} with the LiteRT Quantizer ({litert.RECIPES[quantize]}"
              + (f", calibrating on {len(calibration)} images" if calibration is not None else "") + ")", flush=True)
        data = litert.quantize(fp32, quantize, calibration, io_dtype, float_outputs=postprocess is not None,
                               precision=precision)
        return data, "ptq" if QUANT_MODES[quantize].calibrated else "float", io_dtype
    task = tasks.of(cfg)
    inputs, labels = splits.held_out_arrays(spec)

    def score(outputs: dict) -> float:
        return task.held_out_score(outputs, labels)

    float_score = score({MAIN_OUTPUT: model.predict(inputs, batch_size=64, verbose=0)})
    print(f"Searching mixed int8/int16/float precision with the LiteRT Quantizer (calibrating on {len(calibration)} "
          f"images, scoring on {len(inputs)} held-out)", flush=True)
    data, report = mixed.search(fp32, calibration, lambda candidate: selective.measure(candidate, score, inputs),
                                inputs, float_score, max_drop, io_dtype)
    io.write_json(run.export / f"mixed_precision_{label}_litert.json", report)
    print("\n".join(mixed.describe(report, task.gate.label)), flush=True)
    if not report["met"]:
        _point_to_qat(run, max_drop)
    chosen = report["visited"][report["chosen"]]
    return data, "ptq-mixed" if chosen["precision"] else "ptq", chosen["io_dtype"]


def _point_to_qat(run: RunDir, max_drop: float) -> None:
    print(f"Post-training int8 misses --max-drop {max_drop:g}: quantization-aware training usually closes the "
          f"gap: python -m tfpipe.qat --config {run.root / 'config.yaml'} --workdir {run.root.parent}, "
          "then convert without --ptq", flush=True)


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
        _point_to_qat(run, max_drop)
    return data, "ptq-selective" if len(report["rounds"]) > 1 else "ptq"


def check_delegates(path: Path, targets: list[str]) -> None:
    """The delegate checks for a fresh model: printed, and written as compat_<target>.json."""
    from tfpipe import delegates

    for target in targets:
        report = delegates.check(path, target)
        written = delegates.write(report, path)
        print("\n".join(delegates.summary_lines(report)) + f"\n  ({written.name})", flush=True)
