"""NAMS, S3FD's scale compensation anchor matching (paper Table 3)."""
import paddle

from ppdet_hambox.core.schema import COUNT, PROBABILITY
from ppdet_hambox.core.workspace import register
from ppdet_hambox.modeling.assigners.assignment import POSITIVE
from ppdet_hambox.modeling.assigners.base import AnchorAssigner, check_fraction
from ppdet_hambox.modeling.assigners.matching import DEFAULT_TILE_BYTES, combine_labels

__all__ = ['NAMSAssigner']


@register
class NAMSAssigner(AnchorAssigner):
    """SMS, then per image ``N`` = the mean number of step-one positives
    over its faces, rounded half up; a face with ``D < N`` positives gets up
    to ``N - D`` more among the anchors that are not positive and have
    IoU > ``cand_iou``, highest first (ties: lower anchor index), faces
    served in annotation order. These second-step anchors are ordinary
    positives (label 1, marked in ``Assignment.second_step``)."""
    __ranges__ = {'pos_iou': PROBABILITY, 'cand_iou': PROBABILITY, 'tile_bytes': COUNT}

    has_second_step = True

    def __init__(self, pos_iou=0.35, cand_iou=0.1, tile_bytes=DEFAULT_TILE_BYTES):
        super().__init__(pos_iou, tile_bytes)
        self.cand_iou = check_fraction('NAMSAssigner', 'cand_iou', cand_iou, high=self.pos_iou)
        self.anchor_pair_iou = self.cand_iou

    def match(self, by_anchor, by_pred, valid, best_face, positive):
        matched = self.face_counts(best_face, positive, valid)
        faces = valid.astype('int64').sum(axis=1, keepdim=True)
        # round(total / faces) half up, in integers
        target = (2 * matched.sum(axis=1, keepdim=True) + faces) // paddle.clip(2 * faces, min=1)
        quota = paddle.where(valid & (matched < target), target - matched, paddle.zeros_like(matched))
        owner, rounds = self.compensate(by_anchor, quota, positive)
        labels, gt_index = combine_labels(positive, best_face, owner, POSITIVE)
        return labels, gt_index, rounds
