"""Training on several processes (tf.distribute.MultiWorkerMirroredStrategy): the one place that
reads TF_CONFIG, checks it before TensorFlow does (TensorFlow's own failures are a C++ abort or a
hang), says which process is the chief, and starts N local workers for `--workers N`.

Who writes what: the chief alone writes the run directory (config, history, TensorBoard, models).
Reading a model's weights under this strategy is a collective operation (BatchNorm's moving
statistics are all-reduced when read), so every worker saves in the same order; the others save
into a temporary folder that is removed at once (`save_from_every_worker`), as tf_keras's own
BackupAndRestore does with its `workertemp_N` folders.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import tfpipe
from tfpipe import io
from tfpipe.errors import TfpipeError
from tfpipe.rundir import RunDir

ENV = "TF_CONFIG"
JOBS = ("chief", "worker")  # MultiWorkerMirroredStrategy's jobs (no parameter servers, no evaluator)
EXAMPLE = ('{"cluster": {"worker": ["hostA:12345", "hostB:12345"]}, '
           '"task": {"type": "worker", "index": 0}}')


@dataclass(frozen=True)
class Cluster:
    jobs: dict[str, list[str]]  # job -> "host:port" of each of its processes
    task_type: str
    task_index: int

    @property
    def address(self) -> str:
        return self.jobs[self.task_type][self.task_index]

    @property
    def size(self) -> int:
        return sum(len(addresses) for addresses in self.jobs.values())

    @property
    def is_chief(self) -> bool:
        """TensorFlow's rule: the `chief` job's process, or worker 0 when there is no chief."""
        if "chief" in self.jobs:
            return self.task_type == "chief"
        return self.task_index == 0

    @property
    def chief_name(self) -> str:
        return "chief 0" if "chief" in self.jobs else "worker 0"

    def describe(self, replicas: int) -> str:
        role = "the chief" if self.is_chief else f"the chief is {self.chief_name}"
        return (f"{self.task_type.capitalize()} {self.task_index} ({self.address}) of {self.size} processes, "
                f"{role}; {replicas} replicas in sync")


def _fail(what: str) -> TfpipeError:
    return TfpipeError(f"{ENV}: {what}", f"accepted: JSON like {EXAMPLE} (docs/training.md)")


def parse(text: str) -> Cluster:
    """A TF_CONFIG value -> Cluster, or a TfpipeError naming the field and what is accepted."""
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise _fail(f"not JSON ({e.msg} at character {e.pos})") from None
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict) or not config["cluster"]:
        raise _fail('needs a "cluster" object naming the processes of each job')
    jobs: dict[str, list[str]] = {}
    for job, addresses in config["cluster"].items():
        if job not in JOBS:
            raise _fail(f"cluster.{job} is not a job of multi-worker training (accepted jobs: {', '.join(JOBS)})")
        if not isinstance(addresses, list) or not addresses:
            raise _fail(f"cluster.{job} must be a non-empty list of \"host:port\" addresses")
        for k, address in enumerate(addresses):
            host, _, port = str(address).rpartition(":")
            if not isinstance(address, str) or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise _fail(f"cluster.{job}[{k}] = {address!r} is not a \"host:port\" address (port 1-65535)")
        jobs[job] = addresses
    if len(jobs.get("chief", [])) > 1:
        raise _fail(f"cluster.chief has {len(jobs['chief'])} addresses; a cluster has at most one chief")
    every = [address for addresses in jobs.values() for address in addresses]
    if len(set(every)) < len(every):
        twice = sorted({address for address in every if every.count(address) > 1})
        raise _fail(f"an address appears twice in cluster ({', '.join(twice)})")
    task = config.get("task")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise _fail('needs a "task" object: {"type": "worker", "index": N}, this process\'s place in the cluster')
    kind, index = task["type"], task["index"]
    if kind not in jobs:
        raise _fail(f"task.type {kind!r} is not a job of the cluster (it has {', '.join(jobs)})")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(jobs[kind]):
        raise _fail(f"task.index {index!r} is out of range: cluster.{kind} has {len(jobs[kind])} "
                    f"address(es), so 0-{len(jobs[kind]) - 1}")
    return Cluster(jobs, kind, index)


def from_environment() -> Cluster | None:
    """This process's place in the cluster, or None when TF_CONFIG is unset (one process)."""
    text = os.environ.get(ENV)
    return parse(text) if text else None


def is_chief() -> bool:
    """Whether this process writes the run directory: always, unless it is a non-chief worker."""
    cluster = from_environment()
    return cluster is None or cluster.is_chief


def check_port_free(cluster: Cluster) -> None:
    """TensorFlow's gRPC server would listen on this process's port on every interface; a port in
    use gives a C++ abort, or, with SO_REUSEPORT, two servers sharing the port and a hang."""
    port = int(cluster.address.rpartition(":")[2])
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed socket's TIME_WAIT is no conflict
        try:
            probe.bind(("", port))
        except OSError as e:
            raise TfpipeError(f"{ENV}: task {cluster.task_type} {cluster.task_index}'s port {port} "
                              f"({cluster.address}) is in use on this machine ({e.strerror})",
                              "stop the process that holds it (`ss -ltnp | grep :PORT`) or give this task "
                              "another port") from None


