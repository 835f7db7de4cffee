"""docs/zoo.md is written from the runs' own files: a row per config, figures from parity.json."""

import importlib.util
import json
import shutil

from tests.conftest import REPO


def load_script():
    spec = importlib.util.spec_from_file_location("zoo_script", REPO / "scripts" / "zoo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_zoo_table_reads_every_figure_from_the_evaluator_report(tiny_run, tmp_path, capsys):
    zoo = load_script()
    _, run, _, report, _ = tiny_run
    done = tmp_path / "runs" / "zoo_mobilenet_v2_075"
    shutil.copytree(run.eval, done / "eval")
    shutil.copytree(run.export, done / "export")
    (done / "zoo_timing.json").write_text(json.dumps({"seconds": 600, "exit": 0}))
    out = tmp_path / "zoo.md"
    assert zoo.main(["--workdir", str(tmp_path / "runs"), "table", "--out", str(out)]) == 0
    classification = out.read_text().split("# Semantic segmentation")[0]
    rows = [line for line in classification.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [row.split(" | ")[0][2:] for row in rows] == [
        "mobilenet_v1_050", "shufflenet_v1_g3", "shufflenet_v2_10", "mobilenet_v2_075", "alexnet", "googlenet",
        "resnet18", "resnet18 se_ratio=16", "darknet19", "darknet53", "vgg16_bn", "resnext50_32x4d"]
    models = {m["name"]: m for m in report["models"]}
    measured = next(row for row in rows if row.startswith("| mobilenet_v2_075 |")).split(" | ")
    assert measured[1:5] == ["2.7M", "0.21G", "1.39M", "4.1M"]  # width 0.75: at 224x224x3, then 32x32x1
    assert measured[6:10] == [f"{models['float']['metrics']['top1']:.4f}", f"{models['fp32']['metrics']['top1']:.4f}",
                              f"{models['int8']['metrics']['top1']:.4f}",
                              f"{models['int8']['delta_points']['top1']:+.2f}"]
    assert measured[-2:] == ["100% ops, 100.0% MACs", "10 |"]  # the Edge TPU checker, then minutes
    assert measured[5].endswith(" + QAT 1")  # no zoo.log: nothing known against its QAT
    assert sum("not run yet" in row for row in rows) == 11
    assert "docs" not in str(out) and "mobilenet_v2_075" in capsys.readouterr().out


def test_a_failed_gate_is_marked_in_the_delta_cell():
    zoo = load_script()
    rows = {"int8": {"delta_points": {"top1": -0.66}}, "gate": {"passed": False, "max_drop_points": 0.5}}
    assert zoo._delta(rows, "top1") == "-0.66 (gate 0.5 failed)"
    assert zoo._delta({**rows, "gate": {"passed": True, "max_drop_points": 0.5}}, "top1") == "-0.66"


def test_the_budget_marks_a_qat_that_started_at_tfmots_ranges(tmp_path):
    zoo = load_script()
    log = tmp_path / "zoo.log"
    first = "No QAT model in runs/x: running quantization-aware training first\n"
    log.write_text(first + "Quantization-aware fine-tuning for 1 epoch(s)\n")
    assert zoo._qat(tmp_path, 1) == "QAT 1 †"
    log.write_text(log.read_text() + first + "Started 32 activation ranges at the float model's, measured on 200 "
                   "training images\nQuantization-aware fine-tuning for 1 epoch(s)\n")
    assert zoo._qat(tmp_path, 1) == "QAT 1"  # the last QAT of the log counts
