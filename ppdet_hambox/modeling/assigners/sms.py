"""SMS, the standard matching strategy (paper section 3.2, first step)."""
from ppdet_hambox.core.schema import COUNT, PROBABILITY
from ppdet_hambox.core.workspace import register
from ppdet_hambox.modeling.assigners.base import AnchorAssigner
from ppdet_hambox.modeling.assigners.matching import DEFAULT_TILE_BYTES

__all__ = ['SMSAssigner']


@register
class SMSAssigner(AnchorAssigner):
    """Every anchor takes its highest-IoU face (ties: the lower face index)
    and is positive when that IoU is at least ``pos_iou``."""
    __ranges__ = {'pos_iou': PROBABILITY, 'tile_bytes': COUNT}

    def __init__(self, pos_iou=0.35, tile_bytes=DEFAULT_TILE_BYTES):
        super().__init__(pos_iou, tile_bytes)

    def match(self, by_anchor, by_pred, valid, best_face, positive):
        return self.step_one(best_face, positive)
