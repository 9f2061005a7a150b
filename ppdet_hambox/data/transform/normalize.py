"""Normalize to float32 and reorder to CHW."""
import cv2
import numpy as np

from ppdet_hambox.core.workspace import register

__all__ = ['Normalize', 'Permute']


@register
class Normalize:
    """``(image / 255 - mean) / std`` in float32 (without ``/ 255`` when
    ``is_scale`` is False). ``to_rgb`` reverses the BGR channels first, so
    ``mean`` and ``std`` are in the output channel order (the defaults are
    ImageNet's, RGB)."""

    def __init__(self, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), is_scale=True, to_rgb=True):
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError('Normalize needs 3 means and 3 positive stds, got mean={!r} std={!r}'.format(mean, std))
        scale = 1.0 / 255.0 if is_scale else 1.0
        self.multiplier = (scale / np.asarray(std, dtype=np.float32)).astype(np.float32)
        self.offset = (np.asarray(mean, dtype=np.float32) / np.asarray(std, dtype=np.float32)).astype(np.float32)
        self.to_rgb = to_rgb

    def __call__(self, sample, rng=None):
        planes = cv2.split(sample['image'])  # per plane: much faster than broadcasting over HWC
        if self.to_rgb:
            planes = planes[::-1]
        sample['image'] = cv2.merge([plane.astype(np.float32) * m - o
                                     for plane, m, o in zip(planes, self.multiplier, self.offset)])
        return sample


@register
class Permute:
    """HWC -> CHW (contiguous)."""

    def __init__(self):
        """No arguments; an explicit signature makes configs with any an error."""

    def __call__(self, sample, rng=None):
        sample['image'] = np.ascontiguousarray(sample['image'].transpose(2, 0, 1))
        return sample
