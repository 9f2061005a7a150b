"""The benchmarks an evaluation scores, each behind one interface
(``Benchmark``) and registered under the config's ``metric`` names:

- ``WiderFaceEval`` (``metric: widerface``): official WIDER FACE val AP on
  ``EvalDataset``, predictions in the official ``<event>/<name>.txt`` layout.
- ``WiderChallengeEval`` (``metric: coco``): the same, plus the WIDER Face
  Challenge 2019 COCO-style AP@[.50:.95] from the same prediction folder.
- ``FDDBEval`` (``metric: fddb``): discrete and continuous ROC on the FDDB
  folds; images ``<image_dir>/<path>.jpg``.
- ``BoxAPEval`` (``metric: afw`` / ``pascal`` / ``boxap``): VOC AP at an IoU
  threshold on a plain ground-truth list (``metrics.box_ap`` format); images
  ``<image_dir>/<image id><image_ext>``.

A new benchmark is one class here: subclass ``Benchmark``, decorate it with
``@benchmark(name, aliases)``; the evaluator loops over the interface.
"""
import os

import numpy as np

from ppdet_hambox.core.schema import COUNT, POSITIVE, PROBABILITY
from ppdet_hambox.core.errors import ConfigError, UserError
from ppdet_hambox.core.workspace import build_component, create, register
from ppdet_hambox.metrics import widerface

__all__ = ['Benchmark', 'benchmark', 'BENCHMARKS', 'METRICS', 'SCORES', 'DEFAULT_METRIC', 'metric_name',
           'build_benchmark', 'config_origin', 'wider_gt_dir', 'WiderFaceEval', 'WiderChallengeEval', 'FDDBEval',
           'BoxAPEval']

DEFAULT_METRIC = 'widerface'
GT_SUBDIR = os.path.join('eval_tools', 'ground_truth')
# metric name -> Benchmark class; config spelling (lower case, no - or _) -> metric name.
BENCHMARKS = {}
METRICS = {}
# The scores each benchmark returns (what ``best_metric`` may name).
SCORES = {}


def benchmark(name, aliases=()):
    """Register a ``Benchmark`` subclass as ``metric: name`` (and its aliases)."""
    def wrap(cls):
        cls.metric = name
        BENCHMARKS[name] = cls
        SCORES[name] = tuple(cls.scores)
        for alias in (name,) + tuple(aliases):
            METRICS[alias] = name
        return cls
    return wrap


def config_origin(cfg, key):
    """Who set ``key``: ``-o override`` or the config file that holds it."""
    origins = cfg.get('__origins__') or {}
    return origins.get(key) or cfg.get('__source__', '<config>')


def metric_name(cfg):
    """The benchmark ``cfg.metric`` names (any case, ``-``/``_`` ignored); default WIDER FACE."""
    raw = cfg.get('metric') or DEFAULT_METRIC
    key = str(raw).lower().replace('_', '').replace('-', '')
    if key not in METRICS:
        raise ConfigError('{}: metric {!r} has no evaluation; choose one of {}'.format(
            config_origin(cfg, 'metric'), raw, ', '.join(sorted(METRICS))))
    return METRICS[key]


def build_benchmark(cfg):
    """The ``Benchmark`` of ``cfg.metric``, built from the config (not yet checked)."""
    return BENCHMARKS[metric_name(cfg)].from_config(cfg)


class Benchmark:
    """What the evaluator needs from a benchmark.

    - ``check()``: the pre-flight, run before any prediction: parse the ground
      truth and the image list, check the image folder; a ``ConfigError``
      naming the file or config key. Idempotent; keeps what it parsed.
    - ``images()``: ``[(key, image path)]`` in the benchmark's order (after ``check``).
    - ``unreadable(path, err)``: an image that cannot be read; by default it
      is scored as an image without detections (return), a benchmark that
      cannot do so raises.
    - ``evaluate(detections, sizes, folder)``: write the prediction files into
      ``folder`` (a ``PredictionFolder``, recording each) and score them (the
      evaluator marks the folder complete afterwards; a benchmark whose metric
      reads the folder back marks it itself before scoring);
      ``detections`` ``{key: [k, 5] x1 y1 x2 y2 score}``, ``sizes`` ``{key: (w, h)}``
      of the images read. Returns the result dict.
    - ``format(result)``: the result's lines for the table.
    - ``scores``: the result keys ``best_metric`` may name.
    """
    metric = None
    scores = ()

    @classmethod
    def from_config(cls, cfg):
        """The benchmark built from its config section (``create``), bound to ``cfg``."""
        bench = create(cls.__name__, cfg)
        bench.cfg = cfg
        return bench

    def check(self):
        raise NotImplementedError

    def images(self):
        raise NotImplementedError

    def unreadable(self, path, err):
        return None

    def evaluate(self, detections, sizes, folder):
        raise NotImplementedError

    def format(self, result):
        raise NotImplementedError


