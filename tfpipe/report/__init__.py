"""Reports of a parity evaluation: parity.json, report.md, a printed table and PNG plots.

parity.json (schema "tfpipe-parity/1"):
  task, run, threads
  dataset: {name, split, samples, classes}
  gate: {metric, max_drop_points, passed, failures: [one sentence per failing model]}
  models: [{name, kind: keras|tflite, file, metrics: {top1, top5, per_class_top1, confusion},
            and for tflite: runtime, size_bytes, delta_points: {top1, top5} (tflite - float, x100),
            agreement_top1, outputs: {name: {max_abs_error, cosine_similarity, min_cosine_similarity}},
            latency_ms: {median, p90, runs, warmup, threads}, size_ratio_fp32, latency_ratio_fp32}]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfpipe import io
from tfpipe.errors import GateFailed


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table_rows(report: dict) -> list[list[str]]:
    header = ["model", "top-1", "top-5", "Δtop-1 pts", "agree", "cosine", "max err", "KiB", "size×",
              "p50 ms", "p90 ms", "lat×"]
    rows = [header]
    for m in report["models"]:
        out = next(iter(m.get("outputs", {}).values()), {})
        lat = m.get("latency_ms", {})
        rows.append([
            m["name"], _fmt(m["metrics"]["top1"], ".4f"), _fmt(m["metrics"]["top5"], ".4f"),
            _fmt(m.get("delta_points", {}).get("top1"), "+.2f"), _fmt(m.get("agreement_top1"), ".4f"),
            _fmt(out.get("cosine_similarity"), ".5f"), _fmt(out.get("max_abs_error"), ".4f"),
            _fmt(m["size_bytes"] / 1024 if "size_bytes" in m else None, ".1f"), _fmt(m.get("size_ratio_fp32"), ".3f"),
            _fmt(lat.get("median"), ".3f"), _fmt(lat.get("p90"), ".3f"), _fmt(m.get("latency_ratio_fp32"), ".3f"),
        ])
    return rows


def format_table(report: dict) -> str:
    rows = table_rows(report)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def _markdown_table(rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(out)


def plot_confusions(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = report["models"]
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
    io.write_with(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


def write_report(report: dict, out_dir: Path) -> dict[str, Path]:
    """Write parity.json, report.md and plots/confusion.png into `out_dir` (atomically)."""
    paths = {"json": out_dir / "parity.json", "markdown": out_dir / "report.md",
             "confusion": out_dir / "plots" / "confusion.png"}
    io.write_json(paths["json"], report)
    plot_confusions(report, paths["confusion"])
    gate = report["gate"]
    verdict = "PASSED" if gate["passed"] else "FAILED"
    lines = [
        f"# Parity report: {report['run']}",
        "",
        f"{report['task']} on {report['dataset']['name']} {report['dataset']['split']} split, "
        f"{report['dataset']['samples']:,} images; latency with {report['threads']} thread(s).",
        "",
        _markdown_table(table_rows(report)),
        "",
        f"Gate ({gate['metric']} drop at most {gate['max_drop_points']:g} points): **{verdict}**",
        *[f"- {f}" for f in gate["failures"]],
        "",
        "Δtop-1 is in percentage points against the float Keras model; `agree` is the share of images where",
        "the model's top-1 class equals the float model's; size× and lat× are relative to model_fp32.tflite.",
        "",
        f"![confusion matrices]({paths['confusion'].relative_to(out_dir)})",
        "",
    ]
    io.write_text(paths["markdown"], "\n".join(lines))
    return paths


def publish(report: dict, out_dir: Path) -> int:
    """Write the reports, print the table and the verdict; raise GateFailed when the gate fails
    (after the reports are written, so the evidence is kept)."""
    paths = write_report(report, out_dir)
    print(format_table(report))
    print(f"Wrote {paths['json']}, {paths['markdown']} and {paths['confusion']}")
    if not report["gate"]["passed"]:
        raise GateFailed("; ".join(report["gate"]["failures"]))
    print(f"Parity gate passed: no converted model lost more than {report['gate']['max_drop_points']:g} "
          "top-1 points")
    return 0
