"""Train every zoo config and write docs/zoo.md from what the runs measured.

    python scripts/zoo.py run [NAME ...]   # train -> QAT -> convert -> evaluate, cheapest first;
                                           # a run whose eval/parity.json exists is kept
    python scripts/zoo.py table            # docs/zoo.md from configs/zoo/*.yaml,
                                           # configs/segmentation/*.yaml,
                                           # configs/detection/*.yaml and their runs
    python scripts/zoo.py edgetpu          # docs/edgetpu.md: every config's CPU build and Edge TPU
                                           # build (convert --target edgetpu) side by side

`make zoo` does both. Every figure in the table is read from the run's own files (parity.json from
the evaluator, the config that was trained); nothing is typed in by hand. A family without a
finished run gets a row that says so.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs" / "zoo"
SEGMENTATION = ROOT / "configs" / "segmentation"
DETECTION = ROOT / "configs" / "detection"
# Cheapest first (seconds per training step measured at batch 128, 32x32x1, on a 2-core CPU), so
# an interrupted `run` leaves the most rows filled.
ORDER = ["mobilenet_v1_050", "shufflenet_v1_g3", "shufflenet_v2_10", "mobilenet_v2_075", "alexnet", "googlenet",
         "resnet18", "se_resnet18", "darknet19", "darknet53", "vgg16_bn", "resnext50_32x4d"]
SEGMENTATION_ORDER = ["segnet_lite", "unet_lite", "deeplab_v3_plus", "pspnet", "fcn8s"]
DETECTION_ORDER = ["yolov3_tiny", "ssdlite_mnv2", "yolov3_mnv2", "yolov2_tiny", "faster_rcnn_resnet18"]


def _ordered(folder: Path, order: list[str]) -> list[Path]:
    found = {p.stem: p for p in folder.glob("*.yaml") if not p.stem.startswith("_")}
    missing = set(found) - set(order)
    if missing:
        raise SystemExit(f"scripts/zoo.py: add {sorted(missing)} to the order of {folder.name}")
    return [found[name] for name in order if name in found]


def configs() -> list[Path]:
    """Classification configs, then segmentation ones, then detection ones, each cheapest first."""
    return (_ordered(CONFIGS, ORDER) + _ordered(SEGMENTATION, SEGMENTATION_ORDER)
            + _ordered(DETECTION, DETECTION_ORDER))


def run_dir(path: Path, workdir: Path) -> Path:
    from tfpipe.config import load_config

    return workdir / load_config(path).name


def run(names: list[str], workdir: Path) -> int:
    chosen = [p for p in configs() if not names or p.stem in names]
    unknown = set(names) - {p.stem for p in chosen}
    if unknown:
        known = ", ".join(ORDER + SEGMENTATION_ORDER + DETECTION_ORDER)
        print(f"scripts/zoo.py: unknown config {sorted(unknown)} (known: {known})", file=sys.stderr)
        return 2
    failed = []
    for path in chosen:
        out = run_dir(path, workdir)
        if (out / "eval" / "parity.json").is_file():
            print(f"{path.stem}: done already ({out})", flush=True)
            continue
        out.mkdir(parents=True, exist_ok=True)
        print(f"{path.stem}: training, log in {out / 'zoo.log'}", flush=True)
        start = time.perf_counter()
        with (out / "zoo.log").open("a") as log:
            code = subprocess.call([sys.executable, "-m", "tfpipe.run", "--config", str(path), "--workdir",
                                    str(workdir)], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        seconds = time.perf_counter() - start
        (out / "zoo_timing.json").write_text(json.dumps({"seconds": seconds, "exit": code}))
        print(f"{path.stem}: exit {code} after {seconds / 60:.1f} min", flush=True)
        if code not in (0, 1):  # 1 is a failed parity gate: still a measured row
            failed.append(path.stem)
    return 1 if failed else 0


def _minutes(out: Path) -> str:
    timing = out / "zoo_timing.json"
    return f"{json.loads(timing.read_text())['seconds'] / 60:.0f}" if timing.is_file() else "?"


def _parity(out: Path, empty: int) -> tuple[dict | None, str | None]:
    """(models of the run's parity.json by name, None), or (None, the row's tail saying why not,
    followed by `empty` empty cells)."""
    parity = out / "eval" / "parity.json"
    if not parity.is_file():
        return None, "not run yet" + " |" * (empty + 1)
    report = json.loads(parity.read_text())
    rows = {m["name"]: m for m in report["models"]}
    if rows.get("int8", {}).get("status") != "ok":
        return None, f"int8 failed: {rows.get('int8', {}).get('errors')}" + " |" * (empty + 1)
    rows["gate"] = report["gate"]
    return rows, None


def _delta(rows: dict, metric: str) -> str:
    """int8's change in points, marked when the run's parity gate failed."""
    delta = f"{rows['int8']['delta_points'][metric]:+.2f}"
    return delta if rows["gate"]["passed"] else f"{delta} (gate {rows['gate']['max_drop_points']:g} failed)"


def _edge_tpu(out: Path) -> str:
    """The Edge TPU checker's prediction for the run's int8 model: shares of ops and MACs mapped,
    and the op (and Keras layer) where the compiler would cut the graph."""
    from tfpipe.delegates.edgetpu import percent, predict
    from tfpipe.runtime.graph import read_graph

    model = out / "export" / "model_int8.tflite"
    if not model.is_file():
        return "?"
    report = predict(read_graph(model))
    cell = f"{percent(report['ops']['share'], 0)} ops, {percent(report['macs']['share'])} MACs"
    first, before = report["first_unmapped"], report["before_postprocess"]
    if before:  # a detector's post-processing op, a segmenter's argmax: on the CPU on every Edge TPU
        cell += f"; {percent(before['share'], 0)} of the {before['total']} ops before {before['tail']}"
    if first and not (before and first["index"] >= before["total"]):
        cell += f"; cut at {first['op']}" + (f" ({first['keras_layers'][0]})" if first["keras_layers"] else "")
    return cell


def _row(path: Path, workdir: Path) -> str:
    from tfpipe import models
    from tfpipe.config import ModelConfig, load_config
    from tfpipe.models.summary import multiply_adds

    cfg = load_config(path)
    published = models.build(ModelConfig(cfg.model.name, (224, 224), 3, cfg.model.args), "classification", 1000)
    here = models.build(cfg.model, "classification", 10)
    sizes = (f"{published.count_params() / 1e6:.1f}M | {multiply_adds(published) / 1e9:.2f}G | "
             f"{here.count_params() / 1e6:.2f}M | {multiply_adds(here) / 1e6:.1f}M")
    label = cfg.model.name + "".join(f" {k}={v}" for k, v in cfg.model.args.items() if k != "priors")
    if "priors" in cfg.model.args:  # the values are in the config; the table says where they came from
        label += f" ({len(cfg.model.args['priors'])} k-means priors)"
    images = (cfg.data.train_limit or 60000) - cfg.data.val_samples
    out = workdir / cfg.name
    budget = f"{cfg.train.epochs} x {images // 1000}k + {_qat(out, cfg.qat.epochs)}"
    rows, missing = _parity(out, 7)
    if missing:
        return f"| {label} | {sizes} | {budget} | {missing}"
    float_top1, fp32, int8 = rows["float"]["metrics"]["top1"], rows["fp32"], rows["int8"]
    return (f"| {label} | {sizes} | {budget} | {float_top1:.4f} | {fp32['metrics']['top1']:.4f} | "
            f"{int8['metrics']['top1']:.4f} | {_delta(rows, 'top1')} | "
            f"{fp32['latency_ms']['median']:.2f} | {int8['latency_ms']['median']:.2f} | {_edge_tpu(out)} | "
            f"{_minutes(out)} |")


def _qat(out: Path, epochs: int) -> str:
    """The budget's QAT cell, marked † when the run's last QAT started its activation ranges at
    tfmot's [-6, 6] (made before tfpipe.qat.calibrate_ranges; its zoo.log lacks the line)."""
    log = out / "zoo.log"
    text = log.read_text(errors="replace") if log.is_file() else ""
    last = text.rfind("running quantization-aware training first")
    old_ranges = last >= 0 and "activation ranges at the float model's" not in text[last:]
    return f"QAT {epochs}" + (" †" if old_ranges else "")


