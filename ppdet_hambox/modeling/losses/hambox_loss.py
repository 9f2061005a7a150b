"""HAMBox detection loss: regression-aware focal loss (RAL, paper eq. 1 and 2)."""
import paddle

from ppdet_hambox.core.schema import NON_NEGATIVE, PROBABILITY, Range
from ppdet_hambox.core.workspace import register
from ppdet_hambox.modeling.assigners.assignment import BACKGROUND, POSITIVE
from ppdet_hambox.modeling.losses.focal_loss import sigmoid_focal_loss
from ppdet_hambox.modeling.losses.normalizer import mean_over_processes
from ppdet_hambox.modeling.losses.smooth_l1_loss import smooth_l1_loss
from ppdet_hambox.modeling.losses.targets import box_targets

__all__ = ['HAMBoxLoss']


def _masked_sum(values, mask):
    return paddle.where(mask, values, paddle.zeros_like(values)).sum()


def _count(mask):
    return mask.astype('float32').sum()


@register
class HAMBoxLoss:
    """Classification and box loss from an ``Assignment``.

    With RAL (``use_ral=True``)::

        L_cls = 1/N_com  * sum_{compensated} F_i * FL(p_i, 1)
              + 1/N_norm * sum_{label 1 or background} FL(p_i, l_i)
        L_loc = 1/N_com  * sum_{compensated} SmoothL1 + 1/N_norm * sum_{label 1} SmoothL1

    ``F_i`` the quality (detached), ``N_norm`` = label-1 positives (at least
    1), ``N_com`` = compensated anchors (their terms are 0 when there are
    none). Ignored anchors (label -1) are left out, so the ``F_i < 0.5``
    condition of eq. 1 is the assigner's ``ignore_iou`` rule. Without RAL,
    compensated anchors are plain positives normalised together with label 1,
    and ignored anchors are background. Counts run over the whole batch;
    with data parallelism they are averaged over the processes, so the
    normalisers are those of the global batch. Box targets are always
    encoded from the anchors, SmoothL1 summed over the four deltas.

    Two options depart from the paper's eq. 1 and 2, for measuring what RAL
    costs; their defaults are the paper's loss:

    - ``ral_ignore: false`` trains the ignored anchors as background in the
      RAL loss (eq. 1 without its ``F_i < 0.5`` rule).
    - ``compensated_weight_cap: c`` (a positive number) caps the weight of one
      compensated anchor at ``c`` times that of one label-1 positive: the
      compensated terms are divided by ``max(N_com, N_norm / c)`` instead of
      ``N_com``. In eq. 1 and 2 the compensated anchors together weigh as
      much as all the label-1 positives, however few they are; with the cap
      they weigh at most ``c * N_com / N_norm`` of them (``F_i`` aside).

    Both act on the RAL loss only (``use_ral: true``).
    """
    __ranges__ = {
        'alpha': PROBABILITY, 'gamma': NON_NEGATIVE, 'smooth_l1_beta': Range(0.0, open_low=True),
        'loss_box_weight': NON_NEGATIVE
    }

    def __init__(self, use_ral=True, alpha=0.25, gamma=2.0, smooth_l1_beta=1.0 / 9, loss_box_weight=1.0,
                 ral_ignore=True, compensated_weight_cap=None):
        self.use_ral = bool(use_ral)
        self.alpha = float(alpha)
        self.gamma = float(gamma)
        self.smooth_l1_beta = float(smooth_l1_beta)
        self.loss_box_weight = float(loss_box_weight)
        self.ral_ignore = bool(ral_ignore)
        if compensated_weight_cap is not None:
            if isinstance(compensated_weight_cap, bool) or not isinstance(compensated_weight_cap, (int, float)) \
                    or not compensated_weight_cap > 0:
                raise ValueError('HAMBoxLoss.compensated_weight_cap must be a positive number or null, '
                                 'got {!r}'.format(compensated_weight_cap))
            compensated_weight_cap = float(compensated_weight_cap)
        self.compensated_weight_cap = compensated_weight_cap

    def __call__(self, cls_logits, box_deltas, anchors, gt_bbox, assign, coder):
        """``(losses, stats)``: ``losses`` the scalar terms ``loss`` (the
        total), ``loss_cls`` and ``loss_box``; ``stats`` see ``statistics``.
        ``coder`` encodes the box targets (the architecture's box coder)."""
        labels = assign.labels
        quality = assign.quality.detach().astype(cls_logits.dtype)
        label_one, compensated = labels == POSITIVE, assign.compensated
        foreground = labels > 0

        focal = sigmoid_focal_loss(cls_logits, foreground, self.alpha, self.gamma)
        targets = box_targets(coder, anchors.astype(box_deltas.dtype), gt_bbox.astype(box_deltas.dtype),
                              assign.gt_index)
        box = smooth_l1_loss(box_deltas, targets, self.smooth_l1_beta).sum(axis=-1)

        global_label_one = mean_over_processes(_count(label_one))
        global_compensated = mean_over_processes(_count(compensated))
        if self.use_ral:
            norm = paddle.clip(global_label_one, min=1)
            com_norm = paddle.clip(global_compensated, min=1)
            if self.compensated_weight_cap is not None:
                com_norm = paddle.maximum(com_norm, norm / self.compensated_weight_cap)
            negative = labels == BACKGROUND
            if not self.ral_ignore:
                negative = negative | assign.ignored
            loss_cls = (_masked_sum(focal * quality, compensated) / com_norm
                        + _masked_sum(focal, label_one | negative) / norm)
            loss_box = _masked_sum(box, compensated) / com_norm + _masked_sum(box, label_one) / norm
        else:
            norm = paddle.clip(global_label_one + global_compensated, min=1)
            loss_cls = focal.sum() / norm
            loss_box = _masked_sum(box, foreground) / norm
        losses = dict(loss=loss_cls + self.loss_box_weight * loss_box, loss_cls=loss_cls, loss_box=loss_box)
        return losses, statistics(assign)


def statistics(assign):
    """What the assignment made of this batch, as ``{name: (sum, count)}``
    (float32 tensors without gradient; the mean is ``sum / count``, and
    sums and counts add up over steps and processes):
    ``num_pos`` step-one positives, ``num_compensated`` compensated anchors,
    ``num_ignored`` ignored anchors, each per image; ``compensated_iou`` the
    mean quality (decoded IoU with the face) of compensated anchors; with a
    DMS / NAMS assignment also ``num_second_step`` and ``second_step_iou``."""
    images = paddle.full([], assign.labels.shape[0], dtype='float32')
    quality = assign.quality.detach().astype('float32')
    stats = {'num_pos': (_count(assign.step_one), images)}
    groups = [('compensated', assign.compensated)]
    if assign.second_step is not None:
        groups.append(('second_step', assign.second_step))
    for name, mask in groups:
        count = _count(mask)
        stats['num_' + name] = (count, images)
        stats[name + '_iou'] = (_masked_sum(quality, mask), count)
    stats['num_ignored'] = (_count(assign.ignored), images)
    return stats
