"""Reference WIDER FACE evaluation for the tests and the benchmark: a plain per-image, per-box loop
written step by step from docs/evaluation_protocol.md, independent of the vectorised code in
``ppdet_hambox.metrics.widerface`` (it shares only the parsed inputs).

Deliberately different formulations: rounding through ``floor`` instead of ``trunc``, the match by
``argmax`` over the faces of one prediction, the walk as a Python loop, the "last prediction with
score >= t" from a threshold x prediction comparison table instead of suffix maxima.
"""
import math

import numpy as np

SETTINGS = ('easy', 'medium', 'hard')
THRESH_NUM = 1000
INT32_MIN, INT32_MAX = -2 ** 31, 2 ** 31 - 1


def matlab_round(x):
    """Round half away from zero, via floor."""
    x = np.asarray(x, dtype=np.float64)
    f = np.floor(x)
    d = x - f
    return np.where(d > 0.5, f + 1, np.where(d < 0.5, f, np.where(x >= 0, f + 1, f)))


def scalar_to_int32(x):
    """One double to int32 the MATLAB way, in plain Python."""
    f = math.floor(x)
    d = x - f
    r = f + 1 if d > 0.5 or (d == 0.5 and x >= 0) else f
    return min(max(r, INT32_MIN), INT32_MAX)


def to_int32(x):
    return np.clip(matlab_round(x), INT32_MIN, INT32_MAX).astype(np.int64)


def int32_divide(a, b):
    """MATLAB int32 ./ int32: the double quotient rounded; x/0 is intmax, -x/0 intmin, 0/0 zero."""
    safe = np.where(b == 0, 1, b)
    by_zero = np.where(a > 0, INT32_MAX, np.where(a < 0, INT32_MIN, 0))
    return np.where(b == 0, by_zero, to_int32(a / safe))


def boxoverlap_official(gt, box):
    """MATLAB ``boxoverlap(gt_bbx, pred)`` with int32 gt (x1 y1 x2 y2) and a double box."""
    gx1, gy1, gx2, gy2 = (gt[:, i] for i in range(4))
    x1 = np.maximum(gx1, scalar_to_int32(box[0]))
    y1 = np.maximum(gy1, scalar_to_int32(box[1]))
    x2 = np.minimum(gx2, scalar_to_int32(box[2]))
    y2 = np.minimum(gy2, scalar_to_int32(box[3]))
    w = x2 - x1 + 1
    h = y2 - y1 + 1
    inter = w * h
    aarea = (gx2 - gx1 + 1) * (gy2 - gy1 + 1)
    barea = (box[2] - box[0] + 1) * (box[3] - box[1] + 1)
    union = np.clip(to_int32(aarea + barea) - inter, INT32_MIN, INT32_MAX)
    o = int32_divide(inter, union)
    o[w <= 0] = 0
    o[h <= 0] = 0
    return o


def bbox_overlaps_port(box, gt):
    """The port's IoU of one float box (x1 y1 x2 y2) with float gt boxes, +1 convention."""
    box_area = (box[2] - box[0] + 1) * (box[3] - box[1] + 1)
    iw = np.minimum(box[2], gt[:, 2]) - np.maximum(box[0], gt[:, 0]) + 1
    ih = np.minimum(box[3], gt[:, 3]) - np.maximum(box[1], gt[:, 1]) + 1
    gt_area = (gt[:, 2] - gt[:, 0] + 1) * (gt[:, 3] - gt[:, 1] + 1)
    with np.errstate(divide='ignore', invalid='ignore'):
        iou = iw * ih / (box_area + gt_area - iw * ih)
    return np.where((iw > 0) & (ih > 0), iou, 0.0)


def _rows_per_image(preds, mode):
    """{image: list of [x, y, w, h, score]} as the mode reads the files."""
    rows = {}
    for r in range(len(preds.image)):
        i = int(preds.image[r])
        if mode == 'official' and (not preds.in_count[r] or preds.truncated[i]):
            continue
        rows.setdefault(i, []).append([float(v) for v in preds.boxes[r]] + [float(preds.scores[r])])
    if mode == 'python-port' and any(f is None for f in preds.files):
        raise FileNotFoundError('python-port: a prediction file is missing')
    if mode == 'official':
        for i in rows:
            rows[i] = sorted(rows[i], key=lambda row: -row[4])
    return rows


