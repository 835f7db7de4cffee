"""Quantization-aware training with tensorflow-model-optimization: the QAT model (qat/model.py:
apply_qat, calibrate_ranges, save_h5, load_qat_model) and the fine-tune stage (qat/finetune.py:
finetune, ensure_qat).

The names are imported on first use (PEP 562): `python -m tfpipe.qat` imports this package before
its command runs, and a multi-worker command must start TensorFlow itself (train/cluster.py)."""

_HOME = {"ensure_qat": "finetune", "finetune": "finetune", "apply_qat": "model", "calibrate_ranges": "model",
         "custom_objects": "model", "load_qat_model": "model", "quantize_config": "model", "save_h5": "model"}

__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module 'tfpipe.qat' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"tfpipe.qat.{_HOME[name]}"), name)
    globals()[name] = value  # over the submodule of the same name the import just bound (finetune)
    return value
