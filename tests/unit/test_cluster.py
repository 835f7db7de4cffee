"""TF_CONFIG checking, the chief rule, and the launcher's helpers (tfpipe/train/cluster.py)."""

import json
import socket

import pytest

from tfpipe.errors import TfpipeError
from tfpipe.train import cluster


def tf_config(workers, kind="worker", index=0, chief=None) -> str:
    jobs = {"worker": workers} if chief is None else {"chief": chief, "worker": workers}
    return json.dumps({"cluster": jobs, "task": {"type": kind, "index": index}})


def test_a_valid_tf_config():
    place = cluster.parse(tf_config(["a:1", "b:2"], index=1))
    assert (place.task_type, place.task_index, place.address, place.size) == ("worker", 1, "b:2", 2)
    assert not place.is_chief
    assert place.describe(2) == "Worker 1 (b:2) of 2 processes, the chief is worker 0; 2 replicas in sync"


@pytest.mark.parametrize("text, kind, index, chief", [
    (tf_config(["a:1", "b:2"]), "worker", 0, True),
    (tf_config(["a:1", "b:2"], index=1), "worker", 1, False),
    (tf_config(["b:2"], chief=["a:1"]), "worker", 0, False),  # with a chief job, worker 0 is not it
    (tf_config(["b:2"], kind="chief", chief=["a:1"]), "chief", 0, True),
])
def test_tensorflows_chief_rule(text, kind, index, chief):
    place = cluster.parse(text)
    assert (place.task_type, place.task_index, place.is_chief) == (kind, index, chief)


@pytest.mark.parametrize("text, names", [
    ('{"cluster": ', "not JSON (Expecting value at character 12)"),
    ("[1, 2]", 'needs a "cluster" object'),
    ('{"task": {"type": "worker", "index": 0}}', 'needs a "cluster" object'),
    (json.dumps({"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}}),
     "cluster.ps is not a job of multi-worker training (accepted jobs: chief, worker)"),
    (json.dumps({"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}),
     'cluster.worker must be a non-empty list of "host:port" addresses'),
    (tf_config(["a:1", "b"]), "cluster.worker[1] = 'b' is not a \"host:port\" address (port 1-65535)"),
    (tf_config(["a:1", "b:70000"]), "cluster.worker[1] = 'b:70000' is not"),
    (tf_config(["a:1", 5]), "cluster.worker[1] = 5 is not"),
    (tf_config(["a:1"], kind="chief", chief=["c:1", "d:1"]), "cluster.chief has 2 addresses"),
    (tf_config(["a:1", "a:1"]), "an address appears twice in cluster (a:1)"),
    (json.dumps({"cluster": {"worker": ["a:1"]}}), 'needs a "task" object'),
    (tf_config(["a:1", "b:2"], kind="chief"), "task.type 'chief' is not a job of the cluster (it has worker)"),
    (tf_config(["a:1", "b:2"], index=2), "task.index 2 is out of range: cluster.worker has 2 address(es), so 0-1"),
    (tf_config(["a:1", "b:2"], index=-1), "task.index -1 is out of range"),
    (tf_config(["a:1", "b:2"], index="1"), "task.index '1' is out of range"),
    (tf_config(["a:1", "b:2"], index=True), "task.index True is out of range"),
])
def test_bad_tf_configs_are_one_line_errors_naming_the_field(text, names):
    with pytest.raises(TfpipeError) as e:
        cluster.parse(text)
    assert str(e.value).startswith("TF_CONFIG: ") and names in str(e.value), str(e.value)
    assert "\n" not in str(e.value) and "accepted: JSON like" in str(e.value)


def test_from_environment_and_is_chief(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert cluster.from_environment() is None and cluster.is_chief()
    monkeypatch.setenv("TF_CONFIG", tf_config(["a:1", "b:2"], index=1))
    assert not cluster.is_chief()
    monkeypatch.setenv("TF_CONFIG", tf_config(["a:1", "b:2"], index=0))
    assert cluster.is_chief()


def test_a_port_in_use_is_named():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        place = cluster.parse(tf_config([f"127.0.0.1:{port}"]))
        with pytest.raises(TfpipeError, match=rf"task worker 0's port {port} \(127.0.0.1:{port}\) is in use"):
            cluster.check_port_free(place)
    cluster.check_port_free(place)  # closed again: free


def test_prepare_refuses_once_tensorflow_has_started(monkeypatch):
    import tfpipe.backend  # noqa: F401  (this process has started TensorFlow)

    monkeypatch.setenv("TF_CONFIG", tf_config([f"127.0.0.1:{cluster.free_ports(1)[0]}"]))
    with pytest.raises(TfpipeError, match="must be chosen when the process starts"):
        cluster.prepare("multiworker")
    cluster.prepare("default")  # other strategies need nothing at start-up


def test_local_tf_configs_name_distinct_free_ports():
    configs = [json.loads(text) for text in cluster.local_tf_configs(3)]
    addresses = configs[0]["cluster"]["worker"]
    assert len(set(addresses)) == 3 and all(a.startswith("127.0.0.1:") for a in addresses)
    assert [c["task"] for c in configs] == [{"type": "worker", "index": i} for i in range(3)]
    assert all(c["cluster"]["worker"] == addresses for c in configs)
    for i in range(3):
        assert cluster.parse(json.dumps(configs[i])).is_chief == (i == 0)


def test_without_flag():
    argv = ["--config", "c.yaml", "--workers", "2", "--set", "a=1", "--workers=3"]
    assert cluster.without_flag(argv, "--workers") == ["--config", "c.yaml", "--set", "a=1"]


def test_the_non_chief_saves_nowhere_in_the_run(tmp_path, monkeypatch):
    written = []

    def save(path):
        written.append(path)
        with open(path, "w") as f:
            f.write("weights")

    monkeypatch.setenv("TF_CONFIG", tf_config(["a:1", "b:2"], index=1))
    cluster.save_from_every_worker(tmp_path / "model.keras", save)
    assert written and not (tmp_path / "model.keras").exists() and not list(tmp_path.iterdir())
    assert not (tmp_path.parent / written[0]).exists()  # its scratch copy is gone
    monkeypatch.setenv("TF_CONFIG", tf_config(["a:1", "b:2"], index=0))
    cluster.save_from_every_worker(tmp_path / "model.keras", save)
    assert (tmp_path / "model.keras").read_text() == "weights"
