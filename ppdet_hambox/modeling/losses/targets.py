"""Regression targets of assigned anchors."""
import paddle

__all__ = ['box_targets']


def box_targets(coder, anchors, gt_bbox, gt_index):
    """Deltas ``[B, A, 4]`` that ``coder`` encodes from each anchor (``[A, 4]``)
    to its face in ``gt_bbox [B, G, 4]`` (``gt_index [B, A]``), and to the
    anchor itself where there is none (-1), so every value is finite. No
    gradient."""
    batch, num_anchors = gt_index.shape
    index = paddle.clip(gt_index, min=0).unsqueeze(-1).expand([batch, num_anchors, 4])
    faces = paddle.take_along_axis(gt_bbox, index, axis=1)
    anchors = anchors.unsqueeze(0).expand([batch, num_anchors, 4])
    boxes = paddle.where((gt_index >= 0).unsqueeze(-1), faces, anchors)
    return coder.encode(anchors, boxes).detach()
