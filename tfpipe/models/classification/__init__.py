"""Image classification families."""
