"""PNG plots of a parity report (matplotlib, Agg backend; written atomically)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfpipe import io


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    io.write_with(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    _pyplot().close(fig)
    return path


def _ok_models(report: dict) -> list[dict]:
    return [m for m in report["models"] if m.get("status", "ok") == "ok"]


def confusions(report: dict, path: Path) -> Path:
    plt = _pyplot()
    models = _ok_models(report)
    classes = report["dataset"]["classes"]
    fig, axes = plt.subplots(1, len(models), figsize=(5.2 * len(models), 5), squeeze=False)
    for ax, m in zip(axes[0], models, strict=True):
        confusion = np.array(m["metrics"]["confusion"])
        rates = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
        ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
        ax.set_title(f"{m['name']}  top-1 {m['metrics']['top1']:.4f}")
        ax.set_xticks(range(len(classes)), classes, rotation=90, fontsize=7)
        ax.set_yticks(range(len(classes)), classes, fontsize=7)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        for (i, j), count in np.ndenumerate(confusion):
            if count:
                ax.text(j, i, str(count), ha="center", va="center", fontsize=5.5,
                        color="white" if rates[i, j] > 0.5 else "black")
    fig.suptitle(f"Confusion matrices, {report['dataset']['name']} {report['dataset']['split']} "
                 f"({report['dataset']['samples']:,} images)")
    fig.tight_layout()
    return _save(fig, path)


def latency(report: dict, path: Path) -> Path:
    """Median and p90 invoke time per converted model."""
    plt = _pyplot()
    models = [m for m in _ok_models(report) if "latency_ms" in m]
    names = [m["name"] for m in models]
    median = [m["latency_ms"]["median"] for m in models]
    p90 = [m["latency_ms"]["p90"] for m in models]
    fig, ax = plt.subplots(figsize=(1.6 * len(models) + 3, 3.6))
    x = np.arange(len(models))
    ax.bar(x - 0.2, median, 0.4, label="median")
    ax.bar(x + 0.2, p90, 0.4, label="p90")
    for xi, value in zip(x, median, strict=True):
        ax.text(xi - 0.2, value, f"{value:.3f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, names)
    ax.set_ylabel("ms per image (batch 1)")
    threads = models[0]["latency_ms"]["threads"] if models else report["threads"]
    ax.set_title(f"Latency, {threads} thread(s), {models[0]['latency_ms']['runs'] if models else 0} timed invokes")
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def classification_gallery(report: dict, model: dict, images: dict[int, np.ndarray], path: Path) -> Path:
    """The images where `model` disagrees most with the float model: truth, float and model top-1."""
    plt = _pyplot()
    classes = report["dataset"]["classes"]
    worst = model["worst_disagreements"]
    fig, axes = plt.subplots(1, len(worst), figsize=(1.9 * len(worst), 2.7), squeeze=False)
    for ax, w in zip(axes[0], worst, strict=True):
        image = images[w["index"]]
        ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=255)
        ax.set_xticks([])
        ax.set_yticks([])
        color = "crimson" if w["top1_differs"] else "black"
        ax.set_title(f"#{w['index']}  truth {classes[w['label']]}\n"
                     f"float {classes[w['float_class']]} {w['float_score']:.2f}\n"
                     f"{model['name']} {classes[w['model_class']]} {w['model_score']:.2f}",
                     fontsize=7, color=color)
    fig.suptitle(f"{model['name']}: worst disagreements with the float model (red: top-1 differs)", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def pr_curves(metrics_by_model: dict[str, dict], classes: list[str], path: Path) -> Path:
    """Per-class precision/recall at IoU 0.5 (COCOeval's 101 recall points), one panel a class."""
    plt = _pyplot()
    columns = min(4, len(classes))
    rows = -(-len(classes) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.8 * rows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k >= len(classes):
            ax.axis("off")
            continue
        for name, metrics in metrics_by_model.items():
            curve = metrics["pr_curve_iou50"]
            if curve["precision"][k] is not None:
                ax.plot(curve["recall"], curve["precision"][k], label=name)
        ax.set_title(classes[k], fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall", fontsize=8)
        ax.set_ylabel("precision", fontsize=8)
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Precision-recall per class, IoU 0.5")
    fig.tight_layout()
    return _save(fig, path)


def iou_bars(metrics_by_model: dict[str, dict], classes: list[str], path: Path) -> Path:
    """Per-class IoU of each model side by side (classes absent from labels and predictions left out)."""
    return class_bars(metrics_by_model, classes, "per_class_iou", "miou", "IoU", path)


def class_bars(metrics_by_model: dict[str, dict], classes: list[str], key: str, summary: str, label: str,
               path: Path) -> Path:
    """A per-class metric (`key`: a list with None where the class is absent) of each model side by
    side, the legend giving each model's mean (`summary`)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(classes) * max(1, len(metrics_by_model)) / 2), 3.8))
    x = np.arange(len(classes))
    width = 0.8 / max(1, len(metrics_by_model))
    for i, (name, metrics) in enumerate(metrics_by_model.items()):
        values = [np.nan if v is None else v for v in metrics[key]]
        ax.bar(x + (i - (len(metrics_by_model) - 1) / 2) * width, values, width,
               label=f"{name} (m{label} {metrics[summary]:.4f})")
    for k in range(len(classes)):
        if all(m[key][k] is None for m in metrics_by_model.values()):
            ax.text(k, 0.02, "absent", ha="center", fontsize=7, color="gray")
    ax.set_xticks(x, classes, rotation=45, ha="right", fontsize=8)
    ax.set_ylim(0, 1.25)  # headroom for the legend
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel(label)
    ax.set_title(f"{label} per class")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def detection_gallery(report: dict, model: dict, images: dict[int, np.ndarray], boxes: dict[str, dict],
                      path: Path, min_score: float = 0.3, disagreement: str = "unmatched") -> Path:
    """One row per image where `model`'s detections differ most from the float model's: the ground
    truth, the float model's and the model's boxes (score >= `min_score`) with class and score, and
    their instance masks (COCO RLEs) shaded when they have them. `disagreement` names what
    `worst_disagreements`' share counts."""
    plt = _pyplot()
    worst = model["worst_disagreements"]
    name, classes = model["name"], report["dataset"]["classes"]
    fig, axes = plt.subplots(len(worst), 3, figsize=(7.5, 2.5 * len(worst) + 0.6), squeeze=False,
                             layout="constrained")
    for row, w in zip(axes, worst, strict=True):
        i = w["index"]
        for ax, (source, title) in zip(row, (("truth", f"#{i} ground truth"), ("float", "float"),
                                             (name, f"{name}: {100 * w['unmatched']:.0f} % {disagreement}")),
                                    strict=True):
            ax.imshow(images[i], interpolation="nearest")
            found = boxes[source][i]
            keep = np.ones(len(found.boxes), bool) if found.scores is None else found.scores >= min_score
            if found.masks is not None and np.any(keep):
                from tfpipe.metrics.detection import decode_mask

                shade = np.zeros((*images[i].shape[:2], 4))
                for k in np.flatnonzero(keep):
                    shade[decode_mask(found.masks[k])] = plt.get_cmap("tab10")(
                        int(found.classes[k]) % 10)[:3] + (0.45,)
                ax.imshow(shade, interpolation="nearest")
            for k in np.flatnonzero(keep):
                x1, y1, x2, y2 = found.boxes[k]
                colour = plt.get_cmap("tab10")(int(found.classes[k]) % 10)
                ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color=colour, linewidth=1.2))
                text = classes[int(found.classes[k])] + ("" if found.scores is None else f" {found.scores[k]:.2f}")
                ax.text(x1, y1, text, fontsize=5, color="white", va="bottom",
                        bbox={"facecolor": colour, "pad": 0.5, "linewidth": 0})
            ax.set_title(title, fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"{name}: images whose detections differ most from the float model's (boxes scoring >= "
                 f"{min_score:g})", fontsize=8)
    return _save(fig, path)


def colorize(class_map: np.ndarray) -> np.ndarray:
    """uint8 RGB of a class map: tab20 colours by class id (background 0 black, void 255 white)."""
    plt = _pyplot()
    table = np.array([plt.get_cmap("tab20")(c % 20)[:3] for c in range(256)]) * 255
    table[0], table[255] = 0, 255
    return table.astype(np.uint8)[np.asarray(class_map)]


def segmentation_gallery(report: dict, model: dict, images: dict[int, np.ndarray],
                         maps: dict[str, dict[int, np.ndarray]], path: Path) -> Path:
    """One row per image where `model`'s class map differs most from the float model's: the input,
    the labels, the float map, the model's map, and in red the pixels where the two maps differ."""
    plt = _pyplot()
    worst = model["worst_disagreements"]
    name = model["name"]
    fig, axes = plt.subplots(len(worst), 5, figsize=(9.5, 2.1 * len(worst) + 0.8), squeeze=False,
                             layout="constrained")
    for row, w in zip(axes, worst, strict=True):
        i = w["index"]
        float_map, model_map = maps["float"][i], maps[name][i]
        differs = (float_map != model_map) & (maps["truth"][i] != 255)
        shown = images[i].copy()
        shown[differs] = (255, 0, 0)
        panels = [(images[i], f"#{i}"), (colorize(maps["truth"][i]), "labels"), (colorize(float_map), "float"),
                  (colorize(model_map), name), (shown, f"differ: {100 * (1 - w['pixel_agreement']):.1f} %")]
        for ax, (picture, title) in zip(row, panels, strict=True):
            ax.imshow(picture, interpolation="nearest")
            ax.set_title(title, fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
    classes = report["dataset"]["classes"]
    legend = [plt.Rectangle((0, 0), 1, 1, color=colorize(np.array([k]))[0] / 255) for k in range(len(classes))]
    fig.legend(legend, classes, loc="outside lower center", ncol=min(6, len(classes)), fontsize=6)
    fig.suptitle(f"{name}: images whose class map differs most from the float model's", fontsize=9)
    return _save(fig, path)


def layer_errors(rows: list[dict], path: Path) -> Path:
    """The quantization debugger's table: median-channel SQNR and RMSE/scale of every quantized op."""
    plt = _pyplot()
    labels = [f"{i} {r['op']} {(r['keras_layers'] or [''])[0]}" for i, r in enumerate(rows)]
    sqnr = np.array([min(r["sqnr_db"], 80.0) for r in rows])  # always-zero channels read as +inf
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 0.28 * len(rows) + 1.5), sharey=True, layout="constrained")
    y = np.arange(len(rows))
    left.barh(y, sqnr, color=np.where(sqnr < 10, "tab:red", "tab:blue"))
    left.set_xlabel("median-channel SQNR (dB); red below 10 dB")
    left.set_yticks(y, labels, fontsize=7)
    for tick, value in zip(left.get_yticklabels(), sqnr, strict=True):
        if value < 10:  # a 0 dB bar has no length: name it in red instead
            tick.set_color("tab:red")
            tick.set_fontweight("bold")
    for row, value in zip(y, sqnr, strict=True):
        if value < 10:
            left.text(max(value, 0) + 1, row, f"{value:.1f} dB", va="center", fontsize=7, color="tab:red")
    left.invert_yaxis()
    right.barh(y, [r["rmse_over_scale"] for r in rows], color="tab:gray")
    right.axvline(0.289, color="k", lw=0.8, ls="--")
    right.set_xlabel("RMSE / scale (plain rounding: 0.29)")
    return _save(fig, path)


