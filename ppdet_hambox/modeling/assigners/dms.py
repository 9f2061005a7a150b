"""DMS, the two-step standard matching (paper section 3.2, Fig. 4)."""
import paddle

from ppdet_hambox.core.schema import COUNT, PROBABILITY
from ppdet_hambox.core.workspace import register
from ppdet_hambox.modeling.assigners.assignment import POSITIVE
from ppdet_hambox.modeling.assigners.base import AnchorAssigner
from ppdet_hambox.modeling.assigners.matching import DEFAULT_TILE_BYTES, combine_labels

__all__ = ['DMSAssigner']


@register
class DMSAssigner(AnchorAssigner):
    """SMS, then every face left without a positive anchor takes its
    highest-IoU anchor among the anchors that are not already positive and
    overlap it (IoU > 0); ties go to the lower anchor index, and faces are
    served in annotation order (an anchor two such faces want goes to the
    earlier face, the later one takes its next best). Second-step anchors are
    ordinary positives (label 1, marked in ``Assignment.second_step``): label
    2 is reserved for HAMBox's compensated anchors."""
    __ranges__ = {'pos_iou': PROBABILITY, 'tile_bytes': COUNT}

    anchor_pair_iou = 0.0
    has_second_step = True

    def __init__(self, pos_iou=0.35, tile_bytes=DEFAULT_TILE_BYTES):
        super().__init__(pos_iou, tile_bytes)

    def match(self, by_anchor, by_pred, valid, best_face, positive):
        matched = self.face_counts(best_face, positive, valid)
        quota = paddle.where(valid & (matched == 0), paddle.ones_like(matched), paddle.zeros_like(matched))
        owner, rounds = self.compensate(by_anchor, quota, positive)
        labels, gt_index = combine_labels(positive, best_face, owner, POSITIVE)
        return labels, gt_index, rounds
