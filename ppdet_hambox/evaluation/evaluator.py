"""Evaluation of a model under a test protocol on the benchmark its config's
``metric`` names (WIDER FACE val by default; ``benchmarks`` holds them all,
behind one interface).

``run_evaluation(model, cfg, protocol=None, output_dir=None)`` is what
``tools/eval.py`` and the trainer's ``--eval`` call: the benchmark's
pre-flight (ground truth parsed, image list read), the prediction of its
images (split across ranks under ``paddle.distributed.launch``), then, on
rank 0, the prediction files and the scores. It returns the benchmark's
numbers plus ``protocol``, ``metric`` and ``output_dir`` (on every rank).
``check_evaluation(cfg)`` runs the pre-flight alone (the trainer calls it
before its first iteration).

An image that cannot be read is skipped with a warning naming it; WIDER FACE
scores it as an image without detections (an empty prediction file, as the
official tool treats a missing one), box AP likewise; FDDB stops with an
error naming it (it needs every image's size).
"""
import logging
import os
import time
import zipfile

import numpy as np

from ppdet_hambox.core.errors import ConfigError
from ppdet_hambox.data import ImageReadError, read_image
from ppdet_hambox.evaluation.benchmarks import (BENCHMARKS, METRICS, SCORES, build_benchmark, config_origin,
                                                metric_name, wider_gt_dir)
from ppdet_hambox.evaluation.prediction_folder import PredictionFolder, check_prediction_folder, visible_walk
from ppdet_hambox.evaluation.predictor import Predictor
from ppdet_hambox.evaluation.protocols import PROTOCOLS
from ppdet_hambox.evaluation.sharding import Shard
from ppdet_hambox.utils.safe_write import atomic_file, claim, record

__all__ = ['run_evaluation', 'check_evaluation', 'SCORES', 'predict_images', 'wider_gt_dir', 'zip_predictions',
           'METRICS', 'metric_name', 'format_result', 'SkipLog']

logger = logging.getLogger(__name__)

# Progress lines: after the first image, the 10th, then every LOG_EVERY
# images or LOG_SECONDS seconds, whichever comes first.
LOG_EVERY = 100
LOG_SECONDS = 30.0
SKIPS_NAMED = 3


def protocol_name(cfg, protocol=None):
    """``protocol`` (a flag), else ``cfg.eval_protocol``, else ``vga``; checked."""
    chosen = protocol or cfg.get('eval_protocol') or 'vga'
    if chosen not in PROTOCOLS:
        where = '--protocol' if protocol else '{}: eval_protocol'.format(config_origin(cfg, 'eval_protocol'))
        raise ConfigError('{} {!r} is not a test protocol; choose one of {}'.format(
            where, chosen, ', '.join(PROTOCOLS)))
    return chosen




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


def predict_images(predictor, benchmark, shard=None):
    """Run ``predictor`` on this rank's share of ``benchmark.images()`` and
    gather every rank's detections. Returns (``{key: [k, 5]}`` in the
    benchmark's order, ``{key: (w, h)}`` of the images read, skipped
    ``[(path, reason)]``, seconds)."""
    shard = shard or Shard()
    images = benchmark.images()
    mine = shard.take(images)
    skips = SkipLog()
    progress = _Progress(predictor.protocol, len(mine))
    start = time.time()
    part = []   # (image index, detections, (w, h) or None, skip reason or None)
    for done, (index, (key, path)) in enumerate(mine, 1):
        try:
            image = read_image(path)
        except ImageReadError as err:
            benchmark.unreadable(path, err)
            skips.skip(path, err)
            part.append((index, np.zeros((0, 5), np.float32), None, str(err)))
        else:
            part.append((index, predictor.detect(image), (image.shape[1], image.shape[0]), None))
        progress.step(done)
    rows = sorted((row for rank_part in shard.gather(part) for row in rank_part), key=lambda row: row[0])
    detections = {images[row[0]][0]: row[1] for row in rows}
    sizes = {images[row[0]][0]: row[2] for row in rows if row[2] is not None}
    skips.skipped = [(images[row[0]][1], row[3]) for row in rows if row[3] is not None]   # every rank's
    if skips.skipped and shard.is_main:
        logger.warning('eval: %s', skips.summary(len(images), 'scored as images without detections'))
    return detections, sizes, skips.skipped, time.time() - start


def check_evaluation(cfg, protocol=None):
    """Check, without running a model, everything ``run_evaluation`` needs:
    the metric name, the protocol, and the benchmark's pre-flight (its
    ground truth parsed, its images listed). Raises a ``UserError`` naming
    the key or file; returns the metric name."""
    _checked_benchmark(cfg, protocol)
    return metric_name(cfg)


def _checked_benchmark(cfg, protocol):
    benchmark = build_benchmark(cfg)
    protocol_name(cfg, protocol)
    benchmark.check()
    return benchmark


def format_result(result, benchmark=None):
    """The result as a few lines: what was evaluated, then the benchmark's numbers."""
    benchmark = benchmark or BENCHMARKS[result['metric']]()
    lines = ['metric: {}, protocol: {}, predictions: {}, {} images{}'.format(
        result['metric'], result['protocol'], result['output_dir'], result.get('num_images', '?'),
        ', {} skipped (scored without detections)'.format(result['num_skipped'])
        if result.get('num_skipped') else '')]
    return '\n'.join(lines + benchmark.format(result))


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
    itself). The model is left in the mode it came in.

    Under ``paddle.distributed.launch`` every rank calls it: the images are
    split across the ranks, rank 0 writes the folder (the same files as one
    process) and every rank returns the result."""
    benchmark = _checked_benchmark(cfg, protocol)
    protocol = protocol_name(cfg, protocol)
    output_dir = output_dir or cfg.get('output_eval') or os.path.join(
        cfg.get('save_dir') or 'output', 'eval_{}'.format(protocol))
    shard = Shard.current()
    check_prediction_folder(output_dir)
    folder = PredictionFolder(output_dir) if shard.is_main else None
    predictor = predictor or Predictor(model, cfg, protocol)
    detections, sizes, skipped, seconds = predict_images(predictor, benchmark, shard)
    result = None
    if shard.is_main:
        result = benchmark.evaluate(detections, sizes, folder)
        folder.complete()
        result.update({'num_images': len(detections), 'seconds_per_image': seconds / max(len(detections), 1),
                       'num_skipped': len(skipped), 'protocol': predictor.protocol,
                       'metric': benchmark.metric, 'output_dir': output_dir})
        if log_result:
            logger.info('evaluation result\n%s', format_result(result, benchmark))
    return shard.from_main(result)


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
