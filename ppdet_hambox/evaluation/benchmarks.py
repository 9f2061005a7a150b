"""Benchmarks other than WIDER FACE AP: where their images and annotations
are and the numbers of their protocols (config sections of these names).

- ``WiderChallengeEval`` (``metric: coco``): the WIDER Face Challenge 2019
  COCO-style AP@[.50:.95] on WIDER FACE val, from the same prediction folder.
- ``FDDBEval`` (``metric: fddb``): discrete and continuous ROC on the FDDB
  folds; images ``<image_dir>/<path>.jpg``.
- ``BoxAPEval`` (``metric: afw`` / ``pascal`` / ``boxap``): VOC AP at an IoU
  threshold on a plain ground-truth list (``metrics.box_ap`` format); images
  ``<image_dir>/<image id><image_ext>``.
"""
import os

import numpy as np

from ppdet_hambox.core.workspace import register

__all__ = ['WiderChallengeEval', 'FDDBEval', 'BoxAPEval']


@register
class WiderChallengeEval:
    """``setting``: the WIDER setting whose faces count (the others are ignored)."""

    def __init__(self, setting='hard'):
        self.setting = setting

    def evaluate(self, pred_dir, gt):
        from ppdet_hambox.metrics import coco_map
        result = coco_map.evaluate(pred_dir, gt, setting=self.setting)
        return {k: result[k] for k in ('ap', 'ap50', 'ap75', 'setting', 'num_faces', 'num_ignored', 'num_det')}


@register
class FDDBEval:
    """``conversion``: how boxes are scored against FDDB's ellipses (``none``,
    ``stretch``: height x ``factor`` upward, ``box-to-ellipse``: the upright
    ellipse inscribed in the stretched box); ``fp_budget``: the false-positive
    count the TPRs are read at."""

    def __init__(self, folds_dir='dataset/fddb/FDDB-folds', image_dir='dataset/fddb/originalPics',
                 conversion='none', factor=1.0, fp_budget=1000):
        self.folds_dir = folds_dir
        self.image_dir = image_dir
        self.conversion = conversion
        self.factor = factor
        self.fp_budget = fp_budget

    def images(self):
        from ppdet_hambox.metrics import fddb
        return [(image.path, os.path.join(self.image_dir, image.path + '.jpg'))
                for image in fddb.read_folds(self.folds_dir)]

    def evaluate(self, detections, sizes, output_dir):
        """``detections``: {path: [k, 5] x1 y1 x2 y2 score}; ``sizes``: {path: (w, h)}."""
        from ppdet_hambox.metrics import fddb
        images = fddb.read_folds(self.folds_dir)
        boxes = {path: _xywh(d) for path, d in detections.items()}
        fddb.write_detections(os.path.join(output_dir, 'fddb_detections.txt'), images, boxes)
        result = fddb.evaluate(images, boxes, sizes, conversion=self.conversion, factor=self.factor,
                               fp_budget=self.fp_budget)
        return {k: result[k] for k in ('discrete', 'continuous', 'fp_budget', 'num_faces', 'max_fp',
                                       'conversion', 'factor')}


@register
class BoxAPEval:
    """``gt_path``: faces, one per line ``image_id x1 y1 x2 y2 [ignore]``."""

    def __init__(self, gt_path='dataset/afw/afw_gt.txt', image_dir='dataset/afw/images', image_ext='.jpg',
                 iou_threshold=0.5):
        self.gt_path = gt_path
        self.image_dir = image_dir
        self.image_ext = image_ext
        self.iou_threshold = iou_threshold

    def images(self):
        from ppdet_hambox.metrics import box_ap
        ids = list(dict.fromkeys(box_ap.read_ground_truth(self.gt_path)['image'].tolist()))
        return [(image_id, os.path.join(self.image_dir, image_id + self.image_ext)) for image_id in ids]

    def evaluate(self, detections, sizes, output_dir):
        from ppdet_hambox.metrics import box_ap
        path = os.path.join(output_dir, 'detections.txt')
        with open(path, 'w') as f:
            for image_id, dets in detections.items():
                rows = np.asarray(dets, np.float64).reshape(-1, 5)[:, [4, 0, 1, 2, 3]]
                f.writelines('{} {:.9g} {:.6f} {:.6f} {:.6f} {:.6f}\n'.format(image_id, *row) for row in rows.tolist())
        result = box_ap.evaluate(box_ap.read_ground_truth(self.gt_path), box_ap.read_detections(path),
                                 self.iou_threshold)
        return {'ap': result['ap'], 'num_gt': result['num_gt'], 'num_det': result['num_det'],
                'tp': result['tp'], 'fp': result['fp'], 'iou_threshold': self.iou_threshold}


def _xywh(dets):
    dets = np.asarray(dets, np.float64).reshape(-1, 5)
    return np.concatenate([dets[:, :2], dets[:, 2:4] - dets[:, :2], dets[:, 4:]], axis=1)
