"""Training crops: PyramidBox data-anchor-sampling and the S3FD square crop.

Both output a ``target_size x target_size`` patch. Faces whose centre falls
outside the patch are dropped, and so are remnants narrower or lower than
``min_size`` pixels in the patch.
"""
import math

import numpy as np

from ppdet_hambox.core.schema import COUNT, NON_NEGATIVE, PROBABILITY
from ppdet_hambox.core.workspace import register
from ppdet_hambox.data.transform.base import face_arrays
from ppdet_hambox.data.transform.geometry import apply_crop, faces_in_window

__all__ = ['DataAnchorSampling', 'RandomSquareCrop', 'sample_face_size']

MEAN_BGR = (104.0, 117.0, 123.0)


def sample_face_size(size, rng, anchor_sizes, size_range):
    """The target face size of data-anchor-sampling for a face of ``size``
    (sqrt of its area): ``i`` = index of the nearest anchor size, anchor
    index ``k`` uniform in ``[0, min(last, i + 1)]``, size uniform in
    ``[anchor_k * size_range[0], anchor_k * size_range[1]]``. Returns
    ``(target size, k)``."""
    anchors = np.asarray(anchor_sizes, dtype=np.float64)
    nearest = int(np.argmin(np.abs(anchors - size)))
    k = int(rng.integers(0, min(len(anchors) - 1, nearest + 1) + 1))
    return float(rng.uniform(anchors[k] * size_range[0], anchors[k] * size_range[1])), k


def _window_start(lo_edge, hi_edge, extent, window, rng):
    """Start of a window of length ``window`` along one axis that holds the
    face ``[lo_edge, hi_edge]`` (or, for a face longer than the window, its
    centre), and that lies inside ``[0, extent]`` or contains it when the
    image is the shorter of the two."""
    # Python floats: a float32 edge would round the comparisons below (NEP 50)
    lo_edge, hi_edge, extent, window = float(lo_edge), float(hi_edge), float(extent), float(window)
    if hi_edge - lo_edge <= window:
        face_lo, face_hi = hi_edge - window, lo_edge
    else:
        mid = 0.5 * (lo_edge + hi_edge)
        face_lo, face_hi = max(lo_edge, mid - window), min(hi_edge - window, mid)
    image_lo, image_hi = min(0.0, extent - window), max(0.0, extent - window)
    lo, hi = max(face_lo, image_lo), min(face_hi, image_hi)
    if lo > hi:
        lo, hi = face_lo, face_hi
    return float(rng.uniform(lo, hi))


@register
class DataAnchorSampling:
    """PyramidBox data-anchor-sampling (docs/method.md, data and training).

    With probability ``prob`` (and when the image has faces): pick a face at
    random, draw its target size with ``sample_face_size``, rescale the image
    so the face has that size and cut a ``target_size`` square holding the
    face. Otherwise run ``fallback`` (e.g. ``RandomSquareCrop``) if given,
    else leave the sample unchanged.
    """
    __ranges__ = {'prob': PROBABILITY, 'target_size': COUNT, 'min_size': NON_NEGATIVE}
    __inject__ = ['fallback']

    def __init__(self, prob=0.5, target_size=640, anchor_sizes=(16, 32, 64, 128, 256, 512),
                 size_range=(0.5, 2.0), min_size=2.0, fill_value=MEAN_BGR, fallback=None):
        if len(size_range) != 2 or not 0 < size_range[0] <= size_range[1]:
            raise ValueError('DataAnchorSampling.size_range must be [low, high] with 0 < low <= high, '
                             'got {!r}'.format(size_range))
        self.prob = prob
        self.target_size = int(target_size)
        self.anchor_sizes = [float(a) for a in anchor_sizes]
        self.size_range = tuple(float(v) for v in size_range)
        self.min_size = min_size
        self.fill_value = tuple(fill_value)
        self.fallback = fallback

    def __call__(self, sample, rng):
        boxes, _ = face_arrays(sample)
        if rng.random() >= self.prob or len(boxes) == 0:
            return self.fallback(sample, rng) if self.fallback is not None else sample
        face = boxes[int(rng.integers(len(boxes)))].astype(np.float64)
        size = math.sqrt((face[2] - face[0]) * (face[3] - face[1]))
        target, _ = sample_face_size(size, rng, self.anchor_sizes, self.size_range)
        scale = target / size
        h, w = sample['image'].shape[:2]
        crop = self.target_size
        x0 = _window_start(face[0] * scale, face[2] * scale, w * scale, crop, rng)
        y0 = _window_start(face[1] * scale, face[3] * scale, h * scale, crop, rng)
        return apply_crop(sample, x0 / scale, y0 / scale, scale, crop, crop, self.fill_value, self.min_size)


@register
class RandomSquareCrop:
    """S3FD-style square crop: a square of side ``uniform(scale_range) x``
    the short image side at a random position, accepted when at least one
    face keeps its centre in it (any square is accepted for images without
    faces); after ``max_trials`` failures the whole image, padded to a
    square, is used. The square is scaled to ``target_size``."""
    __ranges__ = {'target_size': COUNT, 'max_trials': COUNT, 'min_size': NON_NEGATIVE}

    def __init__(self, target_size=640, scale_range=(0.3, 1.0), max_trials=50, min_size=2.0,
                 fill_value=MEAN_BGR):
        if len(scale_range) != 2 or not 0 < scale_range[0] <= scale_range[1] <= 1:
            raise ValueError('RandomSquareCrop.scale_range must be [low, high] with 0 < low <= high <= 1, '
                             'got {!r}'.format(scale_range))
        self.target_size = int(target_size)
        self.scale_range = tuple(float(v) for v in scale_range)
        self.max_trials = int(max_trials)
        self.min_size = min_size
        self.fill_value = tuple(fill_value)

    def __call__(self, sample, rng):
        boxes, _ = face_arrays(sample)
        h, w = sample['image'].shape[:2]
        out = self.target_size
        x0, y0, side = 0.0, 0.0, float(max(h, w))
        for _ in range(self.max_trials):
            trial = rng.uniform(*self.scale_range) * min(h, w)
            tx, ty = rng.uniform(0, w - trial), rng.uniform(0, h - trial)
            scale = out / trial
            shifted = (boxes - np.array([tx, ty, tx, ty], dtype=np.float32)) * scale
            if len(boxes) == 0 or faces_in_window(shifted, out, out, self.min_size)[1].any():
                x0, y0, side = tx, ty, trial
                break
        return apply_crop(sample, x0, y0, out / side, out, out, self.fill_value, self.min_size)
