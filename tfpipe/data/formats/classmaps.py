"""A record's class map for semantic segmentation, whatever the format keeps: uint8 [H, W], 0 the
background, c + 1 the dataset's class c, 255 void (left out of the loss and of mIoU).

A class-map PNG (VOC's SegmentationClass palette PNGs, a masks folder, FashionScenes) holds the
ids as its pixel values or palette indices. COCO holds instances: they are painted with their
class, as torchvision's segmentation reference does (references/segmentation/coco_utils.py,
ConvertCocoPolysToMask): a pixel covered by two instances is void, crowd regions are void.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfpipe import io
from tfpipe.data.formats.coco import instance_masks
from tfpipe.data.formats.records import ImageRecord, safe_path
from tfpipe.errors import TfpipeError

VOID = 255
GRAYSCALE_MODES = ("1", "L", "P")  # a PNG mode whose values are the ids (P: palette indices)


def read_png(path: Path) -> np.ndarray:
    """The ids of a class-map PNG, uint8 [H, W]. PIL, because tf.io.decode_png turns a palette PNG
    into its colours."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as mask:
            if mask.mode not in GRAYSCALE_MODES:
                raise TfpipeError(f"{path}: a {mask.mode} image is not a class map",
                                  "save one class id per pixel: an 8-bit grayscale or palette PNG")
            return np.asarray(mask, np.uint8)
    except (UnidentifiedImageError, OSError) as e:
        raise TfpipeError(f"{path}: unreadable or corrupt mask ({e})", "replace the file") from None


def class_map(root: Path, record: ImageRecord) -> np.ndarray:
    """The record's class map (see the module docstring)."""
    if record.mask:
        return read_png(safe_path(root, record.mask, str(root)))
    if record.segmentations is None and not len(record.classes):
        return np.zeros((record.height, record.width), np.uint8)  # an image without objects: all background
    if record.segmentations is None:
        raise TfpipeError(f"{record.image}: no mask and no instance segmentation",
                          "semantic segmentation needs a class-map PNG or COCO polygons/RLE per object")
    masks = instance_masks(record)
    out = np.zeros((record.height, record.width), np.uint8)
    for mask, k in zip(masks, record.classes, strict=True):
        out[mask] = k + 1
    out[masks.sum(axis=0) > 1] = VOID
    crowd = record.iscrowd if len(record.iscrowd) == len(masks) else np.zeros(len(masks), bool)
    if crowd.any():
        out[masks[crowd].any(axis=0)] = VOID
    return out


def has_class_map(record: ImageRecord) -> bool:
    return bool(record.mask) or record.segmentations is not None


def voc_palette() -> list[int]:
    """Pascal VOC's colour map (the devkit's bitget construction): id 0 black, 1 dark red, ...,
    255 (void) cream; 768 values for PIL's putpalette."""
    palette = []
    for k in range(256):
        r = g = b = 0
        c = k
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette += [r, g, b]
    return palette


def write_png(path: Path, ids: np.ndarray) -> None:
    """A class map as a palette PNG with VOC's colours: the ids are the palette indices, so VOC
    tools, image viewers and `read_png` all read it."""
    from PIL import Image

    image = Image.fromarray(np.asarray(ids, np.uint8), "P")
    image.putpalette(voc_palette())
    io.write_with(path, lambda temporary: image.save(temporary, format="PNG"))
