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


def test_the_edge_tpu_table_lints_both_builds_and_reads_each_builds_metric(tmp_path, capsys):
    """`scripts/zoo.py edgetpu NAME`: the two builds' predicted mapping from the untrained
    architecture, each build's int8 figure from the run's parity.json when it was evaluated."""
    zoo = load_script()
    evaluated = tmp_path / "runs" / "zoo_mobilenet_v1_050" / "eval"
    evaluated.mkdir(parents=True)
    rows = [{"name": "int8", "status": "ok", "metrics": {"top1": 0.8365}, "delta_points": {"top1": -0.05}},
            {"name": "int8_tpu", "status": "failed", "errors": ["delegate"]}]
    (evaluated / "parity.json").write_text(json.dumps({"models": rows}))
    out = tmp_path / "edgetpu.md"
    # another config's row, written by an earlier run: kept as it is (NAME once rewrote the file with its row alone)
    kept = "| segnet_lite | 1 | 4/106 ops | EQUAL (dec0_unpool) | 5/106 ops | EQUAL (dec0_unpool) | 1 | 0 | - | - |"
    out.write_text(zoo.EDGETPU_HEADER + kept + "\n")
    assert zoo.main(["--workdir", str(tmp_path / "runs"), "edgetpu", "mobilenet_v1_050", "--out", str(out)]) == 0
    assert kept in out.read_text().splitlines()
    [row] = [line for line in out.read_text().splitlines() if line.startswith("| mobilenet_v1_050 ")]
    cells = row.split(" | ")
    # MobileNet maps whole as it is: no rewrite; the Edge TPU build differs only by its uint8 I/O
    assert cells[1] == "none" and cells[3] == cells[5] == "-" and cells[6] == "1.00"
    for mapped in cells[2], cells[4]:
        ops, total = mapped.split(" ops")[0].split("/")
        assert ops == total and mapped.endswith(", 100.0% MACs")
    assert float(cells[7]) > 0  # its multiply-adds at 4 TOPS
    assert cells[8] == "0" and cells[9] == cells[7]  # no CPU part: the estimate is the TPU's time
    assert cells[10:] == ["0.8365 (-0.05)", "not evaluated |"]
    assert out.read_text().endswith("(no rewrite for that op yet): segnet_lite at EQUAL (dec0_unpool).\n")
    out.unlink()
    assert zoo.main(["--workdir", str(tmp_path / "runs"), "edgetpu", "mobilenet_v1_050", "--out", str(out)]) == 0
    assert out.read_text().endswith("Every Edge TPU build maps whole up to its CPU tail.\n")
    # the run is gone (runs are not in git): the row is made again, its measured figures kept as written
    (evaluated / "parity.json").unlink()
    measured = row.rsplit(" | ", 2)[0] + " | 0.8400 (+0.10) | 0.8390 (+0.00) |"
    out.write_text(zoo.EDGETPU_HEADER + measured + "\n")
    assert zoo.main(["--workdir", str(tmp_path / "runs"), "edgetpu", "mobilenet_v1_050", "--out", str(out)]) == 0
    [again] = [line for line in out.read_text().splitlines() if line.startswith("| mobilenet_v1_050 ")]
    assert again.split(" | ")[10:] == ["0.8400 (+0.10)", "0.8390 (+0.00) |"]
