"""FashionScenes: detection and segmentation scenes composed from real Fashion-MNIST garments.

Each scene is a background (a crop of one of scikit-learn's two sample photos, smooth colour
noise, or a colour gradient) with 1..N garments pasted on it: each garment scaled 1-4x, tinted,
placed at random, and kept only if no earlier garment loses more than `max_occlusion` of its
silhouette. The silhouette (pixels brighter than SILHOUETTE in the scaled garment) gives the
instance mask, the per-pixel class map (background 0, garment class + 1) and the box (the
visible mask's extent). Train scenes use training-split garments, val scenes test-split ones.

Every scene draws from its own generator seeded by (seed, split, index), so the dataset is
byte-identical for a seed whatever the number of processes. It is written once, in the layouts
the readers take: COCO (annotations/<split>.json, RLE instance masks and keypoints defined from
each mask by tfpipe.data.formats.keypoints), YOLO (data.yaml, labels/),
class-map PNGs (masks/<split>/), and Pascal VOC under voc/ (images hard-linked).
"""

from __future__ import annotations

import hashlib
import io as bytes_io
import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tfpipe import io
from tfpipe.config import SceneSpec
from tfpipe.data import fashion_mnist
from tfpipe.data.formats.keypoints import GARMENT_KEYPOINTS, from_mask

SILHOUETTE = 24  # garment pixels above this (of 255) belong to the garment
SPLITS = ("train", "val")
GARMENT_SOURCE = {"train": "train", "val": "test"}  # no garment appears in both splits
SEGMENTATION_CLASSES = ("background", *fashion_mnist.CLASS_NAMES)
JPEG_QUALITY = 92


def cache_key(spec: SceneSpec) -> str:
    """A short hash of the spec and the generator version: the cache folder's name."""
    # version 2: keypoints (defined from the masks) in the COCO files
    text = json.dumps({**asdict(spec), "version": 2, "silhouette": SILHOUETTE, "jpeg": JPEG_QUALITY},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass
class Scene:
    image: np.ndarray  # uint8 [S, S, 3]
    class_map: np.ndarray  # uint8 [S, S], 0 background, garment class + 1
    classes: list[int]  # garment classes 0..9, one per kept object
    masks: list[np.ndarray]  # bool [S, S] visible silhouette per object
    boxes: np.ndarray  # float32 [N, 4] xyxy of the visible silhouettes
    full_areas: list[int]  # each garment's whole silhouette, before later garments covered part of it


def _photos() -> list[np.ndarray]:
    from sklearn.datasets import load_sample_images

    return [np.asarray(image) for image in load_sample_images().images]


def _resize(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(array).resize(size, Image.BILINEAR))


def background(rng: np.random.Generator, size: int, photos: list[np.ndarray]) -> np.ndarray:
    kind = rng.integers(3)
    if kind == 0:  # a crop of a real photo
        photo = photos[rng.integers(len(photos))]
        crop = int(rng.integers(size, min(photo.shape[:2]) + 1))
        y, x = rng.integers(0, photo.shape[0] - crop + 1), rng.integers(0, photo.shape[1] - crop + 1)
        return _resize(np.ascontiguousarray(photo[y : y + crop, x : x + crop]), (size, size))
    if kind == 1:  # smooth colour noise: a coarse random grid, upsampled
        cells = int(rng.integers(2, 9))
        grid = np.clip(rng.normal(rng.uniform(40, 215, 3), 45, (cells, cells, 3)), 0, 255).astype(np.uint8)
        return _resize(grid, (size, size))
    start, end = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)  # a linear gradient at a random angle
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:size, 0:size] / (size - 1)
    t = (np.cos(angle) * xs + np.sin(angle) * ys)
    t = (t - t.min()) / max(t.max() - t.min(), 1e-9)
    return (start + t[..., None] * (end - start)).astype(np.uint8)