def _history_metric(columns: list[str]) -> str | None:
    """The main metric a history.csv logs for training and validation: accuracy or mIoU (also as
    probabilities_accuracy when a model has auxiliary outputs)."""
    for column in columns:
        if column.split("_")[-1] in ("accuracy", "miou") and not column.startswith("val_") \
                and f"val_{column}" in columns:
            return column
    return None


def gap_verdict(points: float) -> str:
    """The lecture's reading of the train - val gap of the main metric, in points."""
    if points > 5:
        return "big: over-fitting"
    if points < 1:
        return "none: room for capacity"
    return "small"


def training_curves(history: Path, path: Path) -> Path | None:
    """Loss and the main metric per epoch for training and validation, with the last epoch's
    train - val gap called out (a big gap: over-fitting; none: room for capacity), and the
    update/weight ratio's median with the 1e-3 rule of thumb. None when the history is empty."""
    import csv

    with history.open(newline="") as f:
        rows = [row for row in csv.DictReader(f) if row.get("epoch", "").isdigit()]
    if not rows:
        return None
    columns = list(rows[0])

    def series(column: str) -> np.ndarray:
        return np.array([float(row[column]) if row.get(column) not in (None, "") else np.nan for row in rows])

    epochs = series("epoch") + 1
    metric = _history_metric(columns)
    panels = ["loss"] + ([metric] if metric else []) + (["update_ratio"] if "update_ratio" in columns else [])
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        if panel == "update_ratio":
            ax.semilogy(epochs, series(panel), "o-", label="median over kernels")
            ax.axhline(1e-3, color="grey", linestyle="--", label="1e-3 (rule of thumb)")
            ax.set_title("update / weight ratio")
        else:
            ax.plot(epochs, series(panel), "o-", label="train")
            if f"val_{panel}" in columns:
                ax.plot(epochs, series(f"val_{panel}"), "s-", label="validation")
            ax.set_title(panel)
            if panel == metric and f"val_{panel}" in columns:
                gap = 100 * (series(panel)[-1] - series(f"val_{panel}")[-1])
                ax.set_title(f"{panel}: last train - val gap {gap:+.1f} points ({gap_verdict(gap)})")
        ax.set_xlabel("epoch")
        ax.legend()
    fig.suptitle(f"Training: {history} (train: the running mean over each epoch, augmented)")
    fig.tight_layout()
    return _save(fig, path)


