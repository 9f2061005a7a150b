"""Evaluation of a model under a test protocol on the benchmark its config's
``metric`` names (WIDER FACE val by default).

``run_evaluation(model, cfg, protocol=None, output_dir=None)`` is what
``tools/eval.py`` and the trainer's ``--eval`` call. It writes the
predictions (for WIDER FACE the official folder layout) and returns the
metric's numbers plus ``protocol``, ``metric`` and ``output_dir``.
"""
import functools
import glob
import logging
import os
import shutil
import time

import cv2
import numpy as np

from ppdet_hambox.core.errors import ConfigError
from ppdet_hambox.core.workspace import build_component, create
from ppdet_hambox.engine.predictor import Predictor
from ppdet_hambox.metrics import widerface

__all__ = ['run_evaluation', 'predict_dataset', 'wider_gt_dir', 'zip_predictions', 'METRICS',
           'metric_name', 'clear_prediction_folder', 'read_image']

logger = logging.getLogger(__name__)

# The config's ``metric`` (any case, ``-``/``_`` ignored) -> its evaluation.
METRICS = {'widerface': 'widerface', 'wider': 'widerface', 'coco': 'coco', 'widerchallenge': 'coco',
           'fddb': 'fddb', 'afw': 'boxap', 'pascal': 'boxap', 'pascalface': 'boxap', 'boxap': 'boxap'}
DEFAULT_METRIC = 'widerface'
GT_SUBDIR = os.path.join('eval_tools', 'ground_truth')
LOG_EVERY = 100


def metric_name(cfg):
    raw = cfg.get('metric') or DEFAULT_METRIC
    key = str(raw).lower().replace('_', '').replace('-', '')
    if key not in METRICS:
        raise ConfigError('{}: metric {!r} has no evaluation; choose one of {}'.format(
            cfg.get('__source__', '<config>'), raw, ', '.join(sorted(METRICS))))
    return METRICS[key]


def wider_gt_dir(cfg):
    """The folder of ``wider_face_val.mat`` and ``wider_{easy,medium,hard}_val.mat``:
    ``wider_gt_dir`` if set, else ``<EvalDataset.dataset_dir>/eval_tools/ground_truth``
    (the layout of the official ``eval_tools`` and of the demo dataset)."""
    source = cfg.get('__source__', '<config>')
    path = cfg.get('wider_gt_dir')
    if not path:
        dataset = cfg.get('EvalDataset') or {}
        if not isinstance(dataset, dict) or not dataset.get('dataset_dir'):
            raise ConfigError('{}: set wider_gt_dir (or EvalDataset.dataset_dir) to find the '
                              'WIDER FACE val .mat ground truth'.format(source))
        path = os.path.join(dataset['dataset_dir'], GT_SUBDIR)
    if not os.path.isfile(os.path.join(path, 'wider_face_val.mat')):
        raise ConfigError('{}: no wider_face_val.mat in {} (set wider_gt_dir to the folder of '
                          'wider_face_val.mat and wider_{{easy,medium,hard}}_val.mat)'.format(source, path))
    return path


def read_image(path):
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise IOError('cannot read image {}'.format(path))
    return image


def clear_prediction_folder(output_dir):
    """Remove old ``<event>/<name>.txt`` files so a folder reused across
    evaluations holds only this run's predictions. Nothing else is touched."""
    for path in glob.glob(os.path.join(glob.escape(output_dir), '*', '*.txt')):
        os.remove(path)


def predict_dataset(predictor, dataset, output_dir):
    """Run ``predictor`` on every record of ``dataset`` and write the official
    ``<event>/<name>.txt`` layout; returns (number of images, seconds)."""
    os.makedirs(output_dir, exist_ok=True)
    clear_prediction_folder(output_dir)
    start = time.time()
    total = len(dataset)
    for index in range(total):
        record = dataset[index]
        dets = predictor.detect(read_image(record['im_file']))
        xywh = np.concatenate([dets[:, :2], dets[:, 2:4] - dets[:, :2], dets[:, 4:5]], axis=1)
        widerface.write_predictions(output_dir, record['event'], record['name'], xywh)
        if (index + 1) % LOG_EVERY == 0 or index + 1 == total:
            logger.info('eval [%s] %d/%d images, %.2f s/image', predictor.protocol, index + 1, total,
                        (time.time() - start) / (index + 1))
    return total, time.time() - start