def _normalise(rows, mode):
    if mode == 'official':
        hi, lo = np.float32(np.finfo(np.float32).tiny), np.float32(np.finfo(np.float32).max)
        for boxes in rows.values():
            hi = max(hi, np.float32(max(b[4] for b in boxes)))
            lo = min(lo, np.float32(min(b[4] for b in boxes)))
        with np.errstate(divide='ignore', invalid='ignore'):
            for boxes in rows.values():
                for b in boxes:
                    b[4] = float(np.float32(np.float32(b[4]) - lo) / np.float32(hi - lo))
    else:
        hi, lo = 0.0, 1.0
        for boxes in rows.values():
            hi = max(hi, max(b[4] for b in boxes))
            lo = min(lo, min(b[4] for b in boxes))
        for boxes in rows.values():
            for b in boxes:
                b[4] = (b[4] - lo) / (hi - lo) if hi != lo else float('nan')


def _match_image(boxes, gt_xywh, mode):
    """Face index matched by each prediction of one image (-1 if none)."""
    matches = []
    if mode == 'official':
        g = gt_xywh.astype(np.int64)
        gt = np.stack([g[:, 0], g[:, 1], g[:, 0] + g[:, 2], g[:, 1] + g[:, 3]], axis=1)
    else:
        g = gt_xywh.astype(np.float64)
        gt = np.stack([g[:, 0], g[:, 1], g[:, 0] + g[:, 2], g[:, 1] + g[:, 3]], axis=1)
    for b in boxes:
        if mode == 'official':
            box = [b[0], b[1], b[0] + b[2], b[1] + b[3]]
            overlap = boxoverlap_official(gt, box)
        else:
            x, y, w, h = b[:4]
            box = [x, y, x + w, y + h]
            overlap = bbox_overlaps_port(box, gt)
        idx = int(np.argmax(overlap))
        matches.append(idx if overlap[idx] >= 0.5 else -1)
    return matches


def _last_index_per_threshold(scores):
    thresholds = np.array([1 - t / THRESH_NUM for t in range(1, THRESH_NUM + 1)])
    table = np.asarray(scores)[None, :] >= thresholds[:, None]
    last = len(scores) - 1 - np.argmax(table[:, ::-1], axis=1)
    return np.where(table.any(axis=1), last, -1)


def voc_ap(rec, prec):
    """MATLAB VOCap; MATLAB's max ignores NaN."""
    mrec = [0.0] + list(rec) + [1.0]
    mpre = [0.0] + list(prec) + [0.0]
    for i in range(len(mpre) - 2, -1, -1):
        a, b = mpre[i], mpre[i + 1]
        mpre[i] = b if np.isnan(a) else (a if np.isnan(b) else max(a, b))
    return sum((mrec[i] - mrec[i - 1]) * mpre[i] for i in range(1, len(mrec)) if mrec[i] != mrec[i - 1])


def evaluate_reference(preds, gt, mode='official'):
    """Same inputs and AP keys as ``widerface.evaluate`` (loaded ``Predictions`` and ``GroundTruth``)."""
    rows = _rows_per_image(preds, mode)
    _normalise(rows, mode)
    per_image = {}
    for i, boxes in rows.items():
        gt_xywh = gt.boxes[gt.offsets[i]:gt.offsets[i + 1]]
        if len(gt_xywh) == 0 or len(boxes) == 0:
            continue
        per_image[i] = (_match_image(boxes, gt_xywh, mode), _last_index_per_threshold([b[4] for b in boxes]))
    result = {}
    for setting in SETTINGS:
        counted_all = gt.counted[setting]
        count_face = 0
        curve = np.zeros((THRESH_NUM, 2))
        for i in range(gt.num_images):
            counted = counted_all[gt.offsets[i]:gt.offsets[i + 1]]
            count_face += int(counted.sum())
            if i not in per_image:
                continue
            matches, last = per_image[i]
            recall_list = [0] * len(counted)
            proposal = [1] * len(matches)
            pred_recall = [0] * len(matches)
            kept_so_far = [0] * len(matches)
            recalled = kept = 0
            for h, g in enumerate(matches):
                if g >= 0:
                    if not counted[g]:
                        recall_list[g] = -1
                        proposal[h] = -1
                    elif recall_list[g] == 0:
                        recall_list[g] = 1
                        recalled += 1
                pred_recall[h] = recalled
                kept += proposal[h] == 1
                kept_so_far[h] = kept
            for t in range(THRESH_NUM):
                r = last[t]
                if r >= 0:
                    curve[t, 0] += kept_so_far[r]
                    curve[t, 1] += pred_recall[r]
        with np.errstate(divide='ignore', invalid='ignore'):
            precision = curve[:, 1] / curve[:, 0]
            recall = curve[:, 1] / count_face
        result[setting] = float(voc_ap(recall, precision))
    return result
