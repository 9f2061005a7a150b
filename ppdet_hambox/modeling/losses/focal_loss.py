"""Sigmoid focal loss (Lin et al., RetinaNet), element-wise."""
import paddle
import paddle.nn.functional as F

__all__ = ['sigmoid_focal_loss']


def sigmoid_focal_loss(logits, targets, alpha=0.25, gamma=2.0):
    """``alpha_t * (1 - p_t) ** gamma * BCE(logits, targets)`` per element,
    no reduction; ``targets`` in {0, 1}; ``alpha < 0`` turns the class
    weighting off."""
    targets = targets.astype(logits.dtype)
    prob = F.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction='none')
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * paddle.pow(1 - p_t, gamma)
    if alpha >= 0:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return loss
