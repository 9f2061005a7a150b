"""What every sample operator shares.

A sample operator is called as ``op(sample, rng) -> sample`` where ``rng`` is
the ``numpy.random.Generator`` of this sample (seeded from seed, epoch and
index by the reader); operators draw all their randomness from it. A batch
operator is called as ``op(samples) -> samples``.
"""
import numpy as np

__all__ = ['set_image', 'keep_faces', 'face_arrays', 'as_size']

FACE_KEYS = ('gt_bbox', 'gt_ignore')


def set_image(sample, image):
    """Store ``image`` and record its (h, w) as ``im_shape``."""
    sample['image'] = image
    sample['im_shape'] = np.array(image.shape[:2], dtype=np.float32)
    return sample


def face_arrays(sample):
    """(gt_bbox float32 [N, 4], gt_ignore bool [N]) of a sample, empty if absent."""
    boxes = np.asarray(sample.get('gt_bbox', np.zeros((0, 4))), dtype=np.float32).reshape(-1, 4)
    ignore = np.asarray(sample.get('gt_ignore', np.zeros(len(boxes))), dtype=bool).reshape(-1)
    if len(ignore) != len(boxes):
        raise ValueError('sample {}: gt_ignore has {} entries for {} boxes'.format(
            sample.get('im_file', '?'), len(ignore), len(boxes)))
    return boxes, ignore


def keep_faces(sample, boxes, ignore, keep):
    """Store the faces selected by the bool mask ``keep``."""
    sample['gt_bbox'] = np.ascontiguousarray(boxes[keep], dtype=np.float32)
    sample['gt_ignore'] = np.ascontiguousarray(ignore[keep], dtype=bool)
    return sample


def as_size(value, name):
    """``[h, w]`` from a config value (a list of two positive numbers)."""
    size = [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)] * 2
    if len(size) != 2 or min(size) <= 0:
        raise ValueError('{} must be [height, width] of positive integers, got {!r}'.format(name, value))
    return size