def compose(rng: np.random.Generator, spec: SceneSpec, garments: np.ndarray, labels: np.ndarray,
            photos: list[np.ndarray]) -> Scene:
    size = spec.size
    image = background(rng, size, photos).copy()
    owner = np.full((size, size), -1, np.int32)  # which object each pixel shows
    areas: list[int] = []  # full silhouette area per object
    classes: list[int] = []
    for _ in range(int(rng.integers(spec.min_objects, spec.max_objects + 1))):
        pick = int(rng.integers(len(garments)))
        side = int(round(28 * rng.uniform(spec.min_scale, spec.max_scale)))
        garment = _resize(garments[pick], (side, side))
        silhouette = garment > SILHOUETTE
        if silhouette.sum() < 16:
            continue
        tint = rng.uniform(0.45, 1.0, 3)
        for _attempt in range(20):
            y, x = int(rng.integers(0, size - side + 1)), int(rng.integers(0, size - side + 1))
            window = owner[y : y + side, x : x + side]
            covered = np.bincount(window[silhouette] + 1, minlength=len(areas) + 1)[1:]
            visible = np.bincount(owner.ravel() + 1, minlength=len(areas) + 1)[1:]
            if np.all(visible - covered >= (1 - spec.max_occlusion) * np.array(areas, np.int64)):
                k = len(areas)
                window[silhouette] = k
                patch = image[y : y + side, x : x + side]
                patch[silhouette] = (garment[silhouette, None] * tint).astype(np.uint8)
                areas.append(int(silhouette.sum()))
                classes.append(int(labels[pick]))
                break
    masks = [owner == k for k in range(len(areas))]
    boxes = []
    for mask in masks:
        ys, xs = np.nonzero(mask)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    segmentation_ids = np.array([0] + [c + 1 for c in classes], np.uint8)  # owner -1 (background) -> 0
    return Scene(image, segmentation_ids[owner + 1], classes, masks, np.array(boxes, np.float32).reshape(-1, 4),
                 areas)


def _encode(array: np.ndarray, fmt: str, **options) -> bytes:
    from PIL import Image

    buffer = bytes_io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _generate_range(root: Path, spec: SceneSpec, split: str, start: int, stop: int, data_path: str | None) -> list:
    """Write scenes start..stop-1 of a split; return their annotations as JSON-ready lists."""
    data = fashion_mnist.load(data_path, allow_download=False)
    garments, labels = data[GARMENT_SOURCE[split]]
    garments = garments.reshape(len(garments), 28, 28)  # [N, 28, 28, 1] -> gray [N, 28, 28]
    photos = _photos()
    out = []
    for index in range(start, stop):
        rng = np.random.default_rng([spec.seed, SPLITS.index(split), index])
        scene = compose(rng, spec, garments, labels, photos)
        name = f"{split}_{index:05d}"
        io.write_bytes(root / "images" / split / f"{name}.jpg", _encode(scene.image, "JPEG", quality=JPEG_QUALITY))
        io.write_bytes(root / "masks" / split / f"{name}.png", _encode(scene.class_map, "PNG"))
        out.append([name, scene.boxes.tolist(), scene.classes, [_rle(m) for m in scene.masks],
                    [from_mask(m).round(3).tolist() for m in scene.masks]])
    return out


def _generate(root: Path, spec: SceneSpec, split: str, data_path: str | None, processes: int) -> list:
    """The split's scenes, generated by `processes` child interpreters over contiguous ranges.

    Children are `python -m tfpipe.data.fashion_scenes` processes rather than multiprocessing: fork
    would copy a caller that imported TensorFlow (whose threads do not survive it), and spawn
    re-imports the caller's __main__."""
    count = getattr(spec, split)
    bounds = np.linspace(0, count, processes + 1).astype(int)
    jobs = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        if b > a:
            out = root / f".{split}_{a}.json"
            args = json.dumps({"root": str(root), "spec": asdict(spec), "split": split, "start": int(a),
                               "stop": int(b), "data_path": data_path, "out": str(out)})
            jobs.append((subprocess.Popen([sys.executable, "-m", "tfpipe.data.fashion_scenes", args],
                                          stderr=subprocess.PIPE, env=_child_env()), out))
    results = []
    for process, out in jobs:
        _, err = process.communicate()
        if process.returncode:
            tail = " | ".join(err.decode(errors="replace").strip().splitlines()[-3:])
            raise RuntimeError(f"FashionScenes generator process failed (status {process.returncode}): {tail}")
        results += json.loads(out.read_text())
        out.unlink()
    return results


def _child_env() -> dict:
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    return env


def build(root: Path, spec: SceneSpec, data_path: str | None = None, processes: int | None = None) -> Path:
    """Generate the dataset into the new folder `root`; returns `root`."""
    from tfpipe.data.formats import Dataset, ImageRecord, coco, voc, yolo
    from tfpipe.data.formats.convert import place_images

    spec.check()
    fashion_mnist.load(data_path, allow_download=True)  # fail here, once, if the garments are missing
    root = Path(root)
    processes = processes or min(os.cpu_count() or 1, 8)
    splits = {}
    for split in SPLITS:
        records = []
        for name, boxes, classes, rles, points in _generate(root, spec, split, data_path, processes):
            n = len(classes)
            records.append(ImageRecord(f"images/{split}/{name}.jpg", spec.size, spec.size,
                                       np.array(boxes, np.float32).reshape(-1, 4), np.array(classes, np.int32),
                                       np.zeros(n, bool), np.zeros(n, bool), mask=f"masks/{split}/{name}.png",
                                       segmentations=rles,
                                       keypoints=np.array(points, np.float32).reshape(n, len(GARMENT_KEYPOINTS), 3)))
        splits[split] = records
    dataset = Dataset(fashion_mnist.CLASS_NAMES, splits, root, keypoint_names=GARMENT_KEYPOINTS)
    coco.write(dataset, root)
    yolo.write(dataset, root)
    voc_root = root / "voc"
    placed = place_images(dataset, "voc", voc_root)
    voc.write(placed, voc_root)
    for split, records in dataset.splits.items():
        for record in records:
            target = voc_root / "SegmentationClass" / f"{Path(record.image).stem}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                os.link(root / record.mask, target)
        io.write_text(voc_root / "ImageSets" / "Segmentation" / f"{split}.txt",
                      "".join(f"{Path(r.image).stem}\n" for r in records))
    io.write_text(root / "segmentation_classes.txt", "".join(f"{n}\n" for n in SEGMENTATION_CLASSES))
    io.write_json(root / "spec.json", {**asdict(spec), "key": cache_key(spec)})
    return root


