"""One square anchor per feature-map location and level.

Level ``l`` has stride ``strides[l]`` and anchor side ``ratio * sizes[l]``;
the anchor of cell (i, j) is centred at ``((j + 0.5) * stride, (i + 0.5) * stride)``.
For an input of H x W a level has ``ceil(H / stride) x ceil(W / stride)``
cells: what ResNet's padded stride-2 convs and pooling produce.
"""
import math

import paddle

from ppdet_hambox.core.schema import POSITIVE
from ppdet_hambox.core.workspace import register

__all__ = ['AnchorGenerator']


@register
class AnchorGenerator:
    """Args:
        ratio: anchor side as a fraction of ``sizes`` (0.68 HAMBox, 1.0 baseline).
        sizes: nominal anchor side per level, pixels.
        strides: stride per level, pixels.
    """
    __ranges__ = {'ratio': POSITIVE}

    def __init__(self, ratio=0.68, sizes=(16, 32, 64, 128, 256, 512), strides=(4, 8, 16, 32, 64, 128)):
        if len(sizes) != len(strides):
            raise ValueError('AnchorGenerator.sizes ({}) and strides ({}) must have one entry per '
                             'level'.format(list(sizes), list(strides)))
        if ratio <= 0:
            raise ValueError('AnchorGenerator.ratio must be positive, got {!r}'.format(ratio))
        self.ratio = float(ratio)
        self.sizes = [float(s) for s in sizes]
        self.strides = [int(s) for s in strides]

    @property
    def num_levels(self):
        return len(self.strides)

    def feature_shapes(self, height, width):
        """``[(ceil(H / s), ceil(W / s)) for each stride]`` for an H x W input."""
        return [(math.ceil(height / s), math.ceil(width / s)) for s in self.strides]

    def num_anchors(self, height, width):
        return sum(h * w for h, w in self.feature_shapes(height, width))

    def anchors(self, feature_shapes):
        """``feature_shapes``: one ``(h, w)`` per level, ints or integer tensors
        (e.g. ``paddle.shape(p)[2:]``, which keeps ``to_static`` sizes dynamic).
        Returns ``float32 [A, 4]`` x1y1x2y2, levels in order, row-major inside."""
        if len(feature_shapes) != self.num_levels:
            raise ValueError('AnchorGenerator has {} levels but got {} feature shapes'.format(
                self.num_levels, len(feature_shapes)))
        levels = []
        for (h, w), stride, size in zip(feature_shapes, self.strides, self.sizes):
            ys = (paddle.arange(h, dtype='float32') + 0.5) * stride
            xs = (paddle.arange(w, dtype='float32') + 0.5) * stride
            cy, cx = paddle.meshgrid(ys, xs)
            half = 0.5 * self.ratio * size
            boxes = paddle.stack([cx - half, cy - half, cx + half, cy + half], axis=-1)
            levels.append(boxes.reshape([-1, 4]))
        return paddle.concat(levels, axis=0)

    __call__ = anchors
