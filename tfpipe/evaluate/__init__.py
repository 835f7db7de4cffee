"""Parity of converted models with the float model (the metrics themselves: tfpipe.metrics)."""
