"""Anchor-matching statistics of a trained model (paper Fig. 2 and Fig. 4c).

Definitions (all IoUs continuous, no ``+1``; boxes in network-input pixels):

- *matched* anchor: positive in the first step of standard matching (SMS:
  best-face IoU >= ``pos_iou``); *compensated* (standard strategy): made
  positive by DMS's second step; *HAMBox-compensated*: label 2 of the
  HAMBox assigner run on the model's decoded boxes.
- *correctly predicted box* (CPBB): an anchor's decoded box whose score is
  at least ``score_thr`` and whose best IoU with a face is above
  ``correct_iou``; counted before NMS and among the boxes NMS keeps.
- *high-quality* anchor: its decoded box has IoU above ``hq_iou`` with some
  face (whatever its score); *unmatched* when SMS leaves it background.

Distributions are kept as histograms on ``BINS`` so memory does not grow
with the dataset. ``add_boxes`` never builds a box x face matrix: the best
face of each decoded box comes from the anchor-tiled scan of the assigners
(``tile_bytes`` bounds its temporaries) and the few IoUs looked up are
computed pair by pair, equal bit for bit to the matrix entries that
``add_image`` reads.
"""
import numpy as np
import paddle

from ppdet_hambox.modeling.assigners.matching import DEFAULT_TILE_BYTES, scan_iou
from ppdet_hambox.modeling.box_coder import aligned_iou

__all__ = ['MatchStats', 'BINS', 'cdf']

BINS = np.linspace(0.0, 1.0, 101)


def cdf(hist):
    """Fraction of values below the right edge of each bin (bins are ``[a, b)``, the
    last one ``[0.99, 1.0]``): ``[len(BINS) - 1]``."""
    hist = np.asarray(hist, dtype=np.float64)
    total = hist.sum()
    return np.cumsum(hist) / total if total > 0 else np.zeros_like(hist)


def _hist(values):
    return np.histogram(np.clip(values, 0.0, 1.0), bins=BINS)[0].astype(np.int64)


class _Distribution:
    """Count, sum and histogram of IoU values."""

    def __init__(self):
        self.count, self.total, self.hist = 0, 0.0, np.zeros(len(BINS) - 1, dtype=np.int64)

    def add(self, values):
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        self.count += len(values)
        self.total += float(values.sum())
        self.hist += _hist(values)

    def summary(self):
        return {'count': self.count, 'mean': self.total / self.count if self.count else 0.0,
                'cdf': [round(v, 6) for v in cdf(self.hist).tolist()]}


