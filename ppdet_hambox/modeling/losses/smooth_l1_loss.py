"""Smooth L1 (Huber-like, Faster R-CNN) loss, element-wise."""
import paddle

__all__ = ['smooth_l1_loss']


def smooth_l1_loss(pred, target, beta=1.0 / 9):
    """``0.5 * d**2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 * beta``;
    no reduction. ``beta = 0`` is plain L1."""
    diff = paddle.abs(pred - target)
    if beta <= 0:
        return diff
    return paddle.where(diff < beta, 0.5 * diff * diff / beta, diff - 0.5 * beta)
