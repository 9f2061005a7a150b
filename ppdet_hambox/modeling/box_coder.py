"""Box geometry shared by the assigners, the losses and the post-process.

Boxes are ``x1 y1 x2 y2`` in continuous pixel coordinates: a box's width is
``x2 - x1`` (no ``+ 1``). Everything here is Paddle ops only, works on any
device and inside ``paddle.jit.to_static``.
"""
import math

import paddle

from ppdet_hambox.core.schema import POSITIVE
from ppdet_hambox.core.workspace import register

__all__ = ['bbox_area', 'bbox_iou', 'aligned_iou', 'BoxCoder', 'IOU_EPS']

IOU_EPS = 1e-10
"""Lower bound of an IoU's union, so two empty boxes have IoU 0, not NaN."""

DEFAULT_SCALE_CLAMP = math.log(1000.0 / 16)


def bbox_area(boxes):
    """Area of ``[..., 4]`` boxes (0 for empty or inverted boxes)."""
    w = paddle.clip(boxes[..., 2] - boxes[..., 0], min=0)
    h = paddle.clip(boxes[..., 3] - boxes[..., 1], min=0)
    return w * h


def _same_shape(x, y):
    """``x`` and ``y`` expanded to their broadcast shape. Paddle's CPU
    kernels for broadcasting binary ops are about 10x slower than an
    ``expand`` followed by the plain op, and IoU matrices are big. Static
    graphs (unknown sizes) keep implicit broadcasting."""
    if not paddle.in_dynamic_mode() or x.shape == y.shape:
        return x, y
    shape = paddle.broadcast_shape(x.shape, y.shape)
    return x.expand(shape), y.expand(shape)


def aligned_iou(a, b):
    """IoU of ``a[..., i]`` with ``b[..., i]`` (shapes broadcast), ``[..., 4]`` -> ``[...]``.

    The arithmetic order is fixed (``inter / max(area_a + area_b - inter,
    IOU_EPS)``) and shared with ``bbox_iou``, so an IoU computed pair by pair
    equals the matrix entry bit for bit (and the NumPy reference in the tests
    reproduces both).
    """
    ax1, ay1, ax2, ay2 = paddle.unbind(a, axis=-1)
    bx1, by1, bx2, by2 = paddle.unbind(b, axis=-1)
    area_a, area_b = _same_shape(bbox_area(a), bbox_area(b))
    ax1, bx1 = _same_shape(ax1, bx1)
    ay1, by1 = _same_shape(ay1, by1)
    ax2, bx2 = _same_shape(ax2, bx2)
    ay2, by2 = _same_shape(ay2, by2)
    iw = paddle.clip(paddle.minimum(ax2, bx2) - paddle.maximum(ax1, bx1), min=0)
    ih = paddle.clip(paddle.minimum(ay2, by2) - paddle.maximum(ay1, by1), min=0)
    inter = iw * ih
    union = area_a + area_b - inter
    return inter / paddle.clip(union, min=IOU_EPS)


def bbox_iou(a, b):
    """IoU of every box of ``a`` with every box of ``b``.

    ``a [N, 4]`` x ``b [M, 4]`` -> ``[N, M]``; batched ``a [B, N, 4]`` x
    ``b [B, M, 4]`` -> ``[B, N, M]`` (a batch dimension of 1 broadcasts).
    """
    if a.ndim != b.ndim or a.ndim not in (2, 3) or a.shape[-1] != 4 or b.shape[-1] != 4:
        raise ValueError('bbox_iou takes [N, 4] x [M, 4] or [B, N, 4] x [B, M, 4] boxes, '
                         'got {} and {}'.format(a.shape, b.shape))
    return aligned_iou(a.unsqueeze(-2), b.unsqueeze(-3))


@register
class BoxCoder:
    """Faster R-CNN box deltas ``(dx, dy, dw, dh)`` scaled by ``weights``.

    ``encode(anchors, boxes)`` and ``decode(anchors, deltas)`` broadcast over
    leading dimensions: ``anchors [A, 4]`` with ``boxes``/``deltas [B, A, 4]``
    works. ``dw``/``dh`` are clamped at ``scale_clamp`` before ``exp`` so that
    an untrained head cannot produce infinite boxes.
    """
    __ranges__ = {'scale_clamp': POSITIVE}

    def __init__(self, weights=[10.0, 10.0, 5.0, 5.0], scale_clamp=DEFAULT_SCALE_CLAMP):
        if len(weights) != 4 or any(w <= 0 for w in weights):
            raise ValueError('BoxCoder.weights must be 4 positive numbers, got {!r}'.format(weights))
        self.weights = [float(w) for w in weights]
        self.scale_clamp = float(scale_clamp)

    @staticmethod
    def _centre_size(boxes):
        w = boxes[..., 2] - boxes[..., 0]
        h = boxes[..., 3] - boxes[..., 1]
        return boxes[..., 0] + 0.5 * w, boxes[..., 1] + 0.5 * h, w, h

    def encode(self, anchors, boxes):
        """Deltas that move ``anchors`` onto ``boxes`` (both ``[..., 4]``, positive sizes)."""
        wx, wy, ww, wh = self.weights
        acx, acy, aw, ah = self._centre_size(anchors)
        gcx, gcy, gw, gh = self._centre_size(boxes)
        return paddle.stack([
            wx * (gcx - acx) / aw,
            wy * (gcy - acy) / ah,
            ww * paddle.log(gw / aw),
            wh * paddle.log(gh / ah),
        ], axis=-1)

    def decode(self, anchors, deltas):
        """Boxes ``[..., 4]`` that ``deltas`` make of ``anchors``."""
        wx, wy, ww, wh = self.weights
        acx, acy, aw, ah = self._centre_size(anchors)
        dx = deltas[..., 0] / wx
        dy = deltas[..., 1] / wy
        dw = paddle.clip(deltas[..., 2] / ww, max=self.scale_clamp)
        dh = paddle.clip(deltas[..., 3] / wh, max=self.scale_clamp)
        cx = dx * aw + acx
        cy = dy * ah + acy
        half_w = 0.5 * paddle.exp(dw) * aw
        half_h = 0.5 * paddle.exp(dh) * ah
        return paddle.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=-1)
