"""Quantization-aware training with tensorflow-model-optimization: the QAT model (qat/model.py:
apply_qat, calibrate_ranges, save_h5, load_qat_model) and the fine-tune stage (qat/finetune.py:
finetune, ensure_qat)."""

from tfpipe.qat.finetune import ensure_qat, finetune
from tfpipe.qat.model import apply_qat, calibrate_ranges, custom_objects, load_qat_model, quantize_config, save_h5

__all__ = ["apply_qat", "calibrate_ranges", "custom_objects", "ensure_qat", "finetune", "load_qat_model",
           "quantize_config", "save_h5"]
