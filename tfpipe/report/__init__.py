"""Reports of a parity evaluation: parity.json, report.md, a self-contained report.html, PNG plots
and the printed table.

parity.json (schema "tfpipe-parity/1"; fields are only ever added):
  task, run, threads, workers, delegate (null or the name/library), reference_kernels
  dataset: {name, split, samples, classes}
  gate: {metric, max_drop_points, passed, failures: [one sentence per failing model]}
  models: [{name, kind: keras|tflite, status: ok|failed, file,
            metrics: {top1, top5, per_class_top1, confusion}          (status ok)
              segmentation: {miou, per_class_iou (null: class absent), pixel_accuracy, mean_accuracy,
                             fw_iou, confusion (pixels)}
            and for tflite: runtime, size_bytes, size_ratio_fp32,
              errors: [one sentence per crashed shard], crash_logs: [the worker's last words per crash]
                                                                        (status failed)
              delta_points: {top1, top5} (tflite - float, x100), delta_per_class_points,
              recovered_crashes: [crashes whose shard ran through when rerun]   (only when there were any)
              collapsed_outputs: [one sentence per output that carries nothing: NaN, constant, or
                                  squeezed into a few int8 steps; tfpipe.runtime.collapse] (only when any)
              agreement_top1, outputs: {name: {max_abs_error, cosine_similarity, min_cosine_similarity}},
              latency_ms: {median, p90, runs, warmup, threads}, latency_ratio_fp32,
              worst_disagreements: [{index, label, float_class, float_score, model_class, model_score,
                                     top1_differs, distance}]}]
  segmentation rows replace top1/top5 by miou/pixel_accuracy in delta_points, agreement_top1 by
  agreement_pixels (share of labelled pixels whose class equals the float model's), and give
  worst_disagreements as [{index, pixel_agreement}]; gate.metric is miou. The class maps scored are
  the model's `class_map` output when it has one, else the argmax of `probabilities`.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np

from tfpipe import io, plots, tasks
from tfpipe.errors import GateFailed
from tfpipe.evaluate.result import Evaluation


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _task(report: dict):
    """The task object of the report's task: its table columns, notes and plots (tfpipe/tasks/)."""
    return tasks.get(report["task"])


def table_rows(report: dict) -> list[list[str]]:
    task = _task(report)
    metrics, gate, agreement = task.report.metrics, task.gate, task.report.agreement
    delta = (f"Δ{gate.label} pts", gate.metric)
    header = ["model", *(m[0] for m in metrics), delta[0], "agree", "cosine", "max err", "KiB", "size×",
              "p50 ms", "p90 ms", "lat×"]
    rows = [header]
    for m in report["models"]:
        size = _fmt(m["size_bytes"] / 1024 if "size_bytes" in m else None, ".1f")
        if m.get("status", "ok") == "failed":
            rows.append([m["name"], "FAILED", "-", "-", "-", "-", "-", size, _fmt(m.get("size_ratio_fp32"), ".3f"),
                         "-", "-", "-"])
            continue
        out = next(iter(m.get("outputs", {}).values()), {})
        lat = m.get("latency_ms", {})
        rows.append([
            m["name"], *(_fmt(m["metrics"][key], ".4f") for _, key in metrics),
            _fmt(m.get("delta_points", {}).get(delta[1]), "+.2f"), _fmt(m.get(agreement), ".4f"),
            _fmt(out.get("cosine_similarity"), ".5f"), _fmt(out.get("max_abs_error"), ".4f"),
            size, _fmt(m.get("size_ratio_fp32"), ".3f"),
            _fmt(lat.get("median"), ".3f"), _fmt(lat.get("p90"), ".3f"), _fmt(m.get("latency_ratio_fp32"), ".3f"),
        ])
    return rows


def per_class_rows(report: dict) -> list[list[str]]:
    """Class, its images (pixels for segmentation), the float model's top-1 (IoU), and each converted
    model's change in points."""
    models = [m for m in report["models"] if m.get("status", "ok") == "ok"]
    float_model, converted = models[0], models[1:]
    key, unit, metric = _task(report).report.per_class
    rows = [["class", unit, f"{float_model['name']} {metric}"] + [f"Δ{m['name']} pts" for m in converted]]
    metrics = float_model["metrics"]
    counts = metrics["per_class_count"] if "per_class_count" in metrics else np.sum(metrics["confusion"], axis=1)
    for k, name in enumerate(report["dataset"]["classes"]):
        rows.append([name, f"{int(counts[k]):,}", _fmt(float_model["metrics"][key][k], ".4f")]
                    + [_fmt(m["delta_per_class_points"][k], "+.2f") for m in converted])
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


