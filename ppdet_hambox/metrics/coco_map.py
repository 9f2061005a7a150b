"""COCO-style AP@[.50:.05:.95] on WIDER FACE val (the WIDER Face Challenge 2019 metric), via pycocotools.

The COCO ground truth is built in memory from the official val .mat files
(``widerface.load_ground_truth``), one image per val image, one category ``face``.

Ignore rules (our choice, stated with every result):
- the faces counted in the chosen WIDER setting (``hard`` by default: 31,958 faces) are ordinary
  annotations;
- every other face (invalid, or too small / occluded for the setting, and the all-zero boxes of
  the four face-less images) is ignored, and so is a counted face of zero width or height (its
  IoU is undefined). A detection whose best match is an ignored face counts neither as a true
  nor as a false positive, as in the WIDER protocol. This is done by giving ignored faces the
  area -1, outside COCOeval's area range, which makes COCOeval ignore them while keeping the
  ordinary IoU (``iscrowd`` would change the IoU to intersection over detection area).
- Boxes are ``x y w h`` as written (continuous coordinates, COCO's IoU without ``+1``); at most
  1,000 detections per image count (the most crowded val image has 709 faces); the AP is
  COCOeval's 101-point interpolated precision averaged over IoU 0.50, 0.55, ..., 0.95.

Predictions are read like the official WIDER mode reads them (``widerface.load_predictions``:
missing files are images without detections, with a warning naming them).
"""
import contextlib
import io
import warnings

import numpy as np

from . import widerface

MAX_DETS = 1000


def build_coco_gt(gt, setting='hard'):
    """(pycocotools COCO object, number of counted faces, number of ignored faces)."""
    from pycocotools.coco import COCO
    boxes = gt.boxes.astype(np.float64)
    image = np.repeat(np.arange(gt.num_images), np.diff(gt.offsets))
    counted = gt.counted[setting] & (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
    area = np.where(counted, boxes[:, 2] * boxes[:, 3], -1.0)
    dataset = {
        'images': [{'id': i + 1, 'file_name': '{}/{}.jpg'.format(gt.events[e], name)}
                   for i, (e, name) in enumerate(zip(gt.image_event, gt.names))],
        'categories': [{'id': 1, 'name': 'face'}],
        'annotations': [{'id': k + 1, 'image_id': int(i) + 1, 'category_id': 1, 'bbox': b, 'area': float(a),
                         'iscrowd': 0} for k, (i, b, a) in enumerate(zip(image, boxes.tolist(), area))],
    }
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco, int(counted.sum()), int(len(boxes) - counted.sum())


def evaluate(predictions, gt, setting='hard'):
    """dict(ap, ap50, ap75, precision [10, 101], setting, num_faces, num_ignored, num_det)."""
    from pycocotools.cocoeval import COCOeval
    if setting not in widerface.SETTINGS:
        raise ValueError('unknown setting {!r}; choose one of {}'.format(setting, widerface.SETTINGS))
    gt = gt if isinstance(gt, widerface.GroundTruth) else widerface.load_ground_truth(gt)
    preds = (predictions if isinstance(predictions, widerface.Predictions)
             else widerface.load_predictions(predictions, gt))
    widerface.emit_issues(preds.issues, 'official')
    keep = preds.in_count & ~preds.truncated[preds.image]
    coco_gt, num_faces, num_ignored = build_coco_gt(gt, setting)
    result = {'setting': setting, 'num_faces': num_faces, 'num_ignored': num_ignored, 'num_det': int(keep.sum())}
    if not keep.any():
        warnings.warn('{}: no detections: every AP is 0'.format(preds.pred_dir), widerface.WiderEvalWarning,
                      stacklevel=2)
        return dict(result, ap=0.0, ap50=0.0, ap75=0.0, precision=np.zeros((10, 101)))
    xywh = preds.boxes[keep].copy()
    xywh[:, 2:] = np.clip(xywh[:, 2:], 0, None)
    dets = np.c_[preds.image[keep] + 1, xywh, preds.scores[keep], np.ones(int(keep.sum()))]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(dets)
        ev = COCOeval(coco_gt, coco_dt, 'bbox')
        ev.params.areaRng = [[0, 1e10]]
        ev.params.areaRngLbl = ['all']
        ev.params.maxDets = [MAX_DETS]
        ev.evaluate()
        ev.accumulate()
    precision = ev.eval['precision'][:, :, 0, 0, 0]  # [IoU thresholds, recall points]

    def mean_ap(p):
        valid = p[p > -1]
        return float(valid.mean()) if valid.size else 0.0

    return dict(result, ap=mean_ap(precision), ap50=mean_ap(precision[0]), ap75=mean_ap(precision[5]),
                precision=precision)
