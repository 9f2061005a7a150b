"""Pyramid-anchor (PA) loss: PyramidBox's context supervision, training only.

PyramidBox labels the k-th context branch of an anchor by comparing the
anchor's region shrunk by ``s_pa ** k`` (``s_pa = 2``) with a face, threshold
0.35: the k = 1 branch of an anchor answers "is there a face half my size
here", i.e. the anchor stands for the face's head, and k = 2 for its body.
IoU does not change when both boxes are scaled together, so this reading
enlarges each face box by ``scale = s_pa ** k`` about its own centre (head:
2x, body: 4x, not clipped to the image) and matches those boxes to the
ordinary anchors with SMS; a head box is then matched by anchors one level
up, a body box two levels up, as in PyramidBox. (Scaling about the face
centre instead of each anchor's centre keeps the targets fixed boxes, so the
assigner and the box coder apply unchanged.) Each branch has a sigmoid focal
loss over all anchors and a smooth-L1 loss on its positives towards the
enlarged box, both divided by the branch's positive count (at least 1).
"""
import paddle

from ppdet_hambox.core.schema import NON_NEGATIVE, POSITIVE, PROBABILITY
from ppdet_hambox.core.workspace import register
from ppdet_hambox.modeling.losses.focal_loss import sigmoid_focal_loss
from ppdet_hambox.modeling.losses.normalizer import mean_over_processes
from ppdet_hambox.modeling.losses.smooth_l1_loss import smooth_l1_loss
from ppdet_hambox.modeling.losses.targets import box_targets

__all__ = ['PyramidAnchorLoss', 'enlarge_boxes']


def enlarge_boxes(boxes, scale):
    """``[..., 4]`` boxes scaled by ``scale`` about their centres."""
    centre_x = 0.5 * (boxes[..., 0] + boxes[..., 2])
    centre_y = 0.5 * (boxes[..., 1] + boxes[..., 3])
    half_w = 0.5 * scale * (boxes[..., 2] - boxes[..., 0])
    half_h = 0.5 * scale * (boxes[..., 3] - boxes[..., 1])
    return paddle.stack([centre_x - half_w, centre_y - half_h, centre_x + half_w, centre_y + half_h], axis=-1)


@register
class PyramidAnchorLoss:
    """Args:
        assigner: matching of anchors to enlarged boxes (SMS, pos IoU 0.35);
            its anchor-tiled scan bounds the memory of the anchor x box IoUs
            (its ``tile_bytes``), as in the main assignment.
        scales: enlargement of the face box per branch (head 2, body 4); the
            head's ``pa_branches`` must equal ``len(scales)``.
        weight: factor of the summed branch losses in the total loss.
        alpha, gamma: focal-loss parameters.
        smooth_l1_beta: smooth-L1 transition point.
    The regression targets are encoded with the architecture's box coder
    (an argument of the call).
    """
    __ranges__ = {'weight': NON_NEGATIVE, 'alpha': PROBABILITY, 'gamma': NON_NEGATIVE, 'smooth_l1_beta': POSITIVE}
    __inject__ = ['assigner']

    def __init__(self, assigner, scales=(2.0, 4.0), weight=1.0, alpha=0.25, gamma=2.0, smooth_l1_beta=1.0 / 9):
        if not scales or any(s <= 0 for s in scales):
            raise ValueError('PyramidAnchorLoss.scales must be positive numbers, got {!r}'.format(scales))
        self.scales = [float(s) for s in scales]
        self.weight = float(weight)
        self.alpha = float(alpha)
        self.gamma = float(gamma)
        self.smooth_l1_beta = float(smooth_l1_beta)
        self.assigner = assigner

    @property
    def num_branches(self):
        return len(self.scales)

    def __call__(self, aux, anchors, gt_bbox, gt_mask, coder):
        """``aux``: the head's ``dict(cls_logits [B, A, P], box_deltas [B, A, P, 4])``;
        ``anchors [A, 4]``, ``gt_bbox [B, G, 4]``, ``gt_mask [B, G]``; ``coder``
        the box coder. Returns the weighted scalar loss."""
        total = 0.0
        for branch, scale in enumerate(self.scales):
            total = total + self.branch_loss(aux['cls_logits'][:, :, branch],
                                             aux['box_deltas'][:, :, branch], anchors,
                                             enlarge_boxes(gt_bbox, scale), gt_mask, coder)
        return self.weight * total

    def branch_loss(self, logits, deltas, anchors, boxes, gt_mask, coder):
        with paddle.no_grad():
            assign = self.assigner(anchors, None, boxes, gt_mask)
            labels = assign.labels
            positive = assign.positive
            targets = box_targets(coder, anchors, boxes, assign.gt_index)
            norm = paddle.clip(mean_over_processes(positive.astype('float32').sum()), min=1.0)
        focal = sigmoid_focal_loss(logits, positive, self.alpha, self.gamma)
        focal = paddle.where(labels >= 0, focal, paddle.zeros_like(focal))
        box = smooth_l1_loss(deltas, targets, self.smooth_l1_beta).sum(axis=-1)
        box = paddle.where(positive, box, paddle.zeros_like(box))
        return (focal.sum() + box.sum()) / norm
