"""Two quantization engines side by side on the same trained float models, measured in one run by
the evaluator (tfpipe.evaluate) on each run's full evaluation split (issue 25).

    python -m tfpipe.run --config configs/quickstart.yaml                    # the three runs, once
    python -m tfpipe.run --config configs/detection/yolov3_tiny.yaml
    python -m tfpipe.run --config configs/segmentation/pspnet.yaml
    python benchmarks/quantizers.py [--workdir runs] [--budget 0.5] [--configs ...]

Per run, from its float Keras model (and its QAT model for the first row), into a scratch copy of
the run (the run itself is not touched):

- qat        tfpipe: quantization-aware training, then TFLiteConverter (what `tfpipe run` ships)
- ptq        TFLiteConverter's post-training int8 on the run's calibration images
- litert     the LiteRT Quantizer's static_wi8_ai8 recipe on the fp32 file, same calibration images
- selective  TFLiteConverter's --max-drop search (int8 -> float per tensor), at --budget points
- mixed      the LiteRT Quantizer's --max-drop search (int8 -> int16 or float per op), same budget
- mixed_float  the same search with the float move only: what int16 activations add
- and the I/O variants of qat and litert (uint8, int8, float interface: the same graph inside);
  the others have int8 I/O, the cpu target's default (convert.io_dtype auto)

The two searches score on the run's held-out split (for FashionScenes that is the evaluation split
itself: it has no other); detectors have no search (their metric needs the post-processing op,
which the searches do not convert); segmenters are scored by the argmax of their probabilities in
every variant (TFLiteConverter's search cannot convert the in-graph class_map). Then every file is
evaluated together: metric delta against the float Keras model, size and median latency (1 thread,
XNNPACK) relative to fp32. Other work on the machine makes latencies noisy: run it alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import tfpipe  # noqa: E402,F401  (Keras-2 switch before TensorFlow)

CONFIGS = ["configs/quickstart.yaml", "configs/detection/yolov3_tiny.yaml", "configs/segmentation/pspnet.yaml"]


def quantized_files(cfg, run, splits, budget: float, out: Path) -> dict[str, dict]:
    """Every variant's bytes written to `out`/model_<name>.tflite; returns name -> facts."""
    from tfpipe import models, tasks
    from tfpipe.convert import litert, mixed, selective
    from tfpipe.convert.tflite import layer_tensors, to_tflite
    from tfpipe.models.registry import MAIN_OUTPUT
    from tfpipe.qat import load_qat_model
    from tfpipe.train.trainer import load_float_model

    task = tasks.of(cfg)
    spec = cfg.preprocess_spec()
    model = load_float_model(run)
    calibration = splits.calibration_inputs(spec, cfg.convert.calibration_samples, cfg.train.seed)
    post = task.postprocess(cfg, len(splits.class_names))
    float_layers = models.registry.float_layers(cfg.model)
    options = {"class_map": cfg.convert.class_map, "postprocess": post, "float_layers": float_layers}
    # detection outputs are the post-processing op's floats whatever the input's type
    def io_label(io: str) -> str:
        return f"{io} in, float out" if post is not None and io != "float" else io

    facts: dict[str, dict] = {}

    def put(name: str, data: bytes, how: str, io: str, seconds: float) -> None:
        (out / f"model_{name}.tflite").write_bytes(data)
        facts[name] = {"how": how, "io_dtype": io, "seconds": round(seconds, 1)}

    def timed(make):
        start = time.perf_counter()
        return make(), time.perf_counter() - start

    fp32, s = timed(lambda: to_tflite(model, "none", "float", None, **options))
    put("fp32", fp32, "TFLiteConverter float", "float", s)
    qat_model = load_qat_model(run.qat_model) if run.qat_model.is_file() else None
    keep_float = {name: "float" for name in layer_tensors(fp32, float_layers)}  # as TFLiteConverter does
    for io in ("uint8", "int8", "float"):
        if qat_model is not None:
            data, s = timed(lambda io=io: to_tflite(qat_model, "int8", io, calibration, **options))
            put(f"qat_{io}", data, "QAT + TFLiteConverter", io_label(io), s)
        data, s = timed(lambda io=io: litert.quantize(fp32, "int8", calibration, io, float_outputs=post is not None,
                                                      precision=keep_float))
        put(f"litert_{io}", data, "LiteRT Quantizer static_wi8_ai8", io_label(io), s)
    data, s = timed(lambda: to_tflite(model, "int8", "int8", calibration, **options))
    put("ptq_int8", data, "TFLiteConverter PTQ", io_label("int8"), s)

    if task.selective:
        inputs, labels = splits.held_out_arrays(spec)

        def score(outputs: dict) -> float:
            return task.held_out_score(outputs, labels)

        float_score = score({MAIN_OUTPUT: model.predict(inputs, batch_size=64, verbose=0)})
        start = time.perf_counter()
        data, report = selective.select(model, score, "int8", calibration, inputs, float_score, budget)
        put("selective_int8", data, f"TFLiteConverter --max-drop {budget:g}", "int8", time.perf_counter() - start)
        facts["selective_int8"]["search"] = {"kept_float": report["kept_float_layers"], "met": report["met"],
                                              "rounds": len(report["rounds"])}
        for name, moves in (("mixed_float_int8", ("float",)), ("mixed_int8", mixed.MOVES)):
            start = time.perf_counter()
            data, report = mixed.search(fp32, calibration, lambda d: selective.measure(d, score, inputs), inputs,
                                        float_score, budget, "int8", moves=moves)
            chosen = report["visited"][report["chosen"]]
            put(name, data, f"LiteRT Quantizer --max-drop {budget:g}, int8 -> {' -> '.join(moves)}",
                chosen["io_dtype"], time.perf_counter() - start)
            facts[name]["search"] = {"visited": len(report["visited"]), "met": report["met"],
                                     "precision": chosen["precision"], "held_out_samples": len(inputs),
                                     "moves": list(moves)}
            print("\n".join(mixed.describe(report, task.gate.label)), flush=True)
    return facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("runs"))
    parser.add_argument("--configs", nargs="+", default=CONFIGS)
    parser.add_argument("--budget", type=float, default=0.5, help="points, for the two searches")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure here")
    args = parser.parse_args()

    from tfpipe import tasks
    from tfpipe.config import load_config
    from tfpipe.evaluate.parity import evaluate
    from tfpipe.rundir import RunDir
    from tfpipe.runtime.timing import interleaved_latency

    results = {}
    for config in args.configs:
        cfg = load_config(REPO / config if not Path(config).is_absolute() else Path(config))
        # segmenters are scored by the argmax of their probabilities: TFLiteConverter's search cannot
        # convert the in-graph class_map output (convert/converter.py), so no variant has it
        cfg = dataclasses.replace(cfg, convert=dataclasses.replace(cfg.convert, class_map=False))
        source = RunDir.for_config(cfg, args.workdir)
        if not source.float_model.is_file() or not source.model_json.is_file():
            sys.exit(f"{source.root}: no trained and converted run; first: python -m tfpipe.run --config {config} "
                     f"--workdir {args.workdir}")
        with tempfile.TemporaryDirectory() as scratch:
            copy = Path(scratch) / source.root.name
            shutil.copytree(source.root, copy, ignore=shutil.ignore_patterns("eval", "explain", "*.tflite", ".lock"))
            run = RunDir.for_config(cfg, Path(scratch))
            splits = tasks.of(cfg).load_splits(cfg)
            print(f"\n== {cfg.name}: quantizing", flush=True)
            facts = quantized_files(cfg, run, splits, args.budget, run.export)
            files = [run.export / f"model_{name}.tflite" for name in facts]
            report = evaluate(cfg, run, models=files, splits=splits, max_drop=100).report
            print("Timing every file in interleaved rounds", flush=True)
            sample = splits.evaluation_arrays(cfg.preprocess_spec())[0][:1]
            latency = {f.stem.removeprefix("model_"): ms for f, ms in interleaved_latency(files, sample).items()}
        rows = [{**row, **facts.get(row["name"], {}), "interleaved_ms": latency.get(row["name"])}
                for row in report["models"]]
        results[cfg.name] = {"task": cfg.task, "metric": tasks.of(cfg).gate.metric,
                             "samples": report["dataset"]["samples"], "split": report["dataset"]["split"],
                             "rows": rows}
        print_table(cfg.name, results[cfg.name])
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))


def print_table(name: str, result: dict) -> None:
    metric = result["metric"]
    print(f"\n{name}: {metric} on {result['samples']:,} {result['split']} images; size and latency x fp32 "
          "(1 thread; latency: median of interleaved rounds)")
    print(f"| model | how | I/O | {metric} | Δ pts | size× | lat× | ms |")
    print("|---|---|---|---|---|---|---|---|")
    fp32 = next(r["interleaved_ms"] for r in result["rows"] if r["name"] == "fp32")
    for row in result["rows"]:
        if row["status"] != "ok":
            print(f"| {row['name']} | failed: {'; '.join(row.get('errors', []))} |")
            continue
        if row["name"] == "float":
            print(f"| float | Keras | float | {row['metrics'][metric]:.4f} | - | - | - | - |")
            continue
        print(f"| {row['name']} | {row.get('how', '')} | {row.get('io_dtype', '')} | {row['metrics'][metric]:.4f} | "
              f"{row['delta_points'][metric]:+.2f} | {row.get('size_ratio_fp32', 1):.3f} | "
              f"{row['interleaved_ms'] / fp32:.3f} | {row['interleaved_ms']:.3f} |")


if __name__ == "__main__":
    main()
