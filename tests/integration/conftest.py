"""The tiny real run that the integration tests share (built once per session, read-only:
a test that writes into a run works on a copy, `copy_run`)."""

import json
import shutil

import pytest

from tests.conftest import run_cli, tiny_args


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """As a user would: `convert` on an empty run trains and runs QAT first, then `evaluate`."""
    from contextlib import redirect_stdout
    from io import StringIO

    from tests.conftest import QUICKSTART, TINY
    from tfpipe import tasks
    from tfpipe.config import load_config
    from tfpipe.rundir import RunDir

    workdir = tmp_path_factory.mktemp("runs")
    common = tiny_args(workdir)
    printed = StringIO()
    with redirect_stdout(printed):
        assert run_cli("tfpipe.convert.__main__", ["--quantize", "none", "--quantize", "int8", *common]) == 0
        assert run_cli("tfpipe.convert.__main__", ["--quantize", "fp16", "--quantize", "dynamic",
                                                   "--quantize", "int16x8", *common]) == 0
        # 256 images are too few for a 0.5-point gate (one image is 0.39 points): the gate has its own test.
        assert run_cli("tfpipe.evaluate.__main__", [*common, "--max-drop", "100"]) == 0
    cfg = load_config(QUICKSTART, [*TINY, "name=tiny"])
    run = RunDir.for_config(cfg, workdir)
    report = json.loads((run.eval / "parity.json").read_text())
    return cfg, run, tasks.of(cfg).load_splits(cfg), report, printed.getvalue()


@pytest.fixture
def copy_run(tiny_run, tmp_path):
    """A private copy of the tiny run; returns the workdir that holds it (pass it to tiny_args)."""
    _, run, *_ = tiny_run
    shutil.copytree(run.root, tmp_path / run.root.name)
    return tmp_path