def wider_gt_dir(cfg):
    """The folder of ``wider_face_val.mat`` and ``wider_{easy,medium,hard}_val.mat``:
    ``wider_gt_dir`` if set, else ``<EvalDataset.dataset_dir>/eval_tools/ground_truth``
    (the layout of the official ``eval_tools`` and of the demo dataset)."""
    source = config_origin(cfg, 'wider_gt_dir' if cfg.get('wider_gt_dir') else 'EvalDataset.dataset_dir')
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


@register
@benchmark('widerface', aliases=('wider',))
class WiderFaceEval(Benchmark):
    """WIDER FACE val: the images of ``EvalDataset``, the ``.mat`` ground truth
    of ``wider_gt_dir``; official AP, the python-port AP alongside."""
    scores = widerface.SETTINGS

    def __init__(self):
        self.cfg = self.gt = self.dataset = None

    def check(self):
        if self.gt is not None:
            return
        cfg = self.cfg
        gt_dir = wider_gt_dir(cfg)
        if not cfg.get('EvalDataset'):
            raise ConfigError('{}: evaluation needs an EvalDataset section'.format(
                config_origin(cfg, 'EvalDataset')))
        dataset = build_component(cfg['EvalDataset'], cfg, 'EvalDataset')
        if len(dataset) == 0:
            raise ConfigError('{}: EvalDataset lists no image'.format(config_origin(cfg, 'EvalDataset')))
        image_root = os.path.dirname(dataset[0]['im_file'])
        if not os.path.isdir(image_root):
            raise ConfigError('{}: EvalDataset images not found: no folder {}'.format(
                config_origin(cfg, 'EvalDataset.image_dir'), image_root))
        try:
            self.gt = widerface.load_ground_truth(gt_dir)
        except (OSError, ValueError, KeyError) as err:
            raise ConfigError('{}: WIDER FACE ground truth in {} unreadable: {}'.format(
                config_origin(cfg, 'wider_gt_dir' if cfg.get('wider_gt_dir') else 'EvalDataset.dataset_dir'),
                gt_dir, err)) from None
        self.dataset = dataset

    def images(self):
        records = [self.dataset[i] for i in range(len(self.dataset))]
        return [((r['event'], r['name']), r['im_file']) for r in records]

    def evaluate(self, detections, sizes, folder):
        for (event, name), dets in detections.items():
            xywh = np.concatenate([dets[:, :2], dets[:, 2:4] - dets[:, :2], dets[:, 4:5]], axis=1)
            widerface.write_predictions(folder.path, event, name, xywh)
            folder.record(os.path.join(event, name + '.txt'))
        folder.complete()   # the WIDER FACE metric refuses a folder still marked incomplete
        official = widerface.evaluate(folder.path, self.gt, mode='official')
        port = widerface.evaluate(folder.path, self.gt, mode='python-port')
        result = {s: official[s] for s in widerface.SETTINGS}
        result.update({'mode': 'official', 'python_port': {s: port[s] for s in widerface.SETTINGS}})
        return result

    def format(self, result):
        return [widerface.format_table({'official': result, 'python-port': result['python_port']})]


@register
@benchmark('coco', aliases=('widerchallenge',))
class WiderChallengeEval(WiderFaceEval):
    """WIDER FACE val AP plus the Challenge's AP@[.5:.95]; ``setting``: the
    WIDER setting whose faces count (the others are ignored)."""

    def __init__(self, setting='hard'):
        super().__init__()
        self.setting = setting

    def evaluate(self, detections, sizes, folder):
        from ppdet_hambox.metrics import coco_map
        result = super().evaluate(detections, sizes, folder)
        coco = coco_map.evaluate(folder.path, self.gt, setting=self.setting)
        result['coco'] = {k: coco[k] for k in ('ap', 'ap50', 'ap75', 'setting', 'num_faces', 'num_ignored',
                                              'num_det')}
        return result

    def format(self, result):
        coco = result['coco']
        return super().format(result) + ['WIDER Challenge AP@[.5:.95] ({} faces): {:.4f}  AP50 {:.4f}  AP75 {:.4f}'
                                         .format(coco['setting'], coco['ap'], coco['ap50'], coco['ap75'])]


class _ImageListBenchmark(Benchmark):
    """A benchmark whose config section lists its images (``images_from_files``)."""

    def check(self):
        if getattr(self, '_images', None) is not None:
            return
        section = type(self).__name__
        try:
            self._images = self.images_from_files()
        except (OSError, ValueError) as err:
            raise ConfigError('{}: {} (set the {} section of the config, or -o {}.<key>=...)'.format(
                section, err, section, section)) from None
        if self.image_dir and not os.path.isdir(self.image_dir):
            raise ConfigError('{}.image_dir {}: no such folder'.format(section, self.image_dir))

    def images(self):
        return self._images


