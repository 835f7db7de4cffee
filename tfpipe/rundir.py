"""The run directory layout of ../shared/design.md: every stage reads and writes only here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tfpipe import io
from tfpipe.config import Config, dump

# --quantize value -> the name used in file names and reports ("none" is the fp32 model).
QUANT_LABELS = {"none": "fp32", "fp16": "fp16", "dynamic": "dynamic", "int8": "int8", "int16x8": "int16x8"}


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

    def tflite(self, quantize: str) -> Path:
        return self.export / f"model_{QUANT_LABELS[quantize]}.tflite"

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