def read(root: Path, on_bad_sample: str = "error"):
    """A built dataset through the COCO reader (boxes, instance masks), each record given its
    class-map PNG: detection and segmentation read the same files."""
    from tfpipe.data.formats import coco

    dataset = coco.read(root, on_bad_sample=on_bad_sample)
    for records in dataset.splits.values():
        for r in records:
            r.mask = "masks/" + r.image.removeprefix("images/").rsplit(".", 1)[0] + ".png"
    return dataset


def cache_dir(configured: str | None) -> Path:
    """Where built datasets live: data.cache, else $TFPIPE_CACHE, else ~/.cache/tfpipe."""
    return Path(configured or os.environ.get("TFPIPE_CACHE") or Path.home() / ".cache" / "tfpipe").expanduser()


def ensure(cache: Path, spec: SceneSpec, data_path: str | None = None) -> Path:
    """The dataset for `spec` under `cache`, generated on first use: built in a temporary folder and
    renamed into place, so an interrupted build leaves nothing that looks finished."""
    target = Path(cache) / f"fashion_scenes-{cache_key(spec.check())}"
    if (target / "spec.json").is_file():
        return target
    print(f"Generating FashionScenes ({spec.train:,} train + {spec.val:,} val scenes, {spec.size}px) into {target}",
          flush=True)
    staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        build(staging, spec, data_path)
        shutil.rmtree(target, ignore_errors=True)  # a folder without spec.json is an old interrupted build
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _child_main(argv: list[str]) -> None:
    job = json.loads(argv[0])
    annotations = _generate_range(Path(job["root"]), SceneSpec(**job["spec"]), job["split"], job["start"],
                                  job["stop"], job["data_path"])
    io.write_text(Path(job["out"]), json.dumps(annotations))


if __name__ == "__main__":
    _child_main(sys.argv[1:])


def write_class_folders(dst: Path, size: int = 96, counts: dict[str, int] | None = None, seed: int = 0,
                        data_path: str | None = None) -> dict[str, int]:
    """Class folders of colour photos, one garment each (the layout `data.format: folders` reads):
    dst/<split>/<class>/<n>.png, a real Fashion-MNIST garment (train split for train, test split
    for val) scaled to 50-90 % of a `size` x `size` image, tinted and pasted at random on a
    background as the scenes have. Written into a temporary folder and renamed, so a failure leaves
    nothing; returns the images per split."""
    from PIL import Image

    counts = counts or {"train": 2000, "val": 500}
    dst = Path(dst)
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        from tfpipe.errors import TfpipeError

        raise TfpipeError(f"{dst}: exists and is not empty", "give a new folder")
    data = fashion_mnist.load(data_path, allow_download=True)
    photos = _photos()
    staging = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        for split, count in counts.items():
            garments, labels = data[GARMENT_SOURCE[split]]
            garments = garments.reshape(len(garments), 28, 28)
            rng = np.random.default_rng([seed, SPLITS.index(split)])
            for n in range(count):
                pick = int(rng.integers(len(garments)))
                image = background(rng, size, photos).copy()
                side = int(round(size * rng.uniform(0.5, 0.9)))
                garment = _resize(garments[pick], (side, side))
                silhouette = garment > SILHOUETTE
                y, x = int(rng.integers(0, size - side + 1)), int(rng.integers(0, size - side + 1))
                patch = image[y : y + side, x : x + side]
                patch[silhouette] = (garment[silhouette, None] * rng.uniform(0.45, 1.0, 3)).astype(np.uint8)
                folder = staging / split / fashion_mnist.CLASS_NAMES[int(labels[pick])].replace("/", "-")
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(folder / f"{split}_{n:05d}.png")
        if dst.exists():
            dst.rmdir()
        os.replace(staging, dst)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return counts