def _scene_row_start(path: Path, task: str, num_classes: int, workdir: Path) -> tuple[str, Path]:
    """The first cells of a FashionScenes row (model, input, params, MACs, budget) and its run folder."""
    from tfpipe import models
    from tfpipe.config import load_config
    from tfpipe.models.summary import multiply_adds

    cfg = load_config(path)
    here = models.build(cfg.model, task, num_classes)
    h, w = cfg.model.input_size
    label = cfg.model.name + "".join(f" {k}={v}" for k, v in cfg.model.args.items() if k != "priors")
    if "priors" in cfg.model.args:  # the values are in the config; the table says where they came from
        label += f" ({len(cfg.model.args['priors'])} k-means priors)"
    train = cfg.data.train_limit or cfg.data.scenes.train
    return (f"| {label} | {h}x{w} | {here.count_params() / 1e6:.2f}M | {multiply_adds(here) / 1e9:.2f}G | "
            f"{cfg.train.epochs} x {train / 1000:g}k + {_qat(workdir / cfg.name, cfg.qat.epochs)} |"), Path(cfg.name)


def _segmentation_row(path: Path, workdir: Path) -> str:
    from tfpipe import tasks
    from tfpipe.data.fashion_mnist import CLASS_NAMES

    classes = tasks.get("segmentation").class_names(CLASS_NAMES)
    start, name = _scene_row_start(path, "segmentation", len(classes), workdir)
    out = workdir / name
    rows, missing = _parity(out, 9)
    if missing:
        return f"{start} {missing}"
    fp32, int8 = rows["fp32"], rows["int8"]
    return (f"{start} {rows['float']['metrics']['miou']:.4f} | "
            f"{fp32['metrics']['miou']:.4f} | {fp32['delta_points']['miou']:+.2f} | {int8['metrics']['miou']:.4f} | "
            f"{_delta(rows, 'miou')} | {int8['agreement_pixels']:.4f} | "
            f"{fp32['latency_ms']['median']:.1f} | {int8['latency_ms']['median']:.1f} | {_edge_tpu(out)} | "
            f"{_minutes(out)} |")


