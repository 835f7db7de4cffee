"""python -m tfpipe.check: predict what of a model runs on the Edge TPU, the GPU delegate or NNAPI.

    python -m tfpipe.check runs/quickstart/export/model_int8.tflite --target edgetpu
    python -m tfpipe.check --config configs/segmentation/unet_lite.yaml     # lint before training

Given .tflite files, each is checked and compat_<target>.json is written beside it (or in --out DIR;
a folder that cannot be written gets the verdict printed only). Given only a
config, the float architecture is built untrained, converted to int8 with random calibration in a
scratch directory and checked, so an op that falls off the accelerator shows up before training.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tfpipe.cli import Stage, main
from tfpipe.delegates import TARGETS
from tfpipe.runtime.contract import model_label

LINT_CALIBRATION = 8  # random images: enough for ranges that make every op quantized


def add_arguments(parser) -> None:
    parser.add_argument("models", nargs="*", type=Path, metavar="MODEL.tflite",
                        help="models to check (default: lint the config's architecture)")
    parser.add_argument("--target", choices=(*TARGETS, "all"), default="all",
                        help="accelerator to check for (default: all three)")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="write compat_<target>.json files here (default: beside each model)")


def lint(cfg, edgetpu_build: bool = False) -> tuple[Path, list[str]]:
    """The config's architecture, untrained, as an int8 .tflite in a scratch directory, and the
    rewrites made: its Edge TPU build's (what `convert --target edgetpu` writes,
    delegates/rewrite.py) with `edgetpu_build`, else none."""
    import numpy as np

    from tfpipe import models, tasks
    from tfpipe.convert.converter import io_dtype_for
    from tfpipe.convert.tflite import to_tflite
    from tfpipe.data.fashion_mnist import CLASS_NAMES
    from tfpipe.delegates import rewrite

    # The head's width does not change which ops the graph has: no need to read the dataset here.
    # What convert sees: the saved model, without training's auxiliary outputs (PSPNet's, GoogLeNet's).
    task = tasks.of(cfg)
    model = task.trained_model(models.build(cfg.model, cfg.task, len(task.class_names(CLASS_NAMES))))
    h, w = cfg.model.input_size
    rng = np.random.default_rng(cfg.train.seed)
    calibration = rng.uniform(-1, 1, (LINT_CALIBRATION, h, w, cfg.model.channels)).astype(np.float32)
    class_map, target, changes = cfg.convert.class_map, "cpu", []
    if edgetpu_build:
        target = "edgetpu"
        model, class_map, _, changes = rewrite.edgetpu_target(model, calibration, class_map)
    label = model_label("int8", tpu_build=bool(changes))
    path = Path(tempfile.mkdtemp(prefix="tfpipe-lint-")) / f"model_{label}.tflite"
    path.write_bytes(to_tflite(model, "int8", io_dtype_for(cfg, "int8", target=target), calibration,
                               class_map=class_map))
    build = f", Edge TPU build ({len(changes)} rewrites)" if edgetpu_build else ""
    print(f"Lint: {cfg.model.name} at {h}x{w}x{cfg.model.channels}, untrained, int8 with random calibration{build}",
          flush=True)
    return path, changes


def run(args, cfg) -> int:
    from tfpipe import delegates

    targets = TARGETS if args.target == "all" else (args.target,)
    checks = [(lambda p=path: p, targets) for path in args.models] or [(lambda: lint(cfg)[0], targets)]
    if not args.models and "edgetpu" in targets:  # and what `convert --target edgetpu` would build
        checks.append((lambda: lint(cfg, edgetpu_build=True)[0], ("edgetpu",)))
    for make, path_targets in checks:  # each model made when its turn comes: its lines follow it
        path = make()
        for target in path_targets:
            report = delegates.check(path, target)
            print("\n".join(delegates.summary_lines(report)), flush=True)
            if args.models:  # a lint's scratch model is not kept, so neither is its report
                try:
                    print(f"  wrote {delegates.write(report, Path(path), args.out)}", flush=True)
                except OSError as e:  # a read-only folder: the verdict above is the result
                    where = args.out or Path(path).parent
                    print(f"  not written: {where} is not writable ({e.strerror}); the verdict is printed above "
                          "(--out DIR writes the report elsewhere)", flush=True)
    return 0


STAGE = Stage("check", "Predict which ops of a .tflite run on the Edge TPU, GPU delegate and NNAPI (or lint a "
              "config's architecture before training); writes compat_<target>.json beside each model.",
              "python -m tfpipe.check runs/quickstart/export/model_int8.tflite --target edgetpu",
              add_arguments, run)

if __name__ == "__main__":
    main(STAGE)
