"""Run a model over a dataset and feed its per-anchor outputs to :class:`MatchStats`.

Per batch: ``model.head_outputs`` (scores and decoded boxes, network-input
pixels), the anchors of the input size, the SMS, DMS and HAMBox assigners on
the batch's faces, and NMS on the boxes scoring at least ``score_thr``.
"""
import numpy as np
import paddle

from ppdet_hambox.analysis.match_stats import MatchStats
from ppdet_hambox.modeling.assigners import DMSAssigner, HAMBoxAssigner, SMSAssigner

__all__ = ['collect_match_stats', 'nms_keep']


def nms_keep(scores, boxes, score_thr, nms_iou, pre_nms_top_k=-1, keep_top_k=-1):
    """Anchor indices NMS keeps among those scoring >= ``score_thr`` (NumPy in, NumPy out)."""
    candidates = np.flatnonzero(scores >= score_thr)
    if len(candidates) == 0:
        return candidates
    candidates = candidates[np.argsort(-scores[candidates], kind='stable')]
    if pre_nms_top_k > 0:
        candidates = candidates[:pre_nms_top_k]
    kept = paddle.vision.ops.nms(paddle.to_tensor(boxes[candidates]), nms_iou,
                                 paddle.to_tensor(scores[candidates])).numpy()
    if keep_top_k > 0:
        kept = kept[:keep_top_k]
    return candidates[kept]


def _face_count(gt_mask, image):
    """Number of real faces of an image; PadGT puts them first."""
    mask = gt_mask[image] > 0.5
    count = int(mask.sum())
    if not mask[:count].all():
        raise ValueError('gt_mask of image {} is not a prefix of ones: faces must come before '
                         'padding (PadGT)'.format(image))
    return count


def _assigner_outputs(out, image):
    return {key: value[image].numpy() for key, value in out.tensors().items()}


@paddle.no_grad()
def collect_match_stats(model, batches, stats=None, hambox_args=None, nms_iou=0.4, pre_nms_top_k=5000,
                        keep_top_k=750, clip_boxes=True, max_images=-1):
    """Accumulate ``stats`` (a :class:`MatchStats`) over ``batches`` (reader batches with
    ``image``, ``gt_bbox``, ``gt_mask``, ``im_shape``); returns ``stats``."""
    stats = stats or MatchStats()
    hambox = HAMBoxAssigner(pos_iou=stats.pos_iou, **(hambox_args or {}))
    sms, dms = SMSAssigner(stats.pos_iou), DMSAssigner(stats.pos_iou)
    generator = model.anchor_generator
    model.eval()
    for batch in batches:
        if 0 <= max_images <= stats.images:
            break
        if 'image' not in batch:
            continue
        out = model.head_outputs(batch)
        scores, boxes = out['scores'], out['boxes']
        height, width = batch['image'].shape[2:]
        anchors = generator.anchors(generator.feature_shapes(height, width))
        if anchors.shape[0] != scores.shape[1]:
            raise ValueError('the model has {} anchors for a {}x{} input but its AnchorGenerator '
                             'gives {}'.format(scores.shape[1], height, width, anchors.shape[0]))
        if clip_boxes:
            h, w = batch['im_shape'][:, 0:1], batch['im_shape'][:, 1:2]
            upper = paddle.concat([w, h, w, h], axis=1).unsqueeze(1)
            boxes = paddle.minimum(paddle.maximum(boxes, paddle.zeros_like(boxes)), upper)
        gt_bbox, gt_mask = batch['gt_bbox'], batch['gt_mask']
        assigned = {name: assigner(anchors, boxes, gt_bbox, gt_mask)
                    for name, assigner in (('sms', sms), ('dms', dms), ('hambox', hambox))}
        mask_np = gt_mask.numpy()
        for image in range(scores.shape[0]):
            if 0 <= max_images <= stats.images:
                return stats
            faces = gt_bbox[image, :_face_count(mask_np, image)]
            score_np, boxes_np = scores[image].numpy(), boxes[image].numpy()
            stats.add_boxes(score_np, anchors, boxes[image], faces,
                            *(_assigner_outputs(assigned[k], image) for k in ('sms', 'dms', 'hambox')),
                            kept=nms_keep(score_np, boxes_np, stats.score_thr, nms_iou,
                                          pre_nms_top_k, keep_top_k), tile_bytes=hambox.tile_bytes)
    return stats
