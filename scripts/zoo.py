"""Train every zoo config and write docs/zoo.md from what the runs measured.

    python scripts/zoo.py run [NAME ...]   # train -> QAT -> convert -> evaluate, cheapest first;
                                           # a run whose eval/parity.json exists is kept
    python scripts/zoo.py table            # docs/zoo.md from configs/zoo/*.yaml and runs/zoo_*

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
# Cheapest first (seconds per training step measured at batch 128, 32x32x1, on a 2-core CPU), so
# an interrupted `run` leaves the most rows filled.
ORDER = ["mobilenet_v1_050", "shufflenet_v1_g3", "shufflenet_v2_10", "mobilenet_v2_075", "alexnet", "googlenet",
         "resnet18", "se_resnet18", "darknet19", "darknet53", "vgg16_bn", "resnext50_32x4d"]


def configs() -> list[Path]:
    found = {p.stem: p for p in CONFIGS.glob("*.yaml") if not p.stem.startswith("_")}
    missing = set(found) - set(ORDER)
    if missing:
        raise SystemExit(f"scripts/zoo.py: add {sorted(missing)} to ORDER")
    return [found[name] for name in ORDER if name in found]


def run(names: list[str], workdir: Path) -> int:
    chosen = [p for p in configs() if not names or p.stem in names]
    unknown = set(names) - {p.stem for p in chosen}
    if unknown:
        print(f"scripts/zoo.py: unknown config {sorted(unknown)} (known: {', '.join(ORDER)})", file=sys.stderr)
        return 2
    failed = []
    for path in chosen:
        out = workdir / f"zoo_{path.stem}"
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


def _row(path: Path, workdir: Path) -> str:
    from tfpipe import models
    from tfpipe.config import ModelConfig, load_config
    from tfpipe.models.summary import multiply_adds

    cfg = load_config(path)
    published = models.build(ModelConfig(cfg.model.name, (224, 224), 3, cfg.model.args), "classification", 1000)
    here = models.build(cfg.model, "classification", 10)
    sizes = (f"{published.count_params() / 1e6:.1f}M | {multiply_adds(published) / 1e9:.2f}G | "
             f"{here.count_params() / 1e6:.2f}M | {multiply_adds(here) / 1e6:.1f}M")
    label = cfg.model.name + "".join(f" {k}={v}" for k, v in cfg.model.args.items())
    images = (cfg.data.train_limit or 60000) - cfg.data.val_samples
    budget = f"{cfg.train.epochs} x {images // 1000}k + QAT {cfg.qat.epochs}"
    parity = workdir / cfg.name / "eval" / "parity.json"
    if not parity.is_file():
        return f"| {label} | {sizes} | {budget} | not run yet | | | | | | |"
    report = json.loads(parity.read_text())
    rows = {m["name"]: m for m in report["models"]}
    if rows.get("int8", {}).get("status") != "ok":
        return f"| {label} | {sizes} | {budget} | int8 failed: {rows.get('int8', {}).get('errors')} | | | | | | |"
    float_top1, fp32, int8 = rows["float"]["metrics"]["top1"], rows["fp32"], rows["int8"]
    timing = workdir / cfg.name / "zoo_timing.json"
    minutes = f"{json.loads(timing.read_text())['seconds'] / 60:.0f}" if timing.is_file() else "?"
    return (f"| {label} | {sizes} | {budget} | {float_top1:.4f} | {fp32['metrics']['top1']:.4f} | "
            f"{int8['metrics']['top1']:.4f} | {int8['delta_points']['top1']:+.2f} | "
            f"{fp32['latency_ms']['median']:.2f} | {int8['latency_ms']['median']:.2f} | {minutes} |")


HEADER = """# The classification zoo on Fashion-MNIST

Made by `python scripts/zoo.py table` from the runs of `python scripts/zoo.py run` (`make zoo`);
rerun both to reproduce. Every accuracy is top-1 on the full 10,000-image Fashion-MNIST test
split, measured by the evaluator (`tfpipe.evaluate`): float is the Keras model, fp32 and int8 are
the TFLite files run by ai-edge-litert; int8 is full-integer (uint8 input and output) after one
epoch of quantization-aware training. Latency is the median of 200 single-image runs at one
thread on the 2-core CPU that made the table ({cpu}).

Sizes: params and multiply-adds at 224x224x3 with 1,000 classes (the published setting, checked
within 2 % of the papers by tests/unit/test_zoo.py), then at the configured 32x32x1 with 10
classes. Budget: training epochs x training images (5,000 are held out for validation), then
QAT epochs; the slowest families train on a subset to fit the CPU. Minutes: wall time of the
whole run (train, QAT, convert, evaluate); other work may have shared the CPU.

Edge TPU compatibility: not listed yet; the static checker is issue 5's deliverable.

| model | params 224 | MACs 224 | params 32 | MACs 32 | budget | float | fp32 | int8 QAT | int8 - float (pts) \
| fp32 ms | int8 ms | minutes |
|---|---|---|---|---|---|---|---|---|---|---|---|---|
"""


def table(workdir: Path, out: Path) -> int:
    import platform

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown CPU")
    rows = [_row(path, workdir) for path in configs()]
    out.write_text(HEADER.format(cpu=cpu) + "\n".join(rows) + "\n")
    print(out.read_text())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/zoo.py", description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run").add_argument("names", nargs="*")
    sub.add_parser("table").add_argument("--out", type=Path, default=ROOT / "docs" / "zoo.md")
    args = parser.parse_args(argv)
    if args.command == "run":
        return run(args.names, args.workdir)
    return table(args.workdir, args.out)


if __name__ == "__main__":
    sys.exit(main())
