"""Dataset statistics and a PNG grid of samples with their boxes and masks drawn."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfpipe import io
from tfpipe.data.formats import Dataset, safe_path
from tfpipe.data.formats.classmaps import class_map as read_class_map
from tfpipe.data.formats.classmaps import has_class_map


def statistics(dataset: Dataset) -> dict:
    """Per split: images, objects per class, image sizes, and box width/height/area percentiles."""
    out = {}
    for split, records in dataset.splits.items():
        classes = np.concatenate([r.classes for r in records]) if records else np.zeros(0, int)
        boxes = np.concatenate([r.boxes for r in records]) if records else np.zeros((0, 4))
        sizes = {}
        for r in records:
            sizes[f"{r.width}x{r.height}"] = sizes.get(f"{r.width}x{r.height}", 0) + 1
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        percentiles = (0, 5, 50, 95, 100)
        out[split] = {
            "images": len(records),
            "objects": int(len(classes)),
            "images_without_objects": sum(1 for r in records if not len(r.classes)),
            "objects_per_class": {name: int((classes == k).sum()) for k, name in enumerate(dataset.class_names)},
            "image_sizes": dict(sorted(sizes.items(), key=lambda item: -item[1])),
            "box_percentiles": {"percentile": list(percentiles),
                                **({key: [round(float(v), 1) for v in np.percentile(values, percentiles)]
                                    for key, values in (("width", w), ("height", h), ("sqrt_area", np.sqrt(w * h)))}
                                   if len(boxes) else {})},
        }
    return out


def format_statistics(stats: dict, class_names: tuple[str, ...]) -> str:
    lines = []
    for split, s in stats.items():
        lines.append(f"{split}: {s['images']:,} images, {s['objects']:,} objects "
                     f"({s['images_without_objects']:,} images without any)")
        width = max(len(n) for n in class_names)
        lines += [f"  {name:<{width}}  {count:>7,}" for name, count in s["objects_per_class"].items()]
        sizes = ", ".join(f"{size} ({count:,})" for size, count in list(s["image_sizes"].items())[:5])
        lines.append(f"  image sizes: {sizes}")
        p = s["box_percentiles"]
        for key in ("width", "height", "sqrt_area"):
            if key in p:
                values = "  ".join(f"p{q}={v:g}" for q, v in zip(p["percentile"], p[key], strict=True))
                lines.append(f"  box {key:<9} {values}")
    return "\n".join(lines)


def draw_grid(dataset: Dataset, split: str, path: Path, count: int = 16, seed: int = 0,
              segmentation_classes: tuple[str, ...] | None = None) -> Path:
    """`count` random samples of `split`: the image, its boxes with class names, and its class map
    blended in when the records have one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    records = dataset.splits[split]
    picks = np.sort(np.random.default_rng(seed).choice(len(records), min(count, len(records)), replace=False))
    columns = min(4, len(picks))
    rows = -(-len(picks) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.2 * rows), squeeze=False)
    colors = plt.get_cmap("tab20")
    for ax in axes.flat:
        ax.axis("off")
    for ax, index in zip(axes.flat, picks, strict=False):
        r = records[index]
        image = np.asarray(Image.open(safe_path(dataset.root, r.image, str(dataset.root))).convert("RGB"))
        if segmentation_classes and has_class_map(r):
            class_map = read_class_map(dataset.root, r)
            overlay = np.array([colors(c % 20)[:3] for c in range(256)])[class_map] * 255
            shown = np.where((class_map > 0)[..., None] & (class_map < 255)[..., None],
                             0.55 * image + 0.45 * overlay, image)
            image = shown.astype(np.uint8)
        ax.imshow(image)
        for (x1, y1, x2, y2), c in zip(r.boxes, r.classes, strict=True):
            color = colors((c + 1) % 20)
            ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=color, linewidth=1.2))
            ax.text(x1, y1, dataset.class_names[c], fontsize=6, color="white", va="bottom",
                    bbox={"facecolor": color, "pad": 0.5, "linewidth": 0})
        label = "" if r.label is None else f"{dataset.class_names[r.label]}: "
        ax.set_title(label + Path(r.image).name, fontsize=7)
    fig.suptitle(f"{split}: {len(picks)} of {len(records):,} images" +
                 (" (class map blended)" if segmentation_classes else ""), fontsize=9)
    fig.tight_layout()
    io.write_with(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path


def annotated_dataset(cfg) -> tuple[Dataset, tuple[str, ...] | None]:
    """The config's dataset on disk as its reader gives it (data.format's data.train, or the built
    scenes); and the segmentation class names when its samples have class maps."""
    from tfpipe.data import fashion_scenes
    from tfpipe.errors import TfpipeError

    if cfg.data.format:
        from tfpipe.data.formats.convert import read

        if not Path(cfg.data.train).exists():
            raise TfpipeError(f"data.train: {cfg.data.train}: not found", f"a {cfg.data.format} dataset")
        dataset = read(cfg.data.format, Path(cfg.data.train), cfg.data.on_bad_sample)
        maps = any(has_class_map(r) for records in dataset.splits.values() for r in records[:1])
        return dataset, ("background", *dataset.class_names) if maps else None
    if cfg.data.builtin != "fashion_scenes":
        raise TfpipeError(f"data: {cfg.data.dataset} has no annotation files to inspect",
                          "inspect reads a dataset on disk: data.format (yours) or data.builtin: fashion_scenes")
    root = fashion_scenes.ensure(fashion_scenes.cache_dir(cfg.data.cache), cfg.data.scenes, cfg.data.path)
    return fashion_scenes.read(root, cfg.data.on_bad_sample), fashion_scenes.SEGMENTATION_CLASSES


def inspect(cfg, out_dir: Path, split: str | None, count: int) -> dict[str, Path]:
    from tfpipe.errors import TfpipeError

    dataset, segmentation_classes = annotated_dataset(cfg)
    split = split or ("val" if "val" in dataset.splits else next(iter(dataset.splits)))
    if split not in dataset.splits:
        raise TfpipeError(f"--split: {split!r} is not a split of this dataset",
                          f"use one of: {', '.join(dataset.splits)}")
    stats = statistics(dataset)
    print(f"{dataset.root}: {dataset.summary()}")
    if dataset.skipped:
        io.write_text(out_dir / "skipped_samples.txt", "".join(f"{reason}\n" for reason in dataset.skipped))
        print(f"{len(dataset.skipped):,} bad samples left out (data.on_bad_sample: skip), reasons in "
              f"{out_dir / 'skipped_samples.txt'}")
    print(format_statistics(stats, dataset.class_names))
    paths = {"statistics": io.write_json(out_dir / "statistics.json", stats),
             "grid": draw_grid(dataset, split, out_dir / f"samples_{split}.png", count,
                               segmentation_classes=segmentation_classes)}
    print(f"Wrote {paths['statistics']} and {paths['grid']}")
    return paths
