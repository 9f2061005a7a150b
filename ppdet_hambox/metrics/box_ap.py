"""VOC-style AP at IoU 0.5 for plain box lists (AFW, PASCAL Face).

The real AFW and PASCAL Face box annotations are not available in this workplace (the shared
data holds only their image id lists), so this module defines a plain format that any converted
annotation can be written in:

- ground truth, one face per line: ``image_id x1 y1 x2 y2 [ignore]`` (``ignore`` 0 or 1, default 0:
  a face to be neither found nor counted, VOC's "difficult");
- detections, one per line: ``image_id score x1 y1 x2 y2``.

Blank lines and ``#`` comments are allowed; any other malformed line, a NaN, or a ground-truth box
with x2 < x1 or y2 < y1 is an error naming the file and line. Boxes are continuous pixel
coordinates and IoU has no ``+1`` (docs/architecture.md).

Matching (PASCAL VOC devkit): detections of all images sorted by score, highest first (stable:
ties keep file order); each takes the face of its image with the highest IoU (first on ties); if
that IoU >= the threshold (0.5): an ignored face makes the detection ignored, a face not yet
found makes it a true positive, an already found face a false positive (duplicate); otherwise it
is a false positive. AP is the area under the precision envelope (VOC 2010+ "all points").
Detections on images without any ground-truth box are false positives (warned once).
Vectorised: pair IoUs per image from concatenated arrays, a segment arg-max, and the first
detection per face by a stable unique.
"""
import warnings

import numpy as np

from .widerface import concat_ranges, voc_ap


class BoxAPWarning(UserWarning):
    pass


def _read_table(path, min_fields, max_fields, kind):
    """(image ids [n], float64 values [n, max_fields - 1] (missing optional columns 0), line numbers)."""
    ids, rows, lines = [], [], []
    try:
        text = open(path, encoding='utf-8').read()
    except OSError as exc:
        raise FileNotFoundError('{} file not readable: {} ({})'.format(kind, path, exc)) from exc
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split('#', 1)[0].split()
        if not fields:
            continue
        if not min_fields <= len(fields) <= max_fields:
            raise ValueError('{}:{}: expected {} fields, found {}: {!r}'.format(
                path, lineno, min_fields if min_fields == max_fields else '{}-{}'.format(min_fields, max_fields),
                len(fields), line.strip()))
        try:
            values = [float(v) for v in fields[1:]]
        except ValueError:
            raise ValueError('{}:{}: not a number in {!r}'.format(path, lineno, line.strip())) from None
        if not np.all(np.isfinite(values)):
            raise ValueError('{}:{}: NaN or infinite value in {!r}'.format(path, lineno, line.strip()))
        ids.append(fields[0])
        rows.append(values + [0.0] * (max_fields - len(fields)))
        lines.append(lineno)
    return ids, np.array(rows, dtype=np.float64).reshape(-1, max_fields - 1), np.array(lines)


def read_ground_truth(path):
    """{'image': ids [n], 'boxes': [n, 4] x1 y1 x2 y2, 'ignore': bool [n]}."""
    ids, rows, lines = _read_table(path, 5, 6, 'ground-truth')
    bad = np.flatnonzero((rows[:, 2] < rows[:, 0]) | (rows[:, 3] < rows[:, 1]))
    if bad.size:
        raise ValueError('{}:{}: x2 < x1 or y2 < y1'.format(path, lines[bad[0]]))
    flag = rows[:, 4]
    odd = np.flatnonzero((flag != 0) & (flag != 1))
    if odd.size:
        raise ValueError('{}:{}: the ignore flag must be 0 or 1'.format(path, lines[odd[0]]))
    return {'image': np.array(ids, dtype=object), 'boxes': rows[:, :4], 'ignore': flag == 1}


def read_detections(path):
    """{'image': ids [n], 'scores': [n], 'boxes': [n, 4] x1 y1 x2 y2}."""
    ids, rows, _ = _read_table(path, 6, 6, 'detection')
    return {'image': np.array(ids, dtype=object), 'scores': rows[:, 0], 'boxes': rows[:, 1:5]}


def _pair_iou(a, b):
    iw = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    ih = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def evaluate(gt, det, iou_thresh=0.5):
    """AP and the PR curve: dict(ap, precision, recall, tp, fp, num_gt, num_det)."""
    names = np.unique(np.concatenate([gt['image'], det['image']]).astype(str))
    g_img = np.searchsorted(names, gt['image'].astype(str))
    d_img = np.searchsorted(names, det['image'].astype(str))
    g_order = np.argsort(g_img, kind='stable')
    g_img, g_boxes, g_ignore = g_img[g_order], gt['boxes'][g_order], gt['ignore'][g_order]
    offsets = np.searchsorted(g_img, np.arange(len(names) + 1))
    d_order = np.argsort(-det['scores'], kind='stable')
    d_img, d_boxes, scores = d_img[d_order], det['boxes'][d_order], det['scores'][d_order]
    lonely = np.flatnonzero(offsets[d_img + 1] == offsets[d_img])
    if lonely.size:
        warnings.warn('{} detections on {} images without ground-truth boxes: false positives'.format(
            lonely.size, len(np.unique(d_img[lonely]))), BoxAPWarning, stacklevel=2)
    counts = offsets[d_img + 1] - offsets[d_img]
    pair_det = np.repeat(np.arange(len(d_img)), counts)
    pair_gt = concat_ranges(offsets[d_img], offsets[d_img + 1])
    iou = _pair_iou(d_boxes[pair_det], g_boxes[pair_gt])
    matched = np.full(len(d_img), -1)
    if iou.size:
        first = np.flatnonzero(counts)
        starts = np.cumsum(counts)[first] - counts[first]
        best = np.maximum.reduceat(iou, starts)
        is_best = iou == np.repeat(best, counts[first])
        best_det, idx = np.unique(pair_det[is_best], return_index=True)
        ok = best[np.searchsorted(first, best_det)] >= iou_thresh
        matched[best_det[ok]] = pair_gt[is_best][idx][ok]
    hit = matched >= 0
    ignored = np.zeros(len(d_img), dtype=bool)
    ignored[hit] = g_ignore[matched[hit]]
    counted = np.flatnonzero(hit & ~ignored)
    tp = np.zeros(len(d_img), dtype=bool)
    tp[counted[np.unique(matched[counted], return_index=True)[1]]] = True
    keep = ~ignored
    tp_cum = np.cumsum(tp[keep])
    fp_cum = np.cumsum(~tp[keep])
    num_gt = int((~g_ignore).sum())
    recall = tp_cum / max(num_gt, 1)
    precision = tp_cum / np.maximum(tp_cum + fp_cum, 1)
    return {'ap': voc_ap(recall, precision) if len(recall) else 0.0, 'precision': precision, 'recall': recall,
            'scores': scores[keep], 'num_gt': num_gt, 'num_det': int(len(d_img)),
            'tp': int(tp.sum()), 'fp': int((~tp[keep]).sum())}
