"""HAMBox online high-quality anchor mining (paper section 3.2, Algorithm 1)."""
import paddle

from ppdet_hambox.core.schema import COUNT, NON_NEGATIVE, PROBABILITY
from ppdet_hambox.core.workspace import register
from ppdet_hambox.modeling.assigners.assignment import BACKGROUND, COMPENSATED, IGNORED
from ppdet_hambox.modeling.assigners.base import AnchorAssigner, check_fraction
from ppdet_hambox.modeling.assigners.matching import DEFAULT_TILE_BYTES, combine_labels

__all__ = ['HAMBoxAssigner']


@register
class HAMBoxAssigner(AnchorAssigner):
    """SMS first; then every face with ``D < K`` step-one positives (an outer
    face), in annotation order, takes up to ``K - D`` anchors that are not
    positive and not taken yet, whose DECODED box has IoU > ``T`` with it,
    best decoded IoU first (ties: lower anchor index). Those anchors are
    compensated (label 2); their regression targets are still encoded from
    the anchor (the loss does that). Finally a background anchor whose decoded box has
    IoU >= ``ignore_iou`` with some face is ignored (label -1); an
    ``ignore_iou`` above 1 turns that off."""
    __ranges__ = {
        'pos_iou': PROBABILITY, 'K': NON_NEGATIVE, 'T': PROBABILITY, 'ignore_iou': NON_NEGATIVE,
        'tile_bytes': COUNT
    }

    needs_pred_boxes = True

    def __init__(self, pos_iou=0.35, K=3, T=0.8, ignore_iou=0.5, tile_bytes=DEFAULT_TILE_BYTES):
        super().__init__(pos_iou, tile_bytes)
        if not isinstance(K, int) or isinstance(K, bool) or K < 0:
            raise ValueError('HAMBoxAssigner.K must be a non-negative integer, got {!r}'.format(K))
        self.K = K
        self.T = check_fraction('HAMBoxAssigner', 'T', T)
        self.pred_pair_iou = self.T
        self.ignore_iou = check_fraction('HAMBoxAssigner', 'ignore_iou', ignore_iou,
                                         high=float('inf'), low_open=True)

    def match(self, by_anchor, by_pred, valid, best_face, positive):
        matched = self.face_counts(best_face, positive, valid)
        quota = paddle.where(valid & (matched < self.K), self.K - matched, paddle.zeros_like(matched))
        owner, rounds = self.compensate(by_pred, quota, positive)
        labels, gt_index = combine_labels(positive, best_face, owner, COMPENSATED)
        return labels, gt_index, rounds

    def ignore(self, labels, quality):
        # a background anchor's quality is its decoded box's best IoU over faces
        unmatched_good = (labels == BACKGROUND) & (quality >= self.ignore_iou)
        return paddle.where(unmatched_good, paddle.full_like(labels, IGNORED), labels)
