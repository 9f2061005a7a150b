"""HAMBox detection loss: regression-aware focal loss (RAL, paper eq. 1 and 2)."""
import paddle

from ppdet_hambox.core.workspace import create, register
from ppdet_hambox.modeling.losses.focal_loss import sigmoid_focal_loss
from ppdet_hambox.modeling.losses.normalizer import mean_over_processes
from ppdet_hambox.modeling.losses.smooth_l1_loss import smooth_l1_loss

__all__ = ['HAMBoxLoss']


def _masked_sum(values, mask):
    return paddle.where(mask, values, paddle.zeros_like(values)).sum()



@register
class HAMBoxLoss:
    """Classification and box loss from an assignment (``labels``,
    ``gt_index``, ``quality``, see the assigners).

    With RAL (``use_ral=True``)::

        L_cls = 1/N_com  * sum_{label 2} F_i * FL(p_i, 1)
              + 1/N_norm * sum_{label 1 or 0} FL(p_i, l_i)
        L_loc = 1/N_com  * sum_{label 2} SmoothL1 + 1/N_norm * sum_{label 1} SmoothL1

    ``F_i`` the quality (detached), ``N_norm`` = step-one positives (at least
    1), ``N_com`` = compensated anchors (their terms are 0 when there are
    none); ignored anchors (-1) are left out, so the ``F_i < 0.5`` condition
    of eq. 1 is the assigner's ``ignore_iou`` rule. Without RAL, labels 1 and
    2 are plain positives normalised together and ignored anchors are
    background. Counts run over the whole batch; with data parallelism they
    are averaged over the processes, so the normalisers are those of the
    global batch.
    Box targets are always encoded from the anchors, SmoothL1 summed over
    the four deltas.

    The returned ``num_pos`` (first-step positives) and ``num_com``
    (compensated anchors) are per-image means, ``com_iou`` the mean quality
    of compensated anchors (0 if none). For these logged numbers,
    compensated means the assigner's ``compensated`` mask when it gives one
    (so DMS / NAMS second-step anchors count too), else label 2.
    """

    __inject__ = ['coder']

    def __init__(self, use_ral=True, alpha=0.25, gamma=2.0, smooth_l1_beta=1.0 / 9,
                 loss_box_weight=1.0, coder='BoxCoder'):
        self.use_ral = bool(use_ral)
        self.alpha = float(alpha)
        self.gamma = float(gamma)
        self.smooth_l1_beta = float(smooth_l1_beta)
        self.loss_box_weight = float(loss_box_weight)
        self.coder = create(coder) if isinstance(coder, str) else coder

    def box_targets(self, anchors, gt_bbox, gt_index):
        """Deltas ``[B, A, 4]`` from each anchor to its face (to itself where
        there is none, so every value is finite)."""
        batch, num_anchors = gt_index.shape
        index = paddle.clip(gt_index, min=0).unsqueeze(-1).expand([batch, num_anchors, 4])
        faces = paddle.take_along_axis(gt_bbox, index, axis=1)
        anchors = anchors.unsqueeze(0).expand([batch, num_anchors, 4])
        boxes = paddle.where((gt_index >= 0).unsqueeze(-1), faces, anchors)
        return self.coder.encode(anchors, boxes).detach()

    def __call__(self, cls_logits, box_deltas, anchors, gt_bbox, assign):
        labels = assign['labels']
        quality = assign['quality'].detach().astype(cls_logits.dtype)
        step_one, compensated = labels == 1, labels == 2
        foreground = labels > 0

        focal = sigmoid_focal_loss(cls_logits, foreground, self.alpha, self.gamma)
        targets = self.box_targets(anchors.astype(box_deltas.dtype), gt_bbox.astype(box_deltas.dtype),
                                   assign['gt_index'])
        box = smooth_l1_loss(box_deltas, targets, self.smooth_l1_beta).sum(axis=-1)

        num_step_one = step_one.astype('float32').sum()
        num_compensated = compensated.astype('float32').sum()
        global_step_one = mean_over_processes(num_step_one)
        global_compensated = mean_over_processes(num_compensated)
        if self.use_ral:
            norm = paddle.clip(global_step_one, min=1)
            com_norm = paddle.clip(global_compensated, min=1)
            loss_cls = (_masked_sum(focal * quality, compensated) / com_norm
                        + _masked_sum(focal, step_one | (labels == 0)) / norm)
            loss_box = _masked_sum(box, compensated) / com_norm + _masked_sum(box, step_one) / norm
        else:
            norm = paddle.clip(global_step_one + global_compensated, min=1)
            loss_cls = focal.sum() / norm
            loss_box = _masked_sum(box, foreground) / norm

        batch = float(labels.shape[0])
        mined = assign.get('compensated', compensated)
        num_mined = mined.astype('float32').sum()
        num_first_step = (foreground & ~mined).astype('float32').sum()
        com_iou = _masked_sum(quality, mined) / paddle.clip(num_mined, min=1)
        return dict(loss=loss_cls + self.loss_box_weight * loss_box, loss_cls=loss_cls, loss_box=loss_box,
                    num_pos=num_first_step / batch, num_com=num_mined / batch, com_iou=com_iou.detach())
