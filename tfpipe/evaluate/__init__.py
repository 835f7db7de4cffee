"""Task metrics and parity of converted models with the float model."""
