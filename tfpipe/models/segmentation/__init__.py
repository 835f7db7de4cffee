"""Semantic segmentation models on the zoo's backbones: FCN, U-Net, SegNet, PSPNet, DeepLabv3+.
Each outputs `probabilities`, a per-pixel softmax at the input's size."""
