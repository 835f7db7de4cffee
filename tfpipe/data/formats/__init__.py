"""On-disk annotation formats (COCO JSON, Pascal VOC, YOLO txt) <-> one in-memory `Dataset`.

Readers validate as they go and name the file and field or line of the first bad entry; writers
produce what the readers (and the tools that write these formats) read. Boxes in memory are
float xyxy in continuous pixel coordinates: (0, 0) is the top-left corner of the first pixel.
"""

from tfpipe.data.formats.records import Dataset, ImageRecord, safe_path

__all__ = ["Dataset", "ImageRecord", "safe_path"]
