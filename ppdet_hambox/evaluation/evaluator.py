"""Evaluation of a model under a test protocol on the benchmark its config's
``metric`` names (WIDER FACE val by default).

``run_evaluation(model, cfg, protocol=None, output_dir=None)`` is what
``tools/eval.py`` and the trainer's ``--eval`` call. It writes the
predictions (for WIDER FACE the official folder layout) and returns the
metric's numbers plus ``protocol``, ``metric`` and ``output_dir``.
``check_evaluation(cfg)`` checks everything an evaluation needs without
running one (the trainer calls it before its first iteration).

An image that cannot be read is skipped with a warning naming it; WIDER FACE
scores it as an image without detections (an empty prediction file, as the
official tool treats a missing one), FDDB and box AP likewise.
"""
import functools
import logging
import os
import time
import zipfile

import cv2
import numpy as np

from ppdet_hambox.core.errors import ConfigError, UserError
from ppdet_hambox.core.workspace import build_component, create
from ppdet_hambox.data.image_io import ImageReadError
from ppdet_hambox.evaluation.prediction_folder import PredictionFolder, visible_walk
from ppdet_hambox.evaluation.predictor import Predictor
from ppdet_hambox.evaluation.protocols import PROTOCOLS
from ppdet_hambox.metrics import widerface
from ppdet_hambox.utils.safe_write import atomic_file, claim, record

__all__ = ['run_evaluation', 'check_evaluation', 'SCORES', 'predict_dataset', 'wider_gt_dir', 'zip_predictions',
           'METRICS', 'metric_name', 'read_image', 'format_result', 'SkipLog']

logger = logging.getLogger(__name__)

# The config's ``metric`` (any case, ``-``/``_`` ignored) -> its evaluation.
METRICS = {'widerface': 'widerface', 'wider': 'widerface', 'coco': 'coco', 'widerchallenge': 'coco',
           'fddb': 'fddb', 'afw': 'boxap', 'pascal': 'boxap', 'pascalface': 'boxap', 'boxap': 'boxap'}
# The scores each evaluation returns (what ``best_metric`` may name).
SCORES = {'widerface': ('easy', 'medium', 'hard'), 'coco': ('easy', 'medium', 'hard'),
          'fddb': ('discrete', 'continuous'), 'boxap': ('ap',)}
DEFAULT_METRIC = 'widerface'
GT_SUBDIR = os.path.join('eval_tools', 'ground_truth')
# Progress lines: after the first image, the 10th, then every LOG_EVERY
# images or LOG_SECONDS seconds, whichever comes first.
LOG_EVERY = 100
LOG_SECONDS = 30.0
SKIPS_NAMED = 3


def _origin(cfg, key):
    """Who set ``key``: ``-o override`` or the config file that holds it."""
    origins = cfg.get('__origins__') or {}
    return origins.get(key) or cfg.get('__source__', '<config>')


def metric_name(cfg):
    raw = cfg.get('metric') or DEFAULT_METRIC
    key = str(raw).lower().replace('_', '').replace('-', '')
    if key not in METRICS:
        raise ConfigError('{}: metric {!r} has no evaluation; choose one of {}'.format(
            _origin(cfg, 'metric'), raw, ', '.join(sorted(METRICS))))
    return METRICS[key]


def protocol_name(cfg, protocol=None):
    """``protocol`` (a flag), else ``cfg.eval_protocol``, else ``vga``; checked."""
    chosen = protocol or cfg.get('eval_protocol') or 'vga'
    if chosen not in PROTOCOLS:
        where = '--protocol' if protocol else '{}: eval_protocol'.format(_origin(cfg, 'eval_protocol'))
        raise ConfigError('{} {!r} is not a test protocol; choose one of {}'.format(
            where, chosen, ', '.join(PROTOCOLS)))
    return chosen


