"""Copy a run's bundle into the Android demo's assets, where the app looks for it.

    python export/android/sync.py --run runs/quickstart
    python export/android/sync.py --run runs/det_yolov3_tiny --model int8

The bundle goes to android_demo/app/src/main/assets/<task>/ (classification/, detection/ or
segmentation/: one per mode of the app): model.json, labels.txt and the chosen .tflite. The copied
model.json lists only that model, so the app runs what was chosen. The folder is replaced only
once the new copy is complete and reads back as a bundle, so a failed sync leaves the app's
previous bundle in place. No TensorFlow.

Exit status: 0, or 2 with a one-line error for a bad run folder or option.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tfpipe.errors import TfpipeError  # noqa: E402
from tfpipe.runtime.bundle import Bundle  # noqa: E402

ASSETS = REPO / "android_demo" / "app" / "src" / "main" / "assets"


def sync(run: Path, model: str, assets: Path) -> Path:
    """Copies `run`'s bundle (its `model` only) to assets/<task>/; returns that folder."""
    export = run / "export"
    if not (export / "model.json").is_file():
        raise TfpipeError(f"{export / 'model.json'}: no such file",
                          "--run takes a run folder converted by python -m tfpipe.convert")
    bundle = Bundle(export, model)
    if not bundle.model_file.is_file():
        raise TfpipeError(f"{bundle.model_file}: no such file (model.json lists it)", "convert the run again")
    meta = dict(bundle.meta, models={model: bundle.entry})
    assets.mkdir(parents=True, exist_ok=True)
    target = assets / bundle.task
    with tempfile.TemporaryDirectory(dir=assets, prefix=".sync-") as scratch:
        staged = Path(scratch) / bundle.task
        staged.mkdir()
        (staged / "model.json").write_text(json.dumps(meta, indent=1) + "\n")
        (staged / "labels.txt").write_text("".join(f"{name}\n" for name in bundle.classes))
        shutil.copy2(bundle.model_file, staged / bundle.model_file.name)
        Bundle(staged, model)  # reads back as the app will find it
        previous = Path(scratch) / "previous"
        if target.exists():
            target.rename(previous)
        staged.rename(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="export/android/sync.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a run folder (runs/NAME) with export/model.json")
    parser.add_argument("--model", default="int8", help="which of the bundle's models to ship (default int8)")
    parser.add_argument("--assets", type=Path, default=ASSETS, help=f"the app's assets folder (default {ASSETS})")
    args = parser.parse_args(argv)
    try:
        target = sync(args.run, args.model, args.assets)
    except TfpipeError as e:
        print(f"export/android/sync.py: error: {e.message}" + (f" ({e.hint})" if e.hint else ""), file=sys.stderr)
        return 2
    files = sorted(p.name for p in target.iterdir())
    size = sum(p.stat().st_size for p in target.iterdir()) / 1024
    print(f"Synced {args.run} ({args.model}) to {target}: {', '.join(files)} ({size:.1f} KiB); rebuild the app")
    return 0


if __name__ == "__main__":
    sys.exit(main())
