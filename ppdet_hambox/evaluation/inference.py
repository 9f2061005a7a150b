"""Inference on image files: detections drawn and saved, optionally as JSON.

An image that cannot be read, or whose header declares more pixels than
allowed, is skipped with a warning naming it and the reason; the run ends
with ``N images, K skipped: ...``.
"""
import json
import logging
import os

import cv2

from ppdet_hambox.core.errors import UserError
from ppdet_hambox.data import IMAGE_EXTENSIONS, MAX_PIXELS, ImageReadError, read_image
from ppdet_hambox.evaluation.evaluator import SkipLog
from ppdet_hambox.utils.visualize import detections_to_records, draw_detections

__all__ = ['list_images', 'infer_images']

logger = logging.getLogger(__name__)


def list_images(infer_img=None, infer_dir=None):
    """``[(infer_img, its file name)]``, or ``(path, path relative to
    infer_dir)`` for every image in ``infer_dir`` and its sub-folders, sorted."""
    if infer_img:
        if not os.path.isfile(infer_img):
            raise UserError('--infer_img {}: no such file'.format(infer_img))
        return [(infer_img, os.path.basename(infer_img))]
    if not infer_dir or not os.path.isdir(infer_dir):
        raise UserError('--infer_dir {}: no such folder'.format(infer_dir))
    images = []
    for root, folders, names in os.walk(infer_dir):
        folders.sort()
        images += [os.path.join(root, n) for n in names if n.lower().endswith(IMAGE_EXTENSIONS)]
    if not images:
        raise UserError('--infer_dir {} holds no image ({}), in sub-folders neither'.format(
            infer_dir, ', '.join(IMAGE_EXTENSIONS)))
    return sorted((path, os.path.relpath(path, infer_dir)) for path in images)


def infer_images(predictor, images, output_dir, draw_threshold=0.5, save_json=False, max_pixels=MAX_PIXELS):
    """Detect faces on each image of ``images`` (``(path, relative output
    name)`` pairs, as ``list_images`` gives, or plain paths); write
    ``<output_dir>/<relative name>`` with the detections scoring >=
    ``draw_threshold`` drawn, and with ``save_json`` ``<output_dir>/bbox.json``
    (those detections, x y w h, per image). Unreadable images, and those
    whose header declares more than ``max_pixels`` pixels (None: no limit),
    are skipped with a warning. Returns ``({image path: detections [N, 5]}, skipped
    [(path, reason)])``."""
    os.makedirs(output_dir, exist_ok=True)
    results, records = {}, []
    skips = SkipLog(logger)
    for item in images:
        path, rel = item if isinstance(item, tuple) else (item, os.path.basename(item))
        try:
            image = read_image(path, max_pixels)
        except ImageReadError as err:
            skips.skip(path, err)
            continue
        dets = predictor.detect(image)
        results[path] = dets
        out_path = os.path.join(output_dir, rel)
        os.makedirs(os.path.dirname(out_path) or '.', exist_ok=True)
        cv2.imwrite(out_path, draw_detections(image, dets, draw_threshold))
        records.extend(detections_to_records(dets, draw_threshold, im_file=path))
        logger.info('%s: %d faces >= %.2f -> %s', path, int((dets[:, 4] >= draw_threshold).sum()),
                    draw_threshold, out_path)
    if save_json:
        json_path = os.path.join(output_dir, 'bbox.json')
        with open(json_path, 'w') as f:
            json.dump(records, f)
        logger.info('detections written to %s', json_path)
    log = logger.warning if skips.skipped else logger.info
    log('infer: %s', skips.summary(len(images)))
    return results, skips.skipped
