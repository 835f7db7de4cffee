"""Peak memory of training on a dataset of large photos: images are decoded and resized a batch at a
time in tf.data, so the process must not grow with the images' size (issue 20: under 3 GB for
2,000 images of 1024x768).

    python benchmarks/own_data_memory.py [--images 2000] [--epochs 1] [--keep DIR]

Writes a YOLO dataset of `--images` 1024x768 JPEGs (a colour gradient with 1-4 filled rectangles,
each a labelled box) and the same dataset at 128x96, then trains the detection quickstart
(YOLOv3-tiny, 128x128) on each through `python -m tfpipe.train` under `/usr/bin/time -v`, side by
side in this run, and prints both processes' peak RSS, their ratio, and what the large split would
take as one uint8 array.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "detection" / "yolov3_tiny.yaml"
CLASSES = ("red", "green", "blue")


def write_dataset(root: Path, count: int, size: tuple[int, int], seed: int = 0) -> Path:
    from PIL import Image, ImageDraw

    width, height = size
    rng = np.random.default_rng(seed)
    for split, n in (("train", count), ("val", max(1, count // 10))):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(n):
            ramp = np.linspace(0, 1, width)[None, :, None] * rng.uniform(0, 255, 3) + rng.uniform(0, 128, 3)
            image = Image.fromarray(np.broadcast_to(np.clip(ramp, 0, 255), (height, width, 3)).astype(np.uint8))
            draw, lines = ImageDraw.Draw(image), []
            for _ in range(int(rng.integers(1, 5))):
                w, h = rng.uniform(0.1, 0.5) * width, rng.uniform(0.1, 0.5) * height
                x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
                k = int(rng.integers(len(CLASSES)))
                draw.rectangle([x, y, x + w, y + h], fill=tuple(int(v) for v in np.eye(3)[k] * 220))
                cx, cy = (x + w / 2) / width, (y + h / 2) / height
                lines.append(f"{k} {cx:.6f} {cy:.6f} {w / width:.6f} {h / height:.6f}")
            image.save(root / "images" / split / f"{i:05d}.jpg", quality=90)
            (root / "labels" / split / f"{i:05d}.txt").write_text("\n".join(lines) + "\n")
    (root / "data.yaml").write_text(f"path: .\ntrain: images/train\nval: images/val\nnames: {list(CLASSES)}\n")
    return root


def peak_rss(dataset: Path, workdir: Path, name: str, epochs: int) -> tuple[int, float]:
    """(peak RSS in bytes, seconds) of training on `dataset` in a fresh process."""
    sets = {"name": name, "data.builtin": "null", "data.format": "yolo", "data.train": str(dataset),
            "train.epochs": str(epochs)}
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "tfpipe.train", "--config", str(CONFIG),
               "--workdir", str(workdir)]
    for key, value in sets.items():
        command += ["--set", f"{key}={value}"]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"training on {dataset} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1)) * 1024, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--keep", type=Path, default=None, help="write the datasets and runs here and keep them")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="tfpipe-memory-"))
    try:
        rows = []
        for size in ((1024, 768), (128, 96)):
            dataset = root / f"yolo_{size[0]}x{size[1]}"
            if not (dataset / "data.yaml").is_file():
                start = time.perf_counter()
                write_dataset(dataset, args.images, size)
                print(f"Wrote {args.images:,} train images of {size[0]}x{size[1]} to {dataset} "
                      f"in {time.perf_counter() - start:.0f} s", flush=True)
            rss, seconds = peak_rss(dataset, root / "runs", f"memory_{size[0]}", args.epochs)
            rows.append((size, rss, seconds))
        print(f"\nTraining YOLOv3-tiny (128x128 input) for {args.epochs} epoch(s) on {args.images:,} images:")
        print(f"{'images':>10} {'peak RSS':>10} {'wall':>7}")
        for (w, h), rss, seconds in rows:
            print(f"{f'{w}x{h}':>10} {rss / 2**30:>8.2f} GiB {seconds:>5.0f} s")
        (w, h), large, _ = rows[0]
        print(f"peak RSS ratio 1024x768 / 128x96: {large / rows[1][1]:.2f}; the 1024x768 train split as one uint8 "
              f"array would be {args.images * w * h * 3 / 2**30:.1f} GiB; limit 3 GiB: "
              f"{'kept' if large < 3 * 2**30 else 'EXCEEDED'}")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