def _detection_row(path: Path, workdir: Path) -> str:
    start, name = _scene_row_start(path, "detection", 10, workdir)
    out = workdir / name
    rows, missing = _parity(out, 11)
    if missing:
        return f"{start} {missing}"
    float_metrics, fp32, int8 = rows["float"]["metrics"], rows["fp32"], rows["int8"]
    return (f"{start} {float_metrics['map']:.4f} | {float_metrics['map50']:.4f} | "
            f"{fp32['metrics']['map']:.4f} | {fp32['delta_points']['map']:+.2f} | {int8['metrics']['map']:.4f} | "
            f"{int8['metrics']['map50']:.4f} | {_delta(rows, 'map')} | {int8['agreement_boxes']:.4f} | "
            f"{fp32['latency_ms']['median']:.1f} | {int8['latency_ms']['median']:.1f} | {_edge_tpu(out)} | "
            f"{_minutes(out)} |")


HEADER = """# The classification zoo on Fashion-MNIST

Made by `python scripts/zoo.py table` from the runs of `python scripts/zoo.py run` (`make zoo`);
rerun both to reproduce. Every accuracy is top-1 on the full 10,000-image Fashion-MNIST test
split, measured by the evaluator (`tfpipe.evaluate`): float is the Keras model, fp32 and int8 are
the TFLite files run by ai-edge-litert; int8 is full-integer (uint8 input and output) after one
epoch of quantization-aware training. Latency is the median of 200 single-image runs at one
thread on the 2-core CPU that made the table ({cpu}), measured inside the run's evaluation: a run
evaluated while other work shared the CPU reads high.

Sizes: params and multiply-adds at 224x224x3 with 1,000 classes (the published setting, checked
within 2 % of the papers by tests/unit/test_zoo.py), then at the configured 32x32x1 with 10
classes. Budget: training epochs x training images (5,000 are held out for validation), then
QAT epochs; the slowest families train on a subset to fit the CPU. Minutes: wall time of the
whole run (train, QAT, convert, evaluate); other work may have shared the CPU. QAT starts every
activation range at the float model's (tfpipe.qat.calibrate_ranges); † marks a run whose QAT
started them at tfmot's [-6, 6] instead (made before that change; rerun it to update the row).

Edge TPU: the static checker's prediction for the int8 model (`python -m tfpipe.check`; Coral's
model requirements and op table, no compiler here): the share of ops and of multiply-adds the
compiler would map, and the first op it cannot map, where it cuts the graph (everything after it
runs on the CPU), with the Keras layer behind it. This is the CPU build's; the Edge TPU build
that `python -m tfpipe.convert --target edgetpu` converts instead is re-expressed to map whole up
to its CPU tail: [docs/edgetpu.md](edgetpu.md) (`python scripts/zoo.py edgetpu`) has both builds
side by side, and names the families that still stop early.

| model | params 224 | MACs 224 | params 32 | MACs 32 | budget | float | fp32 | int8 QAT | int8 - float (pts) \
| fp32 ms | int8 ms | Edge TPU (predicted) | minutes |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
"""