def prepare(strategy: str) -> None:
    """Called by a training command before anything imports TensorFlow: for train.strategy
    multiworker, check TF_CONFIG and this process's port, and ask tfpipe.backend to make the
    strategy first thing (see there)."""
    if strategy != "multiworker":
        return
    place = from_environment()
    if place is None:
        raise TfpipeError("train.strategy: multiworker needs the TF_CONFIG environment variable",
                          "set it on every worker as docs/training.md shows, try it on this machine with "
                          "`python -m tfpipe.train --workers N`, or use default or mirrored")
    check_port_free(place)
    if "tfpipe.backend" in sys.modules:
        raise TfpipeError("train.strategy: multiworker must be chosen when the process starts, and this "
                          "command started TensorFlow before it trains",
                          "train with `python -m tfpipe.train` and `python -m tfpipe.qat` (TF_CONFIG or "
                          "--workers N) first; this command then uses their models")
    os.environ[tfpipe.MULTIWORKER_SWITCH] = "1"


def save_from_every_worker(path: Path, save: Callable[[str], None]) -> None:
    """Run `save(file)` on every worker (see the module's docstring): the chief writes `path`
    atomically, the others a temporary file that is removed."""
    if is_chief():
        io.write_with(path, save)
        return
    scratch = tempfile.mkdtemp(prefix="tfpipe-worker-")
    try:
        save(str(Path(scratch) / path.name))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@contextmanager
def run_writer(run: RunDir, cfg) -> Iterator[None]:
    """A training stage's hold on its run directory: the chief takes the writer lock and writes
    config.yaml; another worker takes nothing (it runs beside the chief that holds the lock) and
    writes nothing there."""
    if not is_chief():
        yield
        return
    with run.writer(cfg):
        run.write_config(cfg)
        yield


def without_flag(argv: list[str], flag: str) -> list[str]:
    """argv less `flag VALUE` / `flag=VALUE` (the launcher's own flag, not the workers')."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == flag:
            skip = True
        elif not arg.startswith(f"{flag}="):
            out.append(arg)
    return out


# --workers N: a cluster of local processes ------------------------------------------------------

def free_ports(count: int) -> list[int]:
    """`count` loopback ports no one listens on now (bound together, so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def local_tf_configs(workers: int) -> list[str]:
    addresses = [f"127.0.0.1:{port}" for port in free_ports(workers)]
    return [json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": i}})
            for i in range(workers)]


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "".join(path.read_text(errors="replace").splitlines(keepends=True)[-lines:])
    except OSError:
        return ""


def _ended(code: int) -> str:
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"


def launch(module: str, argv: list[str], workers: int) -> int:
    """Start `python -m module argv` as `workers` processes of one cluster on 127.0.0.1 (worker 0,
    the chief, prints to this terminal; the others log to a temporary folder, shown when one fails)
    and wait for all. When one fails, the others are stopped (they would wait for it forever in the
    next all-reduce) and its exit status is returned (128 + signal for a killed one); rerunning
    the same command resumes from the last completed epoch."""
    if workers < 1:
        raise TfpipeError(f"--workers {workers}: needs at least 1 process", "e.g. --workers 2")
    logs = Path(tempfile.mkdtemp(prefix="tfpipe-workers-"))
    command = [sys.executable, "-m", module, *argv, "--set", "train.strategy=multiworker"]
    tf_configs = local_tf_configs(workers)
    processes = []
    for index, tf_config in enumerate(tf_configs):
        env = {**os.environ, ENV: tf_config, "PYTHONUNBUFFERED": "1"}
        if index == 0:
            processes.append(subprocess.Popen(command, env=env))
        else:
            with (logs / f"worker{index}.log").open("wb") as log:
                processes.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
    addresses = json.loads(tf_configs[0])["cluster"]["worker"]
    print(f"Started {workers} local workers (pids {', '.join(str(p.pid) for p in processes)}) on "
          f"{', '.join(addresses)}; worker 0 is the chief and prints here, the others log to {logs}", flush=True)
    try:
        while True:
            codes = [p.poll() for p in processes]
            failed = next((i for i, code in enumerate(codes) if code not in (None, 0)), None)
            if failed is not None:
                code = codes[failed]
                for p in processes:
                    if p.poll() is None:
                        p.terminate()
                for p in processes:
                    p.wait()
                log = logs / f"worker{failed}.log"
                if failed and log.is_file():
                    print(f"--- last lines of worker {failed}'s log {log} ---\n{_tail(log)}", file=sys.stderr)
                print(f"tfpipe: worker {failed} {_ended(code)}; stopped the other workers. Rerun the same "
                      "command to resume from the last completed epoch", file=sys.stderr, flush=True)
                return 128 - code if code < 0 else code
            if all(code == 0 for code in codes):
                shutil.rmtree(logs, ignore_errors=True)
                return 0
            time.sleep(0.2)
    except KeyboardInterrupt:
        for p in processes:
            if p.poll() is None:
                p.terminate()
        for p in processes:
            p.wait()
        raise
