"""The faces the anchor statistics count, under each protocol.

- ``original``: every annotated box of positive width and height (flagged
  invalid or not), in original image coordinates.
- ``train``: see :mod:`ppdet_hambox.analysis.train_faces`.
"""
import numpy as np

from ppdet_hambox.data.source.widerface import read_wider_annotation

__all__ = ['original_faces']


def original_faces(anno_path):
    """``(boxes float64 [N, 4], info dict)`` for the ``original`` protocol."""
    annotation = read_wider_annotation(anno_path)
    keep = annotation.positive_size()
    info = {
        'annotation': str(anno_path),
        'images': annotation.num_images,
        'box_lines': int(len(annotation.boxes)),
        'faces': int(keep.sum()),
        'invalid_faces_included': int((keep & annotation.invalid()).sum()),
        'image_grid': 'unbounded right and bottom, original image coordinates',
    }
    return annotation.boxes[keep].astype(np.float64), info