def _html_table(rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _summary(report: dict) -> str:
    d = report["dataset"]
    runtime = f"{report.get('workers', 1)} worker(s), {report['threads']} thread(s)"
    if report.get("delegate"):
        runtime += f", delegate {report['delegate']}"
    return f"{report['task']} on {d['name']} {d['split']} split, {d['samples']:,} images; {runtime}."


def collapsed_outputs(report: dict) -> list[str]:
    """Every converted model's collapsed outputs (tfpipe.runtime.collapse), named by model."""
    return [f"{m['name']}: {sentence}" for m in report["models"] for sentence in m.get("collapsed_outputs", [])]


def _note(report: dict) -> str:
    return _task(report).report.note


def write_plots(evaluation: Evaluation, out_dir: Path) -> dict[str, Path]:
    report = evaluation.report
    plot_dir = out_dir / "plots"
    task = _task(report)
    paths = task.plots(report, plot_dir)
    train = Path(report["run"]) / "train"  # the float model's training, when this run trained it
    for title, draw, source, png in (("training curves", plots.training_curves, "history.csv", "training.png"),
                                     ("update ratio per layer", plots.update_ratios, "update_ratio.csv",
                                      "update_ratio.png"),
                                     ("layer statistics", plots.layer_statistics, "layer_stats.csv", "layers.png")):
        if (train / source).is_file():
            picture = draw(train / source, plot_dir / png)
            if picture:
                paths[title] = picture
    if any("latency_ms" in m for m in report["models"]):
        paths["latency"] = plots.latency(report, plot_dir / "latency.png")
    for m in report["models"]:
        if m.get("worst_disagreements"):
            out = plot_dir / f"gallery_{m['name']}.png"
            paths[f"worst disagreements: {m['name']}"] = task.gallery(report, m, evaluation.images, evaluation.drawn,
                                                                      out)
    drawn = {p.name for p in paths.values()}
    for stale in plot_dir.glob("*.png"):  # an earlier evaluation's models (a gallery of a file since removed)
        if stale.name not in drawn:
            stale.unlink()
    return paths


def write_markdown(report: dict, plot_paths: dict[str, Path], path: Path) -> Path:
    gate = report["gate"]
    lines = [f"# Parity report: {report['run']}", "", _summary(report), "", _markdown_table(table_rows(report)), "",
             f"Gate ({gate['metric']} drop at most {gate['max_drop_points']:g} points): "
             f"**{'PASSED' if gate['passed'] else 'FAILED'}**", *[f"- {f}" for f in gate["failures"]], "",
             *([f"Collapsed outputs: {len(collapsed_outputs(report))}", "",
                *[f"- {c}" for c in collapsed_outputs(report)], ""] if collapsed_outputs(report) else []),
             _note(report), "", "## Per class", "", _markdown_table(per_class_rows(report)), ""]
    for title, plot in plot_paths.items():
        lines += [f"## {title[0].upper()}{title[1:]}", "", f"![{title}]({plot.relative_to(path.parent)})", ""]
    lines += ["## What the network learned", "", "[explain/index.html](../explain/index.html): written by "
              "`python -m tfpipe.explain` with this run's config.", ""]
    return io.write_text(path, "\n".join(lines))


# explain/index.html is written by its own command, before or after this report
EXPLAIN_LINK = ("<a href='../explain/index.html'>explain/index.html</a>: the first filters, the images that excite "
                "each channel, activation maximization, deep dream and float vs int8 layer by layer, written by "
                "<code>python -m tfpipe.explain</code> with this run's config.")

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:right}td:first-child,th:first-child{text-align:left}th{background:#f3f3f3}
.passed{color:#1a7f37}.failed{color:#c62828}img{max-width:100%;border:1px solid #eee}"""


def write_html(report: dict, plot_paths: dict[str, Path], path: Path) -> Path:
    """One file with everything in it: the PNGs are embedded as data URIs."""
    gate = report["gate"]
    verdict = "passed" if gate["passed"] else "failed"
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>Parity report</title>"
             f"<style>{STYLE}</style></head><body>",
             f"<h1>Parity report</h1><p>{html.escape(report['run'])}</p><p>{html.escape(_summary(report))}</p>",
             _html_table(table_rows(report)),
             f"<p class='{verdict}'><b>Gate ({html.escape(gate['metric'])} drop at most "
             f"{gate['max_drop_points']:g} points): {verdict.upper()}</b></p>",
             "<ul>" + "".join(f"<li>{html.escape(f)}</li>" for f in gate["failures"]) + "</ul>",
             *(["<p class='failed'><b>Collapsed outputs</b></p><ul>"
                + "".join(f"<li>{html.escape(c)}</li>" for c in collapsed_outputs(report)) + "</ul>"]
               if collapsed_outputs(report) else []),
             f"<p>{html.escape(_note(report))}</p><h2>Per class</h2>", _html_table(per_class_rows(report))]
    for title, plot in plot_paths.items():
        parts.append(f"<h2>{html.escape(title[0].upper() + title[1:])}</h2>{embedded_png(title, plot)}")
    parts.append(f"<h2>What the network learned</h2><p>{EXPLAIN_LINK}</p></body></html>")
    return io.write_text(path, "\n".join(parts))


def embedded_png(title: str, path: Path) -> str:
    """An <img> carrying the PNG itself (a data URI), so the page is one self-contained file."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"<img alt='{html.escape(title)}' src='data:image/png;base64,{data}'>"


def write_report(evaluation: Evaluation, out_dir: Path) -> dict[str, Path]:
    """Write parity.json, the plots, report.md and report.html into `out_dir` (each atomically)."""
    paths = {"json": out_dir / "parity.json"}
    io.write_json(paths["json"], evaluation.report)
    plot_paths = write_plots(evaluation, out_dir)
    paths["markdown"] = write_markdown(evaluation.report, plot_paths, out_dir / "report.md")
    paths["html"] = write_html(evaluation.report, plot_paths, out_dir / "report.html")
    return {**paths, **plot_paths}


def publish(evaluation: Evaluation, out_dir: Path) -> int:
    """Write the reports, print the table and the verdict; raise GateFailed when the gate fails
    (after the reports are written, so the evidence is kept)."""
    report = evaluation.report
    paths = write_report(evaluation, out_dir)
    print(format_table(report))
    print(f"Wrote {paths['json']}, {paths['markdown']} and {paths['html']} ({len(paths) - 3} plots)")
    if not report["gate"]["passed"]:
        raise GateFailed("; ".join(report["gate"]["failures"]))
    gate = report["gate"]
    print(f"Parity gate passed: no converted model lost more than {gate['max_drop_points']:g} "
          f"{_task(report).gate.label} points")
    return 0