@register
@benchmark('fddb')
class FDDBEval(_ImageListBenchmark):
    """``conversion``: how boxes are scored against FDDB's ellipses (``none``,
    ``stretch``: height x ``factor`` upward, ``box-to-ellipse``: the upright
    ellipse inscribed in the stretched box); ``fp_budget``: the false-positive
    count the TPRs are read at. FDDB needs every image's size (to rasterise
    its ellipses): an unreadable image is an error."""
    __ranges__ = {'factor': POSITIVE, 'fp_budget': COUNT}
    scores = ('discrete', 'continuous')

    def __init__(self, folds_dir='dataset/fddb/FDDB-folds', image_dir='dataset/fddb/originalPics',
                 conversion='none', factor=1.0, fp_budget=1000):
        self.folds_dir = folds_dir
        self.image_dir = image_dir
        self.conversion = conversion
        self.factor = factor
        self.fp_budget = fp_budget
        self._images = self._folds = None

    def images_from_files(self):
        from ppdet_hambox.metrics import fddb
        self._folds = fddb.read_folds(self.folds_dir)
        return [(image.path, os.path.join(self.image_dir, image.path + '.jpg')) for image in self._folds]

    def unreadable(self, path, err):
        raise UserError('{} (FDDBEval.image_dir {}: FDDB needs every image\'s size)'.format(err, self.image_dir))

    def evaluate(self, detections, sizes, folder):
        from ppdet_hambox.metrics import fddb
        boxes = {path: _xywh(d) for path, d in detections.items()}
        fddb.write_detections(os.path.join(folder.path, 'fddb_detections.txt'), self._folds, boxes)
        folder.record_new_files()
        result = fddb.evaluate(self._folds, boxes, sizes, conversion=self.conversion, factor=self.factor,
                               fp_budget=self.fp_budget)
        return {k: result[k] for k in ('discrete', 'continuous', 'fp_budget', 'num_faces', 'max_fp',
                                       'conversion', 'factor')}

    def format(self, result):
        return ['FDDB TPR at {} false positives: discrete {:.4f}, continuous {:.4f} (boxes: {} x{:g})'.format(
            result['fp_budget'], result['discrete'], result['continuous'], result['conversion'],
            result['factor'] or 1.0)]


@register
@benchmark('boxap', aliases=('afw', 'pascal', 'pascalface'))
class BoxAPEval(_ImageListBenchmark):
    """``gt_path``: faces, one per line ``image_id x1 y1 x2 y2 [ignore]``."""
    __ranges__ = {'iou_threshold': PROBABILITY}
    scores = ('ap',)

    def __init__(self, gt_path='dataset/afw/afw_gt.txt', image_dir='dataset/afw/images', image_ext='.jpg',
                 iou_threshold=0.5):
        self.gt_path = gt_path
        self.image_dir = image_dir
        self.image_ext = image_ext
        self.iou_threshold = iou_threshold
        self._images = self._gt = None

    def images_from_files(self):
        from ppdet_hambox.metrics import box_ap
        self._gt = box_ap.read_ground_truth(self.gt_path)
        ids = list(dict.fromkeys(self._gt['image'].tolist()))
        return [(image_id, os.path.join(self.image_dir, image_id + self.image_ext)) for image_id in ids]

    def evaluate(self, detections, sizes, folder):
        from ppdet_hambox.metrics import box_ap
        path = os.path.join(folder.path, 'detections.txt')
        with open(path, 'w') as f:
            for image_id, dets in detections.items():
                rows = np.asarray(dets, np.float64).reshape(-1, 5)[:, [4, 0, 1, 2, 3]]
                f.writelines('{} {:.9g} {:.6f} {:.6f} {:.6f} {:.6f}\n'.format(image_id, *row) for row in rows.tolist())
        folder.record_new_files()
        result = box_ap.evaluate(self._gt, box_ap.read_detections(path), self.iou_threshold)
        return {'ap': result['ap'], 'num_gt': result['num_gt'], 'num_det': result['num_det'],
                'tp': result['tp'], 'fp': result['fp'], 'iou_threshold': self.iou_threshold}

    def format(self, result):
        return ['AP at IoU {}: {:.4f} ({} faces, {} detections)'.format(
            result['iou_threshold'], result['ap'], result['num_gt'], result['num_det'])]


def _xywh(dets):
    dets = np.asarray(dets, np.float64).reshape(-1, 5)
    return np.concatenate([dets[:, :2], dets[:, 2:4] - dets[:, :2], dets[:, 4:]], axis=1)