def wider_gt_dir(cfg):
    """The folder of ``wider_face_val.mat`` and ``wider_{easy,medium,hard}_val.mat``:
    ``wider_gt_dir`` if set, else ``<EvalDataset.dataset_dir>/eval_tools/ground_truth``
    (the layout of the official ``eval_tools`` and of the demo dataset)."""
    source = _origin(cfg, 'wider_gt_dir' if cfg.get('wider_gt_dir') else 'EvalDataset.dataset_dir')
    path = cfg.get('wider_gt_dir')
    if not path:
        dataset = cfg.get('EvalDataset') or {}
        if not isinstance(dataset, dict) or not dataset.get('dataset_dir'):
            raise ConfigError('{}: set wider_gt_dir (or EvalDataset.dataset_dir) to find the '
                              'WIDER FACE val .mat ground truth'.format(source))
        path = os.path.join(dataset['dataset_dir'], GT_SUBDIR)
    missing = [name for name in widerface.GT_FILES.values() if not os.path.isfile(os.path.join(path, name))]
    if missing:
        raise ConfigError('{}: no {} in {} (set wider_gt_dir to the folder of wider_face_val.mat and '
                          'wider_{{easy,medium,hard}}_val.mat)'.format(source, ', '.join(missing), path))
    return path


def read_image(path):
    """BGR ``uint8`` image; ``ImageReadError`` naming the file and the reason."""
    if not os.path.isfile(path):
        raise ImageReadError('cannot read image {}: no such file'.format(path))
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageReadError('cannot read image {}: not decodable (corrupt or not an image)'.format(path))
    return image


class SkipLog:
    """Images that could not be read: a warning each, then one summary line
    ``N images, K skipped: ...``."""

    def __init__(self, log=logger):
        self.log = log
        self.skipped = []

    def skip(self, path, err):
        reason = str(err)
        self.skipped.append((path, reason))
        self.log.warning('skipped %s', reason if path in reason else '{}: {}'.format(path, reason))

    def summary(self, total, consequence=''):
        line = '{} images, {} skipped'.format(total, len(self.skipped))
        if self.skipped:
            names = ', '.join(p for p, _ in self.skipped[:SKIPS_NAMED])
            line += ': {}{}{}'.format(names, ', ...' if len(self.skipped) > SKIPS_NAMED else '',
                                      ' ({})'.format(consequence) if consequence else '')
        return line


class _Progress:
    """Progress lines with speed and ETA from the first image on."""

    def __init__(self, protocol, total):
        self.protocol, self.total = protocol, total
        self.start = self.last = time.time()

    def step(self, done):
        now = time.time()
        if done in (1, 10) or done % LOG_EVERY == 0 or done == self.total or now - self.last >= LOG_SECONDS:
            per_image = (now - self.start) / done
            logger.info('eval [%s] %d/%d images, %.2f s/image, eta %s', self.protocol, done, self.total,
                        per_image, _clock(per_image * (self.total - done)))
            self.last = now


