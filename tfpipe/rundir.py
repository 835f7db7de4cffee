"""The run directory layout: every stage reads and writes only here (config.yaml, train/, qat/, export/, eval/)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tfpipe import io
from tfpipe.config import Config, dump, to_dict
from tfpipe.errors import TfpipeError
from tfpipe.runtime.contract import model_label


@dataclass(frozen=True)
class RunDir:
    root: Path

    @classmethod
    def for_config(cls, cfg: Config, workdir: str | Path = "runs") -> RunDir:
        return cls(Path(workdir) / cfg.name)

    # train/
    @property
    def train(self) -> Path:
        return self.root / "train"

    @property
    def float_model(self) -> Path:
        return self.train / "model.keras"

    def snapshot(self, k: int) -> Path:
        """The k-th model (from 1) of a snapshot ensemble (train.snapshots)."""
        return self.train / "snapshots" / f"snapshot_{k}.keras"

    @property
    def checkpoints(self) -> Path:
        return self.train / "checkpoints"

    # qat/  (H5, not .keras: tf_keras' .keras loader cannot restore tfmot's QuantizeLayer state)
    @property
    def qat_model(self) -> Path:
        return self.root / "qat" / "model.h5"

    # export/
    @property
    def export(self) -> Path:
        return self.root / "export"

    def tflite(self, quantize: str, engine: str = "converter", tpu_build: bool = False) -> Path:
        return self.export / f"model_{model_label(quantize, engine, tpu_build)}.tflite"

    @property
    def model_json(self) -> Path:
        return self.export / "model.json"

    @property
    def labels(self) -> Path:
        return self.export / "labels.txt"

    # eval/
    @property
    def eval(self) -> Path:
        return self.root / "eval"

    def write_config(self, cfg: Config) -> None:
        io.write_text(self.root / "config.yaml", dump(cfg))

    def check_made_by(self, cfg: Config) -> None:
        """Refuse to write a run whose trained model another task or model made (resuming its
        checkpoint with another architecture failed with hundreds of warnings and a ValueError,
        after config.yaml had already been rewritten)."""
        import yaml

        recorded = self.root / "config.yaml"
        trained = self.float_model.is_file() or (self.checkpoints.is_dir() and any(self.checkpoints.iterdir()))
        if not trained or not recorded.is_file():
            return
        try:
            old = yaml.safe_load(recorded.read_text()) or {}
        except (yaml.YAMLError, UnicodeDecodeError):
            old = {}
        new = to_dict(cfg)
        if any(old.get(key) != new[key] for key in ("task", "model")):
            def said(config: dict) -> str:
                model = config.get("model") or {}
                size = "x".join(str(d) for d in [*(model.get("input_size") or []), model.get("channels")])
                return f"task {config.get('task')}, model {model.get('name')} {size} {model.get('args') or ''}".rstrip()
            raise TfpipeError(f"{self.root}: its trained model was made by {said(old)}; this config asks for "
                              f"{said(new)}", f"give this run another name (--set name=...), or delete {self.root} "
                              "to start over")

    @contextmanager
    def writer(self, cfg: Config | None = None) -> Iterator[None]:
        """Hold the run's writer lock (fcntl.flock on .lock, released by the kernel when the process
        dies, even by kill -9) for a stage that writes here. A second writer is refused: two converts
        at once each rewrote model.json from what they had read, and one model was lost. Holding the
        lock also proves that no writer is alive, so temporary files left by killed ones are removed."""
        created = [p for p in (self.root, *self.root.parents) if not p.exists()]
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                raise TfpipeError(f"{self.root}: another tfpipe command (pid {holder}) is writing this run",
                                  "wait for it to finish, or give this one another name (--set name=...)") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            io.remove_stale_temporaries(self.root)
            if cfg is not None:
                self.check_made_by(cfg)
            yield
        finally:
            # a stage refused before it wrote anything leaves no trace (not even the folders it made)
            if created and [p.name for p in self.root.iterdir()] == [".lock"]:
                (self.root / ".lock").unlink()
                for folder in created:
                    if folder.exists() and not any(folder.iterdir()):
                        folder.rmdir()
            os.close(fd)  # closing releases the lock
