"""Instance segmenters: a detector with a mask head (and a keypoint head) per detection."""