def _clock(seconds):
    seconds = int(round(seconds))
    return '{}:{:02d}:{:02d}'.format(seconds // 3600, seconds // 60 % 60, seconds % 60)


def predict_dataset(predictor, dataset, output_dir):
    """Run ``predictor`` on every record of ``dataset`` and write the official
    ``<event>/<name>.txt`` layout into ``output_dir`` (refused if it holds
    files this project did not write; earlier predictions of ours are
    replaced). An unreadable image gets an empty prediction file (no
    detections). Returns (number of images, seconds, skipped [(path, reason)])."""
    folder = PredictionFolder(output_dir)
    skips = SkipLog()
    total = len(dataset)
    progress = _Progress(predictor.protocol, total)
    start = time.time()
    for index in range(total):
        record = dataset[index]
        try:
            dets = predictor.detect(read_image(record['im_file']))
        except ImageReadError as err:
            skips.skip(record['im_file'], err)
            dets = np.zeros((0, 5), np.float32)
        xywh = np.concatenate([dets[:, :2], dets[:, 2:4] - dets[:, :2], dets[:, 4:5]], axis=1)
        widerface.write_predictions(output_dir, record['event'], record['name'], xywh)
        folder.record(os.path.join(record['event'], record['name'] + '.txt'))
        progress.step(index + 1)
    folder.complete()
    if skips.skipped:
        logger.warning('eval: %s', skips.summary(total, 'scored as images without detections'))
    return total, time.time() - start, skips.skipped


def _evaluate_widerface(model, cfg, protocol, output_dir, predictor=None, challenge=False):
    gt_dir = wider_gt_dir(cfg)
    predictor = predictor or Predictor(model, cfg, protocol)
    dataset = build_component(cfg['EvalDataset'], cfg, 'EvalDataset')
    num_images, seconds, skipped = predict_dataset(predictor, dataset, output_dir)
    gt = widerface.load_ground_truth(gt_dir)
    official = widerface.evaluate(output_dir, gt, mode='official')
    port = widerface.evaluate(output_dir, gt, mode='python-port')
    result = {s: official[s] for s in widerface.SETTINGS}
    result.update({'mode': 'official',
                   'python_port': {s: port[s] for s in widerface.SETTINGS},
                   'num_images': num_images, 'seconds_per_image': seconds / max(num_images, 1),
                   'num_skipped': len(skipped), 'protocol': predictor.protocol})
    if challenge:
        result['coco'] = create('WiderChallengeEval', cfg).evaluate(output_dir, gt)
    return result


def _evaluate_image_list(model, cfg, protocol, output_dir, predictor=None, section=None):
    """FDDB, AFW, PASCAL Face: the images the benchmark section lists. An
    unreadable image is scored without detections; FDDB still needs its size
    (to rasterise its ellipses), so there it is an error naming the image."""
    benchmark = create(section, cfg)
    images = _benchmark_images(benchmark, section)
    predictor = predictor or Predictor(model, cfg, protocol)
    folder = PredictionFolder(output_dir)
    detections, sizes = {}, {}
    skips = SkipLog()
    progress = _Progress(predictor.protocol, len(images))
    start = time.time()
    for index, (key, path) in enumerate(images):
        try:
            image = read_image(path)
        except ImageReadError as err:
            if section == 'FDDBEval':
                raise UserError('{} (FDDBEval.image_dir {}: FDDB needs every image\'s size)'.format(
                    err, benchmark.image_dir)) from None
            skips.skip(path, err)
            detections[key] = np.zeros((0, 5), np.float32)
        else:
            sizes[key] = (image.shape[1], image.shape[0])
            detections[key] = predictor.detect(image)
        progress.step(index + 1)
    seconds = time.time() - start
    if skips.skipped:
        logger.warning('eval: %s', skips.summary(len(images), 'scored as images without detections'))
    result = benchmark.evaluate(detections, sizes, output_dir)
    folder.record_new_files()
    folder.complete()
    result.update({'num_images': len(detections), 'seconds_per_image': seconds / max(len(detections), 1),
                   'num_skipped': len(skips.skipped), 'protocol': predictor.protocol})
    return result


def _benchmark_images(benchmark, section):
    """``benchmark.images()``; its missing or malformed list file as a ConfigError naming the section."""
    try:
        return benchmark.images()
    except (OSError, ValueError) as err:
        raise ConfigError('{}: {} (set the {} section of the config, or -o {}.<key>=...)'.format(
            section, err, section, section)) from None


EVALUATIONS = {
    'widerface': _evaluate_widerface,
    'coco': functools.partial(_evaluate_widerface, challenge=True),
    'fddb': functools.partial(_evaluate_image_list, section='FDDBEval'),
    'boxap': functools.partial(_evaluate_image_list, section='BoxAPEval'),
}


def check_evaluation(cfg, protocol=None):
    """Check, without running a model, everything ``run_evaluation`` needs:
    the metric name, the protocol, the ground truth and the evaluation
    images' list. Raises a ``UserError`` naming the key or file."""
    metric = metric_name(cfg)
    protocol_name(cfg, protocol)
    if metric in ('widerface', 'coco'):
        wider_gt_dir(cfg)
        if not cfg.get('EvalDataset'):
            raise ConfigError('{}: evaluation needs an EvalDataset section'.format(_origin(cfg, 'EvalDataset')))
        dataset = build_component(cfg['EvalDataset'], cfg, 'EvalDataset')
        if len(dataset) == 0:
            raise ConfigError('{}: EvalDataset lists no image'.format(_origin(cfg, 'EvalDataset')))
        image_root = os.path.dirname(dataset[0]['im_file'])
        if not os.path.isdir(image_root):
            raise ConfigError('{}: EvalDataset images not found: no folder {}'.format(
                _origin(cfg, 'EvalDataset.image_dir'), image_root))
    else:
        section = 'FDDBEval' if metric == 'fddb' else 'BoxAPEval'
        benchmark = create(section, cfg)
        _benchmark_images(benchmark, section)
        image_dir = getattr(benchmark, 'image_dir', None)
        if image_dir and not os.path.isdir(image_dir):
            raise ConfigError('{}.image_dir {}: no such folder'.format(section, image_dir))
    return metric


def format_result(result):
    """The result as a few lines: what was evaluated, then the numbers."""
    lines = ['metric: {}, protocol: {}, predictions: {}, {} images{}'.format(
        result['metric'], result['protocol'], result['output_dir'], result.get('num_images', '?'),
        ', {} skipped (scored without detections)'.format(result['num_skipped'])
        if result.get('num_skipped') else '')]
    if 'python_port' in result:
        lines.append(widerface.format_table({'official': result, 'python-port': result['python_port']}))
    if 'coco' in result:
        lines.append('WIDER Challenge AP@[.5:.95] ({} faces): {:.4f}  AP50 {:.4f}  AP75 {:.4f}'.format(
            result['coco']['setting'], result['coco']['ap'], result['coco']['ap50'], result['coco']['ap75']))
    if 'discrete' in result:
        lines.append('FDDB TPR at {} false positives: discrete {:.4f}, continuous {:.4f} (boxes: {} x{:g})'.format(
            result['fp_budget'], result['discrete'], result['continuous'], result['conversion'],
            result['factor'] or 1.0))
    if 'ap' in result:
        lines.append('AP at IoU {}: {:.4f} ({} faces, {} detections)'.format(
            result['iou_threshold'], result['ap'], result['num_gt'], result['num_det']))
    return '\n'.join(lines)


def run_evaluation(model, cfg, protocol=None, output_dir=None, predictor=None, log_result=True):
    """Evaluate ``model`` with a test protocol (``vga`` | ``original`` |
    ``multiscale``; default ``cfg.eval_protocol``, else ``vga``) on the
    benchmark of ``cfg.metric`` (default WIDER FACE):

    - ``widerface``: ``cfg.EvalDataset``; ``easy``, ``medium``, ``hard``
      official AP, ``python_port`` the same in the python-port mode;
    - ``coco``: the same plus ``coco`` (``WiderChallengeEval``: AP@[.5:.95]);
    - ``fddb``: ``FDDBEval``'s images; ``discrete``, ``continuous`` TPR;
    - ``afw`` / ``pascal`` / ``boxap``: ``BoxAPEval``'s images; ``ap``.

    Predictions go to ``output_dir`` (default ``cfg.output_eval``, else
    ``<save_dir>/eval_<protocol>``); a folder holding files this project did
    not write there is refused. ``predictor`` (anything with ``detect(image)``
    and ``protocol``, e.g. an exported model's) replaces the dygraph
    ``Predictor`` of ``model``. The result also holds ``protocol``, ``metric``,
    ``output_dir``, ``num_images`` and ``num_skipped``; it is logged as a
    table unless ``log_result`` is False (a tool that prints ``format_result``
    itself). The model is left in the mode it came in."""
    metric = check_evaluation(cfg, protocol)
    protocol = protocol_name(cfg, protocol)
    output_dir = output_dir or cfg.get('output_eval') or os.path.join(
        cfg.get('save_dir') or 'output', 'eval_{}'.format(protocol))
    result = EVALUATIONS[metric](model, cfg, protocol, output_dir, predictor=predictor)
    result.update({'metric': metric, 'output_dir': output_dir})
    if log_result:
        logger.info('evaluation result\n%s', format_result(result))
    return result


def zip_predictions(pred_dir, zip_path):
    """Zip the prediction folder (event folders at the archive root, without
    hidden files such as the list of written files) for the WIDER FACE
    benchmark server; returns the archive's path. Written through
    ``safe_write`` (whole or not at all, never over a file of yours)."""
    zip_path = claim(zip_path if zip_path.endswith('.zip') else zip_path + '.zip', '--zip:')
    with atomic_file(zip_path) as tmp, zipfile.ZipFile(tmp, 'w', zipfile.ZIP_DEFLATED) as archive:
        for root, _, names in visible_walk(pred_dir):
            rel_root = os.path.relpath(root, pred_dir)
            if rel_root != '.':
                archive.write(root, rel_root)
            for name in names:
                archive.write(os.path.join(root, name), os.path.normpath(os.path.join(rel_root, name)))
    record(zip_path)
    return zip_path
