"""Decode: read the image file of a record and fit its faces to the image."""
import numpy as np

from ppdet_hambox.core.workspace import register
from ppdet_hambox.data.image_io import read_image
from ppdet_hambox.data.transform.base import face_arrays, keep_faces, set_image

__all__ = ['Decode', 'attach_image']


def attach_image(sample, image):
    """Make ``image`` the sample's original image: set ``image``,
    ``ori_shape``, ``im_shape`` and ``scale_factor`` (1, 1), clip the faces to
    it and drop those left with no area."""
    h, w = image.shape[:2]
    set_image(sample, image)
    sample['ori_shape'] = np.array([h, w], dtype=np.int64)
    sample['scale_factor'] = np.ones(2, dtype=np.float32)
    boxes, ignore = face_arrays(sample)
    clipped = np.empty_like(boxes)
    clipped[:, 0::2] = np.clip(boxes[:, 0::2], 0, w)
    clipped[:, 1::2] = np.clip(boxes[:, 1::2], 0, h)
    keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    return keep_faces(sample, clipped, ignore, keep)


@register
class Decode:
    """``im_file`` -> ``image`` (uint8 BGR), ``ori_shape``, ``im_shape``,
    ``scale_factor`` (1, 1), decoded by ``read_image`` (EXIF orientation
    applied). Boxes are clipped to the image; faces left with no area are
    dropped. A missing or undecodable file raises ``ImageReadError``, which
    the reader turns into a skipped sample."""

    def __call__(self, sample, rng=None):
        return attach_image(sample, read_image(sample['im_file']))
