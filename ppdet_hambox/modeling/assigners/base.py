"""The batched assigner contract, shared by every matching strategy.

``assigner(anchors [A, 4], pred_boxes [B, A, 4], gt_bbox [B, G, 4],
gt_mask [B, G]) -> Assignment`` (see ``assignment.py`` for the labels and
fields). Padded faces (``gt_mask`` 0) are never assigned. Nothing here
carries gradient. Thresholds compare in float32, like the IoUs.
"""
import numpy as np
import paddle

from ppdet_hambox.modeling.assigners.assignment import Assignment
from ppdet_hambox.modeling.assigners.matching import (
    DEFAULT_TILE_BYTES, assigned_quality, check_tile_bytes, count_per_face, empty_padding, scan_iou,
    serial_compensate)

__all__ = ['AnchorAssigner', 'check_fraction']


def check_fraction(owner, name, value, low=0.0, high=1.0, low_open=False):
    """Raise a clear error when a threshold is outside its range."""
    ok = (low < value if low_open else low <= value) and value <= high
    if not ok:
        raise ValueError('{}.{} must be in {}{}, {}], got {!r}'.format(
            owner, name, '(' if low_open else '[', low, high, value))
    return float(value)


def _as_tensor(value, dtype='float32'):
    if isinstance(value, paddle.Tensor):
        return value.astype(dtype)
    return paddle.to_tensor(np.asarray(value, dtype=dtype))


def _check_shape(tensor, ndim, name, what):
    if tensor.ndim != ndim or (what.endswith(', 4]') and tensor.shape[-1] != 4):
        raise ValueError('assigner input {} must be {}, got shape {}'.format(name, what, tensor.shape))


class AnchorAssigner:
    """Subclasses implement ``match``; ``ignore`` is optional.

    ``anchor_pair_iou`` / ``pred_pair_iou``: when set, the scan of the
    anchor (decoded-box) IoU also collects the (anchor, face) pairs above
    that IoU, the candidates of a compensation step.

    ``tile_bytes``: the most bytes any ``[B, a, G]`` IoU temporary may take
    (see ``matching.scan_iou``); the result does not depend on it.
    """

    needs_pred_boxes = False
    has_second_step = False
    anchor_pair_iou = None
    pred_pair_iou = None

    def __init__(self, pos_iou=0.35, tile_bytes=DEFAULT_TILE_BYTES):
        self.pos_iou = check_fraction(type(self).__name__, 'pos_iou', pos_iou, low_open=True)
        self.tile_bytes = check_tile_bytes(type(self).__name__, tile_bytes)

    def __call__(self, anchors, pred_boxes, gt_bbox, gt_mask):
        anchors = _as_tensor(anchors)
        gt_bbox = _as_tensor(gt_bbox)
        gt_mask = _as_tensor(gt_mask)
        _check_shape(anchors, 2, 'anchors', '[A, 4]')
        _check_shape(gt_bbox, 3, 'gt_bbox', '[B, G, 4]')
        _check_shape(gt_mask, 2, 'gt_mask', '[B, G]')
        if gt_mask.shape != gt_bbox.shape[:2]:
            raise ValueError('assigner input gt_mask {} does not match gt_bbox {}'.format(
                gt_mask.shape, gt_bbox.shape))
        if pred_boxes is not None:
            pred_boxes = _as_tensor(pred_boxes).detach()
            _check_shape(pred_boxes, 3, 'pred_boxes', '[B, A, 4]')
            if pred_boxes.shape[:2] != [gt_bbox.shape[0], anchors.shape[0]]:
                raise ValueError('assigner input pred_boxes {} does not fit {} images x {} anchors'.format(
                    pred_boxes.shape, gt_bbox.shape[0], anchors.shape[0]))
        elif self.needs_pred_boxes:
            raise ValueError('{} mines on decoded boxes: pred_boxes is required'.format(type(self).__name__))
        if gt_bbox.shape[1] == 0:  # no face in the whole batch: one padded face
            gt_bbox = paddle.zeros([gt_bbox.shape[0], 1, 4], dtype='float32')
            gt_mask = paddle.zeros([gt_bbox.shape[0], 1], dtype='float32')
        with paddle.no_grad():
            return self._assign(anchors.detach(), pred_boxes, gt_bbox.detach(), gt_mask > 0.5)

    def _assign(self, anchors, pred_boxes, gt_bbox, valid):
        gt_bbox = empty_padding(gt_bbox, valid)
        by_anchor = scan_iou(anchors, gt_bbox, self.anchor_pair_iou, with_face=True, tile_bytes=self.tile_bytes)
        by_pred = None if pred_boxes is None else scan_iou(pred_boxes, gt_bbox, self.pred_pair_iou,
                                                           tile_bytes=self.tile_bytes)
        positive = by_anchor['best'] >= self.pos_iou
        labels, gt_index, rounds = self.match(by_anchor, by_pred, valid, by_anchor['face'], positive)
        if pred_boxes is None:
            quality = assigned_quality(anchors, gt_bbox, gt_index, by_anchor['best'])
        else:
            quality = assigned_quality(pred_boxes, gt_bbox, gt_index, by_pred['best'])
        labels = self.ignore(labels, quality)
        second_step = (labels > 0) & ~positive if self.has_second_step else None
        return Assignment(labels=labels, gt_index=gt_index, quality=quality.astype('float32'),
                          second_step=second_step, rounds=rounds)

    def match(self, by_anchor, by_pred, valid, best_face, positive):
        """``(labels, gt_index, rounds)`` from the IoU scans (see ``scan_iou``)
        and the SMS first step: ``best_face`` and ``positive`` (best IoU >=
        pos_iou; ties between faces go to the lower index); ``rounds`` those
        of the compensation solver (0 without one)."""
        raise NotImplementedError

    def ignore(self, labels, quality):
        return labels

    @staticmethod
    def step_one(best_face, positive):
        labels = positive.astype('int64')
        return labels, paddle.where(positive, best_face, paddle.full_like(best_face, -1)), 0

    @staticmethod
    def compensate(scan, quota, positive):
        """Anchors for faces with ``quota > 0`` among the pairs of ``scan``,
        skipping step-one positives, face by face in annotation order (see
        ``serial_compensate``). Returns ``owner [B, A]`` and the solver's rounds."""
        if not bool(quota.any()):
            return paddle.full(positive.shape, -1, dtype='int64'), 0
        return serial_compensate(scan['pairs'], scan['scores'], quota, positive)

    @staticmethod
    def face_counts(best_face, positive, valid):
        """Step-one positives of each face, ``[B, G]`` int64."""
        return count_per_face(best_face, positive, valid.shape[1])
