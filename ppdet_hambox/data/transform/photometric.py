"""Photometric distortion (SSD style): brightness, contrast, saturation and
hue, each applied with a probability, in a random order per sample."""
import cv2
import numpy as np

from ppdet_hambox.core.schema import PROBABILITY, Range
from ppdet_hambox.core.workspace import register

__all__ = ['RandomDistort']

_LEVELS = np.arange(256, dtype=np.float32)


def _lut(values):
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


@register
class RandomDistort:
    """On uint8 BGR images. Brightness adds a delta in
    ``[-brightness_delta, brightness_delta]``, contrast multiplies by a factor
    in ``contrast_range``, saturation moves away from (factor > 1) or towards
    (< 1) the grey image by a factor in ``saturation_range``, hue shifts the
    HSV hue by a delta in degrees in ``[-hue_delta, hue_delta]``. Each is
    applied with probability ``prob``."""
    __ranges__ = {'prob': PROBABILITY, 'brightness_delta': Range(0.0, 255.0), 'hue_delta': Range(0.0, 180.0)}

    def __init__(self, prob=0.5, brightness_delta=32.0, contrast_range=(0.5, 1.5),
                 saturation_range=(0.5, 1.5), hue_delta=18.0):
        self.prob = prob
        self.brightness_delta = brightness_delta
        self.contrast_range = tuple(contrast_range)
        self.saturation_range = tuple(saturation_range)
        self.hue_delta = hue_delta
        self._ops = (self._brightness, self._contrast, self._saturation, self._hue)

    def __call__(self, sample, rng):
        image = sample['image']
        for op_index in rng.permutation(len(self._ops)):
            if rng.random() < self.prob:
                image = self._ops[op_index](image, rng)
        sample['image'] = image
        return sample

    def _brightness(self, image, rng):
        delta = rng.uniform(-self.brightness_delta, self.brightness_delta)
        return cv2.LUT(image, _lut(_LEVELS + delta))

    def _contrast(self, image, rng):
        factor = rng.uniform(*self.contrast_range)
        return cv2.LUT(image, _lut(_LEVELS * factor))

    def _saturation(self, image, rng):
        # blend with the grey image: factor 0 is grey, 1 the image, > 1 more saturated
        factor = rng.uniform(*self.saturation_range)
        grey = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        return cv2.addWeighted(image, factor, grey, 1.0 - factor, 0.0)

    def _hue(self, image, rng):
        # OpenCV stores 8-bit hue as degrees / 2 in [0, 180).
        shift = rng.uniform(-self.hue_delta, self.hue_delta) / 2.0
        hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
        table = np.mod(np.rint(_LEVELS + shift), 180).astype(np.uint8)
        hsv[:, :, 0] = cv2.LUT(hsv[:, :, 0], table)
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