SEGMENTATION_HEADER = """
# Semantic segmentation on FashionScenes

FashionScenes: real Fashion-MNIST garments composed on photo, noise and gradient backgrounds
(`data.builtin: fashion_scenes`, 128 px, 4,000 train and 500 val scenes), 11 classes (background
and the 10 garments). mIoU is over all 500 val scenes at the model's input size, over labelled
pixels, averaged over the classes present in the labels or the predictions; measured by the
evaluator from the int8 model's own uint8 `class_map` output (the in-graph argmax a device reads)
and from the argmax of the probabilities for float and fp32. Δ columns are mIoU points against the
float Keras model (issue 8's bounds: fp32 within 0.1, int8 within 1.0, goal 0.7); agree is the
share of labelled pixels where the int8 map equals the float map. Latency: median of 200
single-image runs at one thread. Edge TPU: the static checker's prediction, as above. Configs:
configs/segmentation/; params and multiply-adds at the configured input size with 11 classes.

| model | input | params | MACs | budget | float mIoU | fp32 mIoU | fp32 - float (pts) | int8 QAT mIoU \
| int8 - float (pts) | agree | fp32 ms | int8 ms | Edge TPU (predicted) | minutes |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
"""


DETECTION_HEADER = """
# Object detection on FashionScenes

The same 500 val scenes, 10 classes (the garments), boxes at the model's input size. mAP is COCO's
AP@[.5:.95] by pycocotools, mAP@.5 its AP at IoU 0.5, both by the evaluator: the float Keras
model's raw outputs (box encodings relative to anchors; YOLO's decoding is re-expressed so in its
graph, Faster R-CNN's refined boxes are encoded against one unit anchor per proposal) are decoded
and NMS'd by tfpipe.runtime.detection, the .tflite files end in
TFLite_Detection_PostProcess (`convert.postprocess: tflite_op`) and are scored from its
detections (a test shows the two give the same boxes). Δ columns are mAP points against the float
Keras model (issue 7's bounds: fp32 within 0.1, int8 within 1.0, goal 0.5); agree is the share of
the float model's boxes the int8 model reproduces (same class, IoU >= 0.5). Edge TPU: as above,
plus the share of the ops before the post-processing op, which runs on the CPU on every Edge TPU.
Configs: configs/detection/.

| model | input | params | MACs | budget | float mAP | float mAP@.5 | fp32 mAP | fp32 - float (pts) \
| int8 QAT mAP | int8 mAP@.5 | int8 - float (pts) | agree | fp32 ms | int8 ms | Edge TPU (predicted) | minutes |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
"""


def table(workdir: Path, out: Path) -> int:
    cpu = _cpu_name()
    rows = [_row(path, workdir) for path in _ordered(CONFIGS, ORDER)]
    segmentation = [_segmentation_row(path, workdir) for path in _ordered(SEGMENTATION, SEGMENTATION_ORDER)]
    detection = [_detection_row(path, workdir) for path in _ordered(DETECTION, DETECTION_ORDER)]
    out.write_text(HEADER.format(cpu=cpu) + "\n".join(rows) + "\n" + SEGMENTATION_HEADER + "\n".join(segmentation)
                   + "\n" + DETECTION_HEADER + "\n".join(detection) + "\n")
    print(out.read_text())
    return 0


