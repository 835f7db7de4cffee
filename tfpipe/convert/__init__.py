"""Conversion to TFLite and the export bundle (model_<q>.tflite, labels.txt, model.json)."""
