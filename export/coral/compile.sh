#!/usr/bin/env bash
# Compile a run's int8 model for the Edge TPU: export/coral/compile.sh runs/NAME/export
# The Edge TPU build (model_int8_tpu.tflite, from convert --target edgetpu) when there is one, else
# model_int8.tflite; writes <model>_edgetpu.tflite next to it (run.py picks it up).
# edgetpu_compiler: https://coral.ai/docs/edgetpu/compiler/ (x86-64 Debian/Ubuntu only).
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 RUN_EXPORT_FOLDER (the folder with model.json and model_int8.tflite)" >&2
  exit 2
fi
export_dir=$1
model="$export_dir/model_int8_tpu.tflite"
[ -f "$model" ] || model="$export_dir/model_int8.tflite"
if [ ! -f "$model" ]; then
  echo "$0: error: $model: no such file (convert with: python -m tfpipe.convert --quantize int8 --target edgetpu)" >&2
  exit 2
fi
if ! command -v edgetpu_compiler > /dev/null; then
  echo "$0: error: edgetpu_compiler is not on PATH (install it: https://coral.ai/docs/edgetpu/compiler/)" >&2
  exit 2
fi
# -s prints the op-by-op mapping; compare it with the checker's prediction in compat_edgetpu.json
edgetpu_compiler -s -o "$export_dir" "$model"
echo "Wrote ${model%.tflite}_edgetpu.tflite; run it with: python export/coral/run.py --bundle $export_dir IMAGE"
