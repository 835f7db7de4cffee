"""Names of the device contract that every floor shares, TensorFlow-free: the outputs a device
reads by name from a tfpipe .tflite (model.json describes them). Detector outputs are named in
tfpipe.runtime.detection, beside their decoding."""

PROBABILITIES = "probabilities"  # classification [1, classes], segmentation [1, H, W, classes]: softmax
CLASS_MAP = "class_map"  # segmentation, optional: uint8 [1, H, W], the argmax over classes, in the graph