EDGETPU_HEADER = """# Edge TPU builds: the CPU build and the Edge TPU build of every zoo model

Made by `python scripts/zoo.py edgetpu` (nothing typed in by hand). The Edge TPU compiler (v16,
frozen) cuts a graph once, at the first op it cannot map; `python -m tfpipe.convert --target
edgetpu` therefore converts an Edge TPU build, re-expressed by tfpipe/delegates/rewrite.py (exact
in float: LeakyReLU as a frozen PReLU, grouped convolutions split per group, ShuffleNet's shuffle
and the sub-pixel DEPTH_TO_SPACE as frozen 0/1 convolutions, a segmenter's softmax dropped for its
class map; exact in int8: SegNet's max-unpooling, its argmax masks by integer arithmetic).
Mapping: the static checker's prediction (delegates/edgetpu.py, no compiler here) for each
architecture untrained at its configured input size, int8 with random calibration (as
`python -m tfpipe.check --config X --target edgetpu` prints), before a detector's post-processing
op or a segmenter's trailing argmax, which run on the CPU on every Edge TPU. MACs x: the Edge TPU
build's multiply-adds over the CPU build's (a permutation convolution adds some). TPU ms: the mapped
multiply-adds at the Edge TPU's 4 TOPS peak (2 ops per multiply-add), a floor (the transfers are
not included). CPU part ms: the Edge TPU build's ops from its cut on (its CPU tail), cut out of the
file and timed on their own on this machine ({cpu}, 1 thread; a Coral board's Arm cores are
slower), fed what the whole model computes at the cut for each of {images} validation images
(delegates/edgetpu.cpu_part_latency), the median: on the run's trained Edge TPU build when the run
has one, else on the untrained lint model (marked: a detector's post-processing time depends on
how many boxes pass its score threshold). Estimate: TPU ms + CPU part ms. int8 columns: the run's
evaluator figures on its full evaluation split, when the run (`--workdir`) has both builds
evaluated, else kept from this file's row (runs are not kept in git: a row measured earlier keeps
its figures when the table is made again without that run); Δ in points against its float model.

| model | rewrites | CPU build: mapped | cut at | Edge TPU build: mapped | cut at | MACs x | TPU ms |\
 CPU part ms | estimate ms | CPU build int8 | Edge TPU build int8 |
|---|---|---|---|---|---|---|---|---|---|---|---|
"""
TAIL_IMAGES = 16  # validation images the CPU part is timed on


def _mapping(report: dict) -> tuple[str, str]:
    """(ops and MACs mapped, where the graph is cut) of a checker report, counted before the CPU
    tail (a detector's post-processing op, a segmenter's argmax) when there is one."""
    from tfpipe.delegates.edgetpu import percent

    before, first = report["before_postprocess"], report["first_unmapped"]
    counted = before or report["ops"]
    ops = f"{counted['mapped']}/{counted['total']} ops"
    cut = "-" if first is None or (before and first["index"] >= before["total"]) else \
        first["op"] + (f" ({first['keras_layers'][0]})" if first["keras_layers"] else "")
    return f"{ops}, {percent(report['macs']['share'])} MACs", cut


def _build_metric(rows: dict | None, label: str, metric: str) -> str:
    row = (rows or {}).get(label)
    if not row or row.get("status") != "ok":
        return "not evaluated"
    return f"{row['metrics'][metric]:.4f} ({row['delta_points'][metric]:+.2f})"


def _cpu_part_ms(cfg, tflite: Path, trained: bool) -> str:
    """The Edge TPU build's CPU part, timed (delegates/edgetpu.cpu_part_latency) on the first
    TAIL_IMAGES validation images; "0" when it maps whole, "(untrained)" when timed on the lint."""
    import numpy as np

    from tfpipe import tasks
    from tfpipe.delegates.edgetpu import cpu_part, cpu_part_latency, predict
    from tfpipe.runtime.client import WorkerError
    from tfpipe.runtime.graph import read_graph

    graph = read_graph(tflite)
    if not cpu_part(graph, predict(graph))[0]:
        return "0"
    splits = tasks.of(cfg).load_splits(cfg)
    images = splits.val.subset(np.arange(TAIL_IMAGES)).arrays(cfg.preprocess_spec(), splits.targets, TAIL_IMAGES)[0]
    try:
        timed = cpu_part_latency(tflite, images)
    except WorkerError as e:  # one row's failure is written in its cell, not a lost table
        return f"not timed ({e})".replace("|", "/")
    return f"{timed['ms']:.3f}" + ("" if trained else " (untrained)")


