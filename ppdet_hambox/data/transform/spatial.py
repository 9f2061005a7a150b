"""Flip and resizes. Each keeps boxes, ``im_shape`` and ``scale_factor`` in step."""
import math

import cv2
import numpy as np

from ppdet_hambox.core.schema import NON_NEGATIVE, POSITIVE, PROBABILITY
from ppdet_hambox.core.workspace import register
from ppdet_hambox.data.transform.base import as_size, face_arrays, keep_faces, set_image
from ppdet_hambox.data.transform.geometry import INTERPOLATIONS

__all__ = ['RandomFlip', 'Resize', 'ResizeKeepRatio', 'resize_sample']


@register
class RandomFlip:
    """Horizontal flip with probability ``prob``."""
    __ranges__ = {'prob': PROBABILITY}

    def __init__(self, prob=0.5):
        self.prob = prob

    def __call__(self, sample, rng):
        if rng.random() >= self.prob:
            return sample
        image = sample['image']
        width = image.shape[1]
        set_image(sample, cv2.flip(image, 1))
        boxes, ignore = face_arrays(sample)
        flipped = boxes.copy()
        flipped[:, 0] = width - boxes[:, 2]
        flipped[:, 2] = width - boxes[:, 0]
        return keep_faces(sample, flipped, ignore, np.ones(len(boxes), dtype=bool))


def _interpolation(interp, name):
    if interp != 'auto' and interp not in INTERPOLATIONS:
        raise ValueError('{}.interp must be one of auto, {}; got {!r}'.format(
            name, ', '.join(INTERPOLATIONS), interp))
    return interp


def resize_sample(sample, new_h, new_w, interp='auto'):
    """Resize image and faces to ``new_h x new_w``. ``interp='auto'`` uses
    pixel-area averaging to shrink and bilinear to enlarge."""
    image = sample['image']
    h, w = image.shape[:2]
    new_h, new_w = max(1, int(new_h)), max(1, int(new_w))
    if (new_h, new_w) == (h, w):
        return sample
    if interp == 'auto':
        interp = 'area' if new_h * new_w < h * w else 'linear'
    set_image(sample, cv2.resize(image, (new_w, new_h), interpolation=INTERPOLATIONS[interp]))
    sx, sy = new_w / w, new_h / h
    boxes, ignore = face_arrays(sample)
    scaled = boxes * np.array([sx, sy, sx, sy], dtype=np.float32)
    factor = np.asarray(sample.get('scale_factor', (1.0, 1.0)), dtype=np.float32)
    sample['scale_factor'] = factor * np.array([sy, sx], dtype=np.float32)
    return keep_faces(sample, scaled, ignore, np.ones(len(boxes), dtype=bool))


@register
class Resize:
    """Resize to ``target_size`` ``[h, w]``; with ``keep_ratio`` the short side
    goes to ``min(target_size)`` and the long side at most to ``max_size``
    (when > 0), keeping the aspect ratio."""
    __ranges__ = {'max_size': NON_NEGATIVE}

    def __init__(self, target_size=(640, 640), keep_ratio=False, max_size=0, interp='auto'):
        self.target_size = as_size(target_size, 'Resize.target_size')
        self.keep_ratio = keep_ratio
        self.max_size = max_size
        self.interp = _interpolation(interp, 'Resize')

    def __call__(self, sample, rng=None):
        h, w = sample['image'].shape[:2]
        if not self.keep_ratio:
            return resize_sample(sample, self.target_size[0], self.target_size[1], self.interp)
        scale = min(self.target_size) / min(h, w)
        if self.max_size > 0:
            scale = min(scale, self.max_size / max(h, w))
        return resize_sample(sample, round(h * scale), round(w * scale), self.interp)


@register
class ResizeKeepRatio:
    """Test-time resize keeping the aspect ratio, for evaluation protocols.

    The scale is ``scale``, times ``sqrt(target_area / (h * w))`` when
    ``target_area > 0`` (``307200`` is the VGA 640x480 protocol), then capped
    so the long side is at most ``max_side`` (when > 0). ``scale_factor``
    records the exact per-axis scale of the rounded size.
    """
    __ranges__ = {'scale': POSITIVE, 'target_area': NON_NEGATIVE, 'max_side': NON_NEGATIVE}

    def __init__(self, scale=1.0, target_area=0, max_side=0, interp='auto'):
        if scale <= 0:
            raise ValueError('ResizeKeepRatio.scale must be positive, got {!r}'.format(scale))
        self.scale = scale
        self.target_area = target_area
        self.max_side = max_side
        self.interp = _interpolation(interp, 'ResizeKeepRatio')

    def __call__(self, sample, rng=None):
        h, w = sample['image'].shape[:2]
        scale = self.scale
        if self.target_area > 0:
            scale *= math.sqrt(self.target_area / float(h * w))
        if self.max_side > 0:
            scale = min(scale, self.max_side / max(h, w))
        return resize_sample(sample, round(h * scale), round(w * scale), self.interp)
