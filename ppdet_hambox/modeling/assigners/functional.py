"""One-image assigner calls on NumPy arrays or Tensors, for tools and tests.

Each returns the fields of the ``Assignment`` (``labels``, ``gt_index``, ``quality``,
and ``second_step`` for DMS / NAMS) as a dict of NumPy arrays ``[A]``.
Without ``pred_boxes`` the quality is measured on the anchors themselves
(IoU of the anchor with its face, or its best IoU over faces); with them it
is the decoded-box quality of the batched contract.
"""
import numpy as np
import paddle

from ppdet_hambox.modeling.assigners.dms import DMSAssigner
from ppdet_hambox.modeling.assigners.hambox import HAMBoxAssigner
from ppdet_hambox.modeling.assigners.matching import DEFAULT_TILE_BYTES
from ppdet_hambox.modeling.assigners.nams import NAMSAssigner
from ppdet_hambox.modeling.assigners.sms import SMSAssigner

__all__ = ['sms_assign', 'dms_assign', 'nams_assign', 'hambox_assign']


def _boxes(value, name):
    if isinstance(value, paddle.Tensor):
        value = value.astype('float32')
    else:
        value = paddle.to_tensor(np.asarray(value, dtype='float32').reshape([-1, 4]))
    if value.ndim != 2 or value.shape[-1] != 4:
        raise ValueError('{} must be [N, 4] boxes, got shape {}'.format(name, value.shape))
    return value


def _run(assigner, anchors, gt_boxes, pred_boxes):
    anchors = _boxes(anchors, 'anchors')
    gt_boxes = _boxes(gt_boxes, 'gt_boxes')
    if pred_boxes is not None:
        pred_boxes = _boxes(pred_boxes, 'pred_boxes').unsqueeze(0)
    gt_mask = paddle.ones([1, gt_boxes.shape[0]], dtype='float32')
    out = assigner(anchors, pred_boxes, gt_boxes.unsqueeze(0), gt_mask)
    return {key: value[0].numpy() for key, value in out.tensors().items()}


def sms_assign(anchors, gt_boxes, pos_iou=0.35, pred_boxes=None, tile_bytes=DEFAULT_TILE_BYTES):
    return _run(SMSAssigner(pos_iou, tile_bytes), anchors, gt_boxes, pred_boxes)


def dms_assign(anchors, gt_boxes, pos_iou=0.35, pred_boxes=None, tile_bytes=DEFAULT_TILE_BYTES):
    return _run(DMSAssigner(pos_iou, tile_bytes), anchors, gt_boxes, pred_boxes)


def nams_assign(anchors, gt_boxes, pos_iou=0.35, cand_iou=0.1, pred_boxes=None, tile_bytes=DEFAULT_TILE_BYTES):
    return _run(NAMSAssigner(pos_iou, cand_iou, tile_bytes), anchors, gt_boxes, pred_boxes)


def hambox_assign(anchors, pred_boxes, gt_boxes, pos_iou=0.35, K=3, T=0.8, ignore_iou=0.5,
                  tile_bytes=DEFAULT_TILE_BYTES):
    return _run(HAMBoxAssigner(pos_iou, K, T, ignore_iou, tile_bytes), anchors, gt_boxes, pred_boxes)
