"""Inference on image files: detections drawn and saved, optionally as JSON."""
import json
import logging
import os

import cv2

from ppdet_hambox.engine.evaluator import read_image
from ppdet_hambox.utils.visualize import detections_to_records, draw_detections

__all__ = ['list_images', 'infer_images', 'IMAGE_EXTENSIONS']

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')


def list_images(infer_img=None, infer_dir=None):
    """``[infer_img]``, or the images directly inside ``infer_dir`` (sorted)."""
    if infer_img:
        if not os.path.isfile(infer_img):
            raise FileNotFoundError('--infer_img: no such file {}'.format(infer_img))
        return [infer_img]
    if not infer_dir or not os.path.isdir(infer_dir):
        raise FileNotFoundError('--infer_dir: no such folder {}'.format(infer_dir))
    images = sorted(os.path.join(infer_dir, f) for f in os.listdir(infer_dir)
                    if f.lower().endswith(IMAGE_EXTENSIONS))
    if not images:
        raise FileNotFoundError('--infer_dir {} holds no image ({})'.format(infer_dir, ', '.join(IMAGE_EXTENSIONS)))
    return images


def infer_images(predictor, image_paths, output_dir, draw_threshold=0.5, save_json=False):
    """Detect faces on each image; write ``<output_dir>/<image name>`` with the
    detections scoring >= ``draw_threshold`` drawn, and with ``save_json``
    ``<output_dir>/bbox.json`` (those detections, x y w h, per image).
    Returns ``{image path: detections [N, 5]}``."""
    os.makedirs(output_dir, exist_ok=True)
    results, records = {}, []
    for path in image_paths:
        image = read_image(path)
        dets = predictor.detect(image)
        results[path] = dets
        out_path = os.path.join(output_dir, os.path.basename(path))
        cv2.imwrite(out_path, draw_detections(image, dets, draw_threshold))
        records.extend(detections_to_records(dets, draw_threshold, im_file=path))
        logger.info('%s: %d faces >= %.2f -> %s', path, int((dets[:, 4] >= draw_threshold).sum()),
                    draw_threshold, out_path)
    if save_json:
        json_path = os.path.join(output_dir, 'bbox.json')
        with open(json_path, 'w') as f:
            json.dump(records, f)
        logger.info('detections written to %s', json_path)
    return results
