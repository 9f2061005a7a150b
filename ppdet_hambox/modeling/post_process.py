"""Detections from per-anchor scores and boxes: clip, threshold, top-k, NMS.

Batched through ``multiclass_nms3`` (one class, face = 0), with no Python
loop over images, so the same code runs in dygraph, ``to_static`` and the
exported predictor.
"""
import paddle

from ppdet_hambox.core.schema import COUNT, PROBABILITY, Range
from ppdet_hambox.core.workspace import register

__all__ = ['HAMBoxPostProcess']


@register
class HAMBoxPostProcess:
    """Args:
        score_threshold: drop anchors scoring below this before NMS.
        pre_nms_top_k: keep at most this many highest-scoring boxes per image
            before NMS (-1 keeps all).
        nms_threshold: IoU above which NMS suppresses the lower-scored box.
        keep_top_k: keep at most this many detections per image after NMS.
        clip_boxes: clip boxes to the network input (``im_shape``) first.
    """
    __ranges__ = {'score_threshold': PROBABILITY, 'nms_threshold': PROBABILITY, 'keep_top_k': COUNT,
                  'pre_nms_top_k': Range(-1)}

    def __init__(self, score_threshold=0.05, pre_nms_top_k=5000, nms_threshold=0.4, keep_top_k=750,
                 clip_boxes=True):
        self.score_threshold = float(score_threshold)
        self.pre_nms_top_k = int(pre_nms_top_k)
        self.nms_threshold = float(nms_threshold)
        self.keep_top_k = int(keep_top_k)
        self.clip_boxes = clip_boxes

    def __call__(self, scores, boxes, im_shape, scale_factor, score_threshold=None, nms_threshold=None,
                 keep_top_k=None):
        """``scores [B, A]`` (probabilities), ``boxes [B, A, 4]`` x1y1x2y2 in network
        input pixels, ``im_shape [B, 2]`` (h, w), ``scale_factor [B, 2]`` (sy, sx).
        ``score_threshold``, ``nms_threshold`` and ``keep_top_k`` replace the
        component's own for this call (a test protocol's per-pass settings).

        Returns ``bbox float32 [N, 6]`` (class, score, x1, y1, x2, y2) in original
        image pixels, images one after another, and ``bbox_num int32 [B]``.
        """
        if self.clip_boxes:
            h, w = im_shape[:, 0:1], im_shape[:, 1:2]
            upper = paddle.concat([w, h, w, h], axis=1).unsqueeze(1)
            boxes = paddle.minimum(paddle.maximum(boxes, paddle.zeros_like(boxes)), upper)
        # normalized=True: IoU without the +1 pixel convention.
        bbox, _, bbox_num = paddle._C_ops.multiclass_nms3(
            boxes, scores.unsqueeze(1), None,
            self.score_threshold if score_threshold is None else float(score_threshold), self.pre_nms_top_k,
            self.keep_top_k if keep_top_k is None else int(keep_top_k),
            self.nms_threshold if nms_threshold is None else float(nms_threshold), True, 1.0, -1)
        # One [N, 6] divisor (class and score by 1): concatenating column slices
        # instead crashes the oneDNN CPU predictor when no box survives (N = 0).
        sy, sx = scale_factor[:, 0:1], scale_factor[:, 1:2]
        ones = paddle.ones_like(sx)
        per_image = paddle.concat([ones, ones, sx, sy, sx, sy], axis=1)
        per_row = paddle.repeat_interleave(per_image, bbox_num, axis=0)
        return bbox / per_row, bbox_num