def _evaluate_widerface(model, cfg, protocol, output_dir, challenge=False):
    gt_dir = wider_gt_dir(cfg)
    predictor = Predictor(model, cfg, protocol)
    dataset = build_component(cfg['EvalDataset'], cfg, 'EvalDataset')
    num_images, seconds = predict_dataset(predictor, dataset, output_dir)
    gt = widerface.load_ground_truth(gt_dir)
    official = widerface.evaluate(output_dir, gt, mode='official')
    port = widerface.evaluate(output_dir, gt, mode='python-port')
    result = {s: official[s] for s in widerface.SETTINGS}
    result.update({'mode': 'official',
                   'python_port': {s: port[s] for s in widerface.SETTINGS},
                   'num_images': num_images, 'seconds_per_image': seconds / max(num_images, 1),
                   'protocol': predictor.protocol})
    logger.info('WIDER FACE val (%s protocol, %d images)\n%s', predictor.protocol, num_images,
                widerface.format_table({'official': official, 'python-port': port}))
    if challenge:
        result['coco'] = create('WiderChallengeEval', cfg).evaluate(output_dir, gt)
        logger.info('WIDER Challenge COCO-style AP@[.5:.95] (%s faces): %.4f', result['coco']['setting'],
                    result['coco']['ap'])
    return result


def _evaluate_image_list(model, cfg, protocol, output_dir, section):
    """FDDB, AFW, PASCAL Face: the images the benchmark section lists."""
    benchmark = create(section, cfg)
    predictor = Predictor(model, cfg, protocol)
    os.makedirs(output_dir, exist_ok=True)
    detections, sizes = {}, {}
    start = time.time()
    for key, path in benchmark.images():
        image = read_image(path)
        sizes[key] = (image.shape[1], image.shape[0])
        detections[key] = predictor.detect(image)
    seconds = time.time() - start
    result = benchmark.evaluate(detections, sizes, output_dir)
    result.update({'num_images': len(detections), 'seconds_per_image': seconds / max(len(detections), 1),
                   'protocol': predictor.protocol})
    logger.info('%s (%s protocol, %d images): %s', section, predictor.protocol, len(detections),
                {k: v for k, v in result.items() if isinstance(v, (int, float, str))})
    return result


EVALUATIONS = {
    'widerface': _evaluate_widerface,
    'coco': functools.partial(_evaluate_widerface, challenge=True),
    'fddb': functools.partial(_evaluate_image_list, section='FDDBEval'),
    'boxap': functools.partial(_evaluate_image_list, section='BoxAPEval'),
}


def run_evaluation(model, cfg, protocol=None, output_dir=None):
    """Evaluate ``model`` with a test protocol (``vga`` | ``original`` |
    ``multiscale``; default ``cfg.eval_protocol``, else ``vga``) on the
    benchmark of ``cfg.metric`` (default WIDER FACE):

    - ``widerface``: ``cfg.EvalDataset``; ``easy``, ``medium``, ``hard``
      official AP, ``python_port`` the same in the python-port mode;
    - ``coco``: the same plus ``coco`` (``WiderChallengeEval``: AP@[.5:.95]);
    - ``fddb``: ``FDDBEval``'s images; ``discrete``, ``continuous`` TPR;
    - ``afw`` / ``pascal`` / ``boxap``: ``BoxAPEval``'s images; ``ap``.

    Predictions go to ``output_dir`` (default ``cfg.output_eval``, else
    ``<save_dir>/eval_<protocol>``). The result also holds ``protocol``,
    ``metric`` and ``output_dir``. The model is left in the mode it came in."""
    metric = metric_name(cfg)
    protocol = protocol or cfg.get('eval_protocol') or 'vga'
    output_dir = output_dir or cfg.get('output_eval') or os.path.join(
        cfg.get('save_dir') or 'output', 'eval_{}'.format(protocol))
    result = EVALUATIONS[metric](model, cfg, protocol, output_dir)
    result.update({'metric': metric, 'output_dir': output_dir})
    return result


def zip_predictions(pred_dir, zip_path):
    """Zip the prediction folder (event folders at the archive root) for the
    WIDER FACE benchmark server; returns the archive's path."""
    base = zip_path[:-4] if zip_path.endswith('.zip') else zip_path
    return shutil.make_archive(base, 'zip', root_dir=pred_dir)