def _cpu_name() -> str:
    import platform

    return next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")), platform.processor() or "unknown CPU")


def _edgetpu_rows(text: str) -> dict[str, str]:
    """The table rows of an existing docs/edgetpu.md, by config name."""
    names = {path.stem for path in configs()}
    return {line.split("|")[1].strip(): line for line in text.splitlines()
            if line.startswith("| ") and line.split("|")[1].strip() in names}


def edgetpu(workdir: Path, out: Path, names: list[str]) -> int:
    """docs/edgetpu.md: every config's row, or only the rows of `names`, the others kept as written."""
    from tfpipe import tasks
    from tfpipe.check import lint
    from tfpipe.config import load_config
    from tfpipe.delegates.edgetpu import predict
    from tfpipe.runtime.graph import read_graph

    written = _edgetpu_rows(out.read_text()) if out.is_file() else {}
    rows = dict(written) if names else {}
    for path in configs():
        if names and path.stem not in names:
            continue
        cfg = load_config(path)
        (cpu_file, _), (tpu_file, changes) = lint(cfg), lint(cfg, edgetpu_build=True)
        cpu, tpu = predict(read_graph(cpu_file)), predict(read_graph(tpu_file))
        rewrites = str(len(changes)) if changes else "none"
        parity = run_dir(path, workdir) / "eval" / "parity.json"
        evaluated = {m["name"]: m for m in json.loads(parity.read_text())["models"]} if parity.is_file() else None
        metric = tasks.of(cfg).gate.metric
        (cpu_map, cpu_cut), (tpu_map, tpu_cut) = _mapping(cpu), _mapping(tpu)
        tpu_ms = 2 * tpu["macs"]["mapped"] / 4e12 * 1e3
        trained = run_dir(path, workdir) / "export" / "model_int8_tpu.tflite"
        cpu_ms = _cpu_part_ms(cfg, trained, True) if trained.is_file() else _cpu_part_ms(cfg, tpu_file, False)
        estimate = f"{tpu_ms + float(cpu_ms.split()[0]):.3f}" if cpu_ms[0].isdigit() else "-"
        metrics = [_build_metric(evaluated, 'int8', metric), _build_metric(evaluated, 'int8_tpu', metric)]
        if evaluated is None and path.stem in written:  # the last two cells of the row as written
            metrics = [cell.strip() for cell in written[path.stem].split("|")[-3:-1]]
        rows[path.stem] = (f"| {path.stem} | {rewrites} | {cpu_map} | {cpu_cut} | {tpu_map} | {tpu_cut} | "
                           f"{tpu['macs']['total'] / cpu['macs']['total']:.2f} | {tpu_ms:.3f} | {cpu_ms} | "
                           f"{estimate} | {metrics[0]} | {metrics[1]} |")
        print(rows[path.stem], flush=True)
    lines = [rows[path.stem] for path in configs() if path.stem in rows]
    # what no rewrite reaches yet, read from the rows' Edge TPU cut column rather than written by hand
    stopping = [f"{row.split('|')[1].strip()} at {row.split('|')[6].strip()}" for row in lines
                if row.split("|")[6].strip() != "-"]
    tail = (f"\nEdge TPU builds that still stop before their CPU tail (no rewrite for that op yet): "
            f"{'; '.join(stopping)}.\n" if stopping else "\nEvery Edge TPU build maps whole up to its CPU tail.\n")
    out.write_text(EDGETPU_HEADER.format(cpu=_cpu_name(), images=TAIL_IMAGES) + "\n".join(lines) + "\n" + tail)
    print(f"Wrote {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/zoo.py", description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run").add_argument("names", nargs="*")
    sub.add_parser("table").add_argument("--out", type=Path, default=ROOT / "docs" / "zoo.md")
    tpu = sub.add_parser("edgetpu")
    tpu.add_argument("names", nargs="*")
    tpu.add_argument("--out", type=Path, default=ROOT / "docs" / "edgetpu.md")
    args = parser.parse_args(argv)
    if args.command == "run":
        return run(args.names, args.workdir)
    if args.command == "edgetpu":
        return edgetpu(args.workdir, args.out, args.names)
    return table(args.workdir, args.out)


if __name__ == "__main__":
    sys.exit(main())
