"""Inference on image files: detections drawn and saved, optionally as JSON.

An image that cannot be read, or whose header declares more pixels than
allowed, is skipped with a warning naming it and the reason; the run ends
with ``N images, K skipped: ...``. Every output file is written through
``safe_write``: a file already in ``--output_dir`` that this project did not
write there (an input photo, when the output folder is the image folder) is
refused before the first image, and a failed write is an error naming the
file, never a skipped count.
"""
import logging
import os

from ppdet_hambox.core.errors import UserError
from ppdet_hambox.data import IMAGE_EXTENSIONS, MAX_PIXELS, ImageReadError, read_image
from ppdet_hambox.evaluation.evaluator import SkipLog
from ppdet_hambox.utils.safe_write import claim, output_folder, write_image, write_json
from ppdet_hambox.utils.visualize import detections_to_records, draw_detections

__all__ = ['list_images', 'infer_images', 'check_outputs', 'JSON_NAME']

logger = logging.getLogger(__name__)

JSON_NAME = 'bbox.json'


def list_images(infer_img=None, infer_dir=None):
    """``[(infer_img, its file name)]``, or ``(path, path relative to
    infer_dir)`` for every image in ``infer_dir`` and its sub-folders, sorted."""
    if infer_img:
        if not os.path.isfile(infer_img):
            raise UserError('--infer_img {}: no such file'.format(infer_img))
        return [(infer_img, os.path.basename(infer_img))]
    if not infer_dir or not os.path.isdir(infer_dir):
        raise UserError('--infer_dir {}: no such folder'.format(infer_dir))
    images, ignored = [], []
    for root, folders, names in os.walk(infer_dir):
        folders.sort()
        for name in sorted(names):
            (images if name.lower().endswith(IMAGE_EXTENSIONS) else ignored).append(os.path.join(root, name))
    if ignored:
        logger.warning('--infer_dir %s: ignored %d file(s) without an image extension (%s): %s%s', infer_dir,
                       len(ignored), ', '.join(IMAGE_EXTENSIONS), ', '.join(ignored[:5]),
                       ', ...' if len(ignored) > 5 else '')
    if not images:
        raise UserError('--infer_dir {} holds no image ({}), in sub-folders neither'.format(
            infer_dir, ', '.join(IMAGE_EXTENSIONS)))
    return sorted((path, os.path.relpath(path, infer_dir)) for path in images)


def _pairs(images):
    return [item if isinstance(item, tuple) else (item, os.path.basename(item)) for item in images]


def check_outputs(images, output_dir, save_json=False):
    """Before any work: ``output_dir`` can be written and none of the files
    the run will write there replaces a file this project did not write
    (``safe_write.claim``); a ``WriteError`` otherwise."""
    output_folder(output_dir, '--output_dir')
    names = [rel for _, rel in _pairs(images)] + ([JSON_NAME] if save_json else [])
    for rel in names:
        claim(os.path.join(output_dir, rel), '--output_dir: drawing' if rel != JSON_NAME else '--save_json:')


def infer_images(predictor, images, output_dir, draw_threshold=0.5, save_json=False, max_pixels=MAX_PIXELS):
    """Detect faces on each image of ``images`` (``(path, relative output
    name)`` pairs, as ``list_images`` gives, or plain paths); write
    ``<output_dir>/<relative name>`` with the detections scoring >=
    ``draw_threshold`` drawn, and with ``save_json`` ``<output_dir>/bbox.json``
    (those detections, x y w h, per image). Unreadable images, and those
    whose header declares more than ``max_pixels`` pixels (None: no limit),
    are skipped with a warning. Returns ``({image path: detections [N, 5]}, skipped
    [(path, reason)])``."""
    check_outputs(images, output_dir, save_json)
    results, records = {}, []
    skips = SkipLog(logger)
    for path, rel in _pairs(images):
        try:
            image = read_image(path, max_pixels)
        except ImageReadError as err:
            skips.skip(path, err)
            continue
        dets = predictor.detect(image)
        results[path] = dets
        out_path = os.path.join(output_dir, rel)
        write_image(out_path, draw_detections(image, dets, draw_threshold))
        records.extend(detections_to_records(dets, draw_threshold, im_file=path))
        logger.info('%s: %d faces >= %.2f -> %s', path, int((dets[:, 4] >= draw_threshold).sum()),
                    draw_threshold, out_path)
    if save_json:
        json_path = os.path.join(output_dir, JSON_NAME)
        write_json(json_path, records, indent=None)
        logger.info('detections written to %s', json_path)
    log = logger.warning if skips.skipped else logger.info
    log('infer: %s', skips.summary(len(images)))
    return results, skips.skipped
