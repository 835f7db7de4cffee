"""The evaluator's runtimes: sharding over worker processes, delegates, and crash isolation.

The crash comes from a real delegate library (tests/fixtures/crash_delegate.c) that raises SIGSEGV
inside an invoke of the int8 model and leaves the float models alone.
"""

import json
import re
import shutil
import subprocess

import pytest

from tests.conftest import REPO, needs_fashion_mnist, run_cli, tiny_args

pytestmark = [pytest.mark.slow, needs_fashion_mnist]


@pytest.fixture(scope="session")
def crash_delegate(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("gcc builds the crashing delegate (apt-get install gcc)")
    library = tmp_path_factory.mktemp("delegate") / "crash_delegate.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-Wall", "-Werror", "-o", str(library),
                    str(REPO / "tests" / "fixtures" / "crash_delegate.c")], check=True)
    return library


def evaluate(workdir, *extra, uint8_io: bool = False):
    """`uint8_io`: the crash delegate claims a model's first QUANTIZE node, so the int8 file gets
    uint8 I/O first (the cpu default, int8 I/O, has none; the same arithmetic inside)."""
    run = workdir / "tiny"
    if uint8_io:
        assert run_cli("tfpipe.convert.__main__", tiny_args(workdir, "--quantize", "int8", "--io-dtype", "uint8")) == 0
    models = [str(run / "export" / f"model_{m}.tflite") for m in ("fp32", "int8")]
    return run_cli("tfpipe.evaluate.__main__", tiny_args(workdir, "--max-drop", "100", "--models", *models, *extra))


def saved_rows(workdir) -> dict:
    report = json.loads((workdir / "tiny" / "eval" / "parity.json").read_text())
    return {m["name"]: m for m in report["models"]}


def test_a_delegate_that_kills_its_worker_fails_only_that_model(tiny_run, copy_run, crash_delegate, monkeypatch,
                                                                   capsys):
    *_, baseline, _ = tiny_run
    monkeypatch.setenv("CRASH_DELEGATE_AT", "3")  # the third image of each shard
    assert evaluate(copy_run, "--workers", "2", "--delegate", str(crash_delegate), uint8_io=True) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    # 256 test images in two shards; each shard is run twice, then given up.
    assert ("model_int8.tflite: the runtime worker died (SIGSEGV) at image 2 of images 0-127, in 2 of 2 attempts; "
            "model_int8.tflite: the runtime worker died (SIGSEGV) at image 130 of images 128-255, in 2 of 2 "
            "attempts") in err[0]
    rows = saved_rows(copy_run)
    assert rows["int8"]["status"] == "failed" and "metrics" not in rows["int8"]
    assert len(rows["int8"]["crash_logs"]) == 4 and "status -11" in rows["int8"]["crash_logs"][0]
    # the other models' results are kept, and are what they are without the delegate
    expected = {m["name"]: m for m in baseline["models"]}
    assert rows["fp32"]["status"] == "ok" and rows["fp32"]["metrics"] == expected["fp32"]["metrics"]
    assert rows["float"]["metrics"] == expected["float"]["metrics"]
    page = (copy_run / "tiny" / "eval" / "report.html").read_text()
    assert "FAILED" in page and "at image 130" in page


def test_a_crash_that_does_not_recur_is_rerun_and_changes_nothing(tiny_run, copy_run, crash_delegate, tmp_path,
                                                                   monkeypatch, capsys):
    """Two workers, each crashing once: the shards' reruns give exactly the one-worker results."""
    *_, baseline, _ = tiny_run
    monkeypatch.setenv("CRASH_DELEGATE_AT", "5")
    monkeypatch.setenv("CRASH_DELEGATE_MARK", str(tmp_path / "crashed-once"))
    assert evaluate(copy_run, "--workers", "2", "--delegate", str(crash_delegate), uint8_io=True) == 0
    assert "runtime worker crash(es), recovered by rerunning" in capsys.readouterr().out
    rows = saved_rows(copy_run)
    expected = {m["name"]: m for m in baseline["models"]}
    for name in ("fp32", "int8"):
        for key in ("metrics", "agreement_top1", "outputs", "worst_disagreements"):
            assert rows[name][key] == expected[name][key], (name, key)
    # Which workers crash depends on timing (one that loads after the other's crash finds the mark).
    crashed_at = [int(re.search(r"at image (\d+)", c).group(1)) for c in rows["int8"]["recovered_crashes"]]
    assert crashed_at and set(crashed_at) <= {4, 132} and len(set(crashed_at)) == len(crashed_at)


def test_three_workers_give_the_one_worker_results(tiny_run, copy_run):
    *_, baseline, _ = tiny_run
    assert evaluate(copy_run, "--workers", "3") == 0
    rows = saved_rows(copy_run)
    expected = {m["name"]: m for m in baseline["models"]}
    for name in ("float", "fp32", "int8"):
        assert rows[name]["metrics"] == expected[name]["metrics"]
    assert rows["int8"]["outputs"] == expected["int8"]["outputs"]


@pytest.mark.parametrize("delegate, message", [
    ("edgetpu", "--delegate edgetpu: cannot load libedgetpu.so.1"),
    ("/nonexistent/libdelegate.so", "--delegate /nonexistent/libdelegate.so: cannot load /nonexistent/libdelegate.so"),
])
def test_an_absent_delegate_is_bad_input_and_nothing_is_written(copy_run, capsys, delegate, message):
    previous = {p: p.read_bytes() for p in (copy_run / "tiny" / "eval").rglob("*") if p.is_file()}
    assert evaluate(copy_run, "--delegate", delegate) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert {p: p.read_bytes() for p in (copy_run / "tiny" / "eval").rglob("*") if p.is_file()} == previous


@pytest.mark.parametrize("field, value, message", [
    ("preprocess", {"height": 48}, "model.json: preprocess height 48 (config: 32)"),
    ("classes", ["a", "b"], "model.json: classes ['a', 'b'] differ from the dataset's"),
])
def test_a_model_json_that_does_not_describe_the_config_is_named_and_nothing_is_written(copy_run, capsys, field,
                                                                                         value, message):
    """Every model is decoded as model.json says (the device's path), so a bundle converted from
    another config stops the evaluator before any work instead of being silently misread."""
    path = copy_run / "tiny" / "export" / "model.json"
    bundle = json.loads(path.read_text())
    bundle[field] = {**bundle[field], **value} if isinstance(value, dict) else value
    path.write_text(json.dumps(bundle))
    previous = {p: p.read_bytes() for p in (copy_run / "tiny" / "eval").rglob("*") if p.is_file()}
    assert evaluate(copy_run) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert {p: p.read_bytes() for p in (copy_run / "tiny" / "eval").rglob("*") if p.is_file()} == previous