class MatchStats:
    """Accumulates the statistics image by image; ``summary()`` gives the numbers."""

    def __init__(self, pos_iou=0.35, correct_iou=0.5, score_thr=0.5, hq_iou=0.5):
        self.pos_iou = float(pos_iou)
        self.correct_iou = float(correct_iou)
        self.score_thr = float(score_thr)
        self.hq_iou = float(hq_iou)
        self.images = 0
        self.faces = 0
        self.face_counts = {k: 0 for k in (
            'matched_to_anchor', 'with_cpbb', 'with_cpbb_from_matched', 'with_cpbb_after_nms',
            'with_cpbb_from_matched_after_nms')}
        self.cpbb = {stage: {'total': 0, 'from_matched': 0, 'anchor_iou': _Distribution()}
                     for stage in ('before_nms', 'after_nms')}
        self.high_quality = {'total': 0, 'unmatched': 0}
        self.anchor_iou = {'first_step': _Distribution(), 'compensated_dms': _Distribution()}
        self.decoded_iou = {'first_step': _Distribution(), 'compensated_dms': _Distribution(),
                            'compensated_hambox': _Distribution()}

    def add_image(self, scores, iou_anchor, iou_pred, sms, dms, hambox, kept):
        """One image from its IoU matrices (small images and tests; see ``add_boxes``).

        scores ``[A]``; ``iou_anchor``, ``iou_pred`` ``[A, G]`` (anchors / decoded
        boxes vs the image's faces); ``sms``, ``dms``, ``hambox``: assigner
        outputs ``dict(labels [A], gt_index [A])`` (``hambox`` may be None);
        ``kept``: anchor indices NMS keeps.
        """
        num_faces = iou_anchor.shape[1]
        best_face = iou_pred.argmax(axis=1) if num_faces else None
        best_pred = iou_pred[np.arange(len(scores)), best_face] if num_faces else None
        self._add(scores, num_faces, best_face, best_pred, lambda rows, faces: iou_anchor[rows, faces],
                  lambda rows, faces: iou_pred[rows, faces], sms, dms, hambox, kept)

    def add_boxes(self, scores, anchors, boxes, faces, sms, dms, hambox, kept, tile_bytes=DEFAULT_TILE_BYTES):
        """``add_image`` from the boxes themselves, in bounded memory: ``anchors``,
        ``boxes`` (decoded) ``[A, 4]`` and ``faces [G, 4]`` Tensors; no ``[A, G]``
        temporary exceeds ``tile_bytes``. Same result as ``add_image`` with the
        full matrices."""
        num_faces = faces.shape[0]
        best_face = best_pred = None
        if num_faces:
            scan = scan_iou(boxes, faces.unsqueeze(0), with_face=True, tile_bytes=tile_bytes)
            best_face, best_pred = scan['face'][0].numpy(), scan['best'][0].numpy()

        def pair_iou(candidates):
            def lookup(rows, face_index):
                if len(rows) == 0:
                    return np.zeros([0], dtype=np.float32)
                rows_t = paddle.to_tensor(np.asarray(rows, dtype=np.int64))
                faces_t = paddle.to_tensor(np.asarray(face_index, dtype=np.int64))
                return aligned_iou(paddle.gather(candidates, rows_t), paddle.gather(faces, faces_t)).numpy()
            return lookup
        self._add(scores, num_faces, best_face, best_pred, pair_iou(anchors), pair_iou(boxes),
                  sms, dms, hambox, kept)

    def _add(self, scores, num_faces, best_face, best_pred, anchor_iou, pred_iou, sms, dms, hambox, kept):
        """``best_face`` / ``best_pred``: each decoded box's best face and IoU;
        ``anchor_iou(rows, faces)`` / ``pred_iou(rows, faces)``: IoUs of the
        anchors / decoded boxes ``rows`` with the faces ``faces``."""
        self.images += 1
        self.faces += num_faces
        matched = sms['labels'] == 1
        if num_faces == 0:
            return
        rows = np.arange(len(scores))
        correct = (scores >= self.score_thr) & (best_pred > self.correct_iou)
        anchor_to_hit = anchor_iou(rows, best_face)
        kept_mask = np.zeros(len(scores), dtype=bool)
        kept_mask[np.asarray(kept, dtype=np.int64)] = True
        for stage, selected in (('before_nms', correct), ('after_nms', correct & kept_mask)):
            bucket = self.cpbb[stage]
            bucket['total'] += int(selected.sum())
            bucket['from_matched'] += int((selected & matched).sum())
            bucket['anchor_iou'].add(anchor_to_hit[selected])
        self._count_faces(num_faces, sms, matched, correct, kept_mask, best_face)
        high = best_pred > self.hq_iou
        self.high_quality['total'] += int(high.sum())
        self.high_quality['unmatched'] += int((high & ~matched).sum())
        compensated = (dms['labels'] == 1) & ~matched
        for name, mask, index in (('first_step', matched, sms['gt_index']),
                                  ('compensated_dms', compensated, dms['gt_index'])):
            self.anchor_iou[name].add(anchor_iou(rows[mask], index[mask]))
            self.decoded_iou[name].add(pred_iou(rows[mask], index[mask]))
        if hambox is not None:
            mined = hambox['labels'] == 2
            self.decoded_iou['compensated_hambox'].add(pred_iou(rows[mined], hambox['gt_index'][mined]))

    def _count_faces(self, num_faces, sms, matched, correct, kept_mask, best_face):
        def faces_of(mask, face_index):
            return len(np.unique(face_index[mask]))

        self.face_counts['matched_to_anchor'] += faces_of(matched, sms['gt_index'])
        self.face_counts['with_cpbb'] += faces_of(correct, best_face)
        self.face_counts['with_cpbb_from_matched'] += faces_of(correct & matched, best_face)
        self.face_counts['with_cpbb_after_nms'] += faces_of(correct & kept_mask, best_face)
        self.face_counts['with_cpbb_from_matched_after_nms'] += faces_of(
            correct & kept_mask & matched, best_face)

    def summary(self):
        def fraction(num, den):
            return num / den if den else 0.0

        cpbb = {}
        for stage, bucket in self.cpbb.items():
            cpbb[stage] = {'total': bucket['total'], 'from_matched': bucket['from_matched'],
                           'fraction_from_matched': fraction(bucket['from_matched'], bucket['total']),
                           'anchor_iou': bucket['anchor_iou'].summary()}
        return {
            'definitions': {'pos_iou': self.pos_iou, 'correct_iou': self.correct_iou,
                            'score_thr': self.score_thr, 'hq_iou': self.hq_iou},
            'images': self.images,
            'faces': self.faces,
            'iou_bins': BINS[1:].round(4).tolist(),
            'correct_boxes': cpbb,
            'high_quality_anchors': dict(self.high_quality, fraction_unmatched=fraction(
                self.high_quality['unmatched'], self.high_quality['total'])),
            'faces_matched': dict(self.face_counts),
            'matched_anchor_iou': {k: v.summary() for k, v in self.anchor_iou.items()},
            'decoded_iou': {k: v.summary() for k, v in self.decoded_iou.items()},
        }