def _show(ax, image: np.ndarray, title: str = "", fontsize: float = 6) -> None:
    """A uint8 [H, W, 1|3] image on a bare axis."""
    ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=255,
              interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=fontsize)


def filters(kernel: np.ndarray, title: str, path: Path, limit: int = 96) -> Path:
    """A first convolution's filters [kh, kw, in, out] as tiles: RGB when it reads 3 channels, and
    beneath, each filter's grey component (the sum over R, G and B: all a grey image can excite; a
    network trained on grey images copied to 3 channels learns only that, its colours stay as
    initialized), else one grey tile per (output, input) pair. Each tile is scaled so 0 is mid-grey
    and its largest |weight| reaches black or white."""
    if kernel.shape[2] == 3:
        blocks = [("RGB", [kernel[..., o] for o in range(kernel.shape[3])][:limit]),
                  ("grey: R+G+B", [kernel[..., o].sum(-1, keepdims=True)
                                                         for o in range(kernel.shape[3])][:limit])]
    else:
        pairs = [kernel[..., i, o, None] for o in range(kernel.shape[3]) for i in range(kernel.shape[2])]
        blocks = [("", pairs[:limit])]
    cols = min(16, len(blocks[0][1]))
    rows_each = -(-len(blocks[0][1]) // cols)
    rows = rows_each * len(blocks)
    plt = _pyplot()
    fig, axes = plt.subplots(rows, cols, figsize=(0.62 * cols + 0.4, 0.62 * rows + 0.7), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for b, (label, tiles) in enumerate(blocks):
        for i, tile in enumerate(tiles):
            ax = axes[b * rows_each + i // cols, i % cols]
            peak = float(np.abs(tile).max()) or 1.0
            _show(ax, np.round(127.5 + 127.5 * tile / peak).astype(np.uint8), label if i == 0 else "")
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def top_images(layer: str, rows: list[list[dict]], path: Path, title: str) -> Path:
    """One row per channel: its top-k images, each with the unit's receptive field boxed, and
    beneath, the field's crop when it is smaller than the image. rows[c][i]: {image, box (top,
    left, bottom, right), score, index}."""
    cropped = any(r["box"] != (0, 0, *r["image"].shape[:2]) for row in rows for r in row)
    per = 2 if cropped else 1
    k = max(len(row) for row in rows)
    plt = _pyplot()
    fig, axes = plt.subplots(per * len(rows), k, figsize=(0.95 * k + 0.8, 1.0 * per * len(rows) + 0.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for c, row in enumerate(rows):
        for i, r in enumerate(row):
            ax = axes[per * c, i]
            ax.axis("on")
            _show(ax, r["image"], f"#{r['index']} {r['score']:.2g}", 5)
            top, left, bottom, right = r["box"]
            ax.add_patch(plt.Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False,
                                       edgecolor="red", linewidth=0.8))
            if i == 0:
                ax.set_ylabel(f"ch {r['channel']}", fontsize=6)
            if cropped:
                axes[per * c + 1, i].axis("on")
                _show(axes[per * c + 1, i], r["image"][top:bottom, left:right])
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def image_grid(images: list[list[np.ndarray]], titles: list[list[str]], row_labels: list[str], path: Path,
               title: str) -> Path:
    """Rows of uint8 images with a caption each (activation maximization, deep dream)."""
    cols = max(len(row) for row in images)
    plt = _pyplot()
    fig, axes = plt.subplots(len(images), cols, figsize=(1.25 * cols + 1.2, 1.35 * len(images) + 0.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for r, (row, captions) in enumerate(zip(images, titles, strict=True)):
        for c, (image, caption) in enumerate(zip(row, captions, strict=True)):
            axes[r, c].axis("on")
            _show(axes[r, c], image, caption, 5.5)
        axes[r, 0].set_ylabel(row_labels[r], fontsize=6)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def int8_layers(rows: list[dict], worst: dict, shown: list[str], path: Path, title: str) -> Path:
    """Float vs int8 by layer: the top-k overlap and SQNR along the network (worst layer marked),
    then the float and int8 activation histograms of the `shown` layers on the int8 range."""
    plt = _pyplot()
    shown = [r for r in rows if r["layer"] in shown]
    cols = min(4, len(shown))
    grid = -(-len(shown) // cols) if cols else 0
    fig = plt.figure(figsize=(max(9, 0.18 * len(rows) + 3), 3.2 + 2.3 * grid))
    top = fig.add_subplot(grid + 1, 1, 1)
    x = np.arange(len(rows))
    top.plot(x, [r["top_k_overlap"] for r in rows], "o-", ms=3, label="top-k overlap (mean over channels)")
    top.set_ylim(0, 1.05)
    top.set_ylabel("overlap")
    w = rows.index(worst)
    top.annotate(f"worst: {worst['layer']} ({worst['top_k_overlap']:.2f})", (w, worst["top_k_overlap"]),
                 xytext=(0, -22), textcoords="offset points", ha="center", fontsize=7, color="crimson",
                 arrowprops={"arrowstyle": "->", "color": "crimson"})
    twin = top.twinx()
    twin.plot(x, [min(r["sqnr_db"], 60) for r in rows], "s-", ms=2, color="tab:orange", label="SQNR dB")
    twin.set_ylabel("SQNR (dB)")
    top.set_xticks(x, [r["layer"] for r in rows], rotation=90, fontsize=5)
    top.legend(loc="lower left", fontsize=7)
    twin.legend(loc="lower right", fontsize=7)
    for i, r in enumerate(shown):
        ax = fig.add_subplot(grid + 1, cols, cols + i + 1)
        edges = np.array(r["edges"])
        centres = (edges[:-1] + edges[1:]) / 2
        width = edges[1] - edges[0]
        ax.bar(centres, r["float_hist"], width, alpha=0.5, label="float")
        ax.bar(centres, r["int8_hist"], width, alpha=0.5, label="int8")
        ax.set_yscale("log")
        ax.set_title(f"{r['layer']}: SQNR {r['sqnr_db']:.1f} dB, overlap {r['top_k_overlap']:.2f}, "
                     f"clipped {100 * r['clipped_share']:.2f}%", fontsize=6)
        ax.tick_params(labelsize=5)
        if i == 0:
            ax.legend(fontsize=6)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def _read_csv(path: Path) -> list[dict]:
    import csv

    with path.open(newline="") as f:
        return [row for row in csv.DictReader(f) if row.get("step", "").isdigit() and None not in row.values()]


def layer_statistics(stats: Path, path: Path) -> Path | None:
    """From layer_stats.csv: along the depth, the layer outputs' mean and std, the share of zeros of
    the activation layers (dead ReLUs) and the kernels' gradient std, at the first, middle and last
    measurement (the lecture's per-layer histograms, summarized). None when the file has no rows."""
    rows = _read_csv(stats)
    if not rows:
        return None
    steps = sorted({int(r["step"]) for r in rows})
    shown = sorted({steps[0], steps[len(steps) // 2], steps[-1]})
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    depth = {name: i for i, name in enumerate(layers)}
    plt = _pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.2))
    panels = ((("activation", "output"), "mean", "output mean"), (("activation", "output"), "std", "output std"),
              (("activation",), "zero_share", "share of zeros of the activation layers"),
              (("gradient",), "std", "loss gradient std per kernel"))
    for ax, (kinds, field, title) in zip(axes, panels, strict=True):
        for step in shown:
            picked = [r for r in rows if int(r["step"]) == step and r["kind"] in kinds]
            ax.plot([depth[r["layer"]] for r in picked], [float(r[field]) for r in picked], ".-", ms=3,
                    label=f"step {step}")
        if kinds == ("gradient",):
            ax.set_yscale("log")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("layer (network order)")
        ax.legend(fontsize=7)
    fig.suptitle(f"Per-layer statistics on one fixed validation batch, in training mode: {stats}", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def update_ratios(ratios: Path, path: Path) -> Path | None:
    """From update_ratio.csv: |update| / |weight| of every kernel over the steps, coloured shallow
    (dark) to deep (light), with the 1e-3 rule of thumb. None when the file has no rows."""
    rows = _read_csv(ratios)
    if not rows:
        return None
    kernels = list(dict.fromkeys(r["kernel"] for r in rows))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.95, len(kernels)))
    for kernel, colour in zip(kernels, colours, strict=True):
        picked = [r for r in rows if r["kernel"] == kernel and float(r["ratio"]) > 0]  # 0: a warm-up at rate 0
        ax.plot([int(r["step"]) for r in picked], [float(r["ratio"]) for r in picked], color=colour, lw=0.7)
    ax.set_yscale("log")
    ax.axhline(1e-3, color="crimson", ls="--", label="1e-3 (rule of thumb)")
    ax.set_xlabel("step")
    ax.set_ylabel("|update| / |weight|")
    ax.set_title(f"Update / weight ratio of each of {len(kernels)} kernels (dark: first layers, light: last)",
                 fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)
