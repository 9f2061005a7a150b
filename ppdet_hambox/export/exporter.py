"""Export a model for Paddle Inference (and optionally ONNX).

Writes to ``output_dir``:
- ``model.json`` + ``model.pdiparams``: the eval graph (backbone, neck, head,
  box decoding, NMS) with inputs ``image [None, 3, None, None]``,
  ``im_shape [None, 2]``, ``scale_factor [None, 2]`` and outputs, by position,
  ``bbox [N, 6]`` (class, score, x1, y1, x2, y2 in original pixels) and
  ``bbox_num [B]``. Training-only branches (pyramid anchors) are not traced.
- ``infer_cfg.yml``: what a standalone predictor needs (``deploy/python``):
  the pre-processing steps with their numbers, the post-processing numbers
  baked into the graph, the draw threshold, the label list.
- with ``onnx``: ``model.onnx`` converted by paddle2onnx (batch of one image;
  see ``export_onnx``).

The files are written into a temporary folder beside ``output_dir`` and moved
in when all are there (``safe_write.staged_folder``): an export appears whole
or not at all, and a failed write (a full disk) is an error naming the path.
"""
import logging
import os

import paddle

from ppdet_hambox.core.errors import ConfigError, UserError
from ppdet_hambox.core.workspace import create
from ppdet_hambox.evaluation.predictor import DEFAULT_PROTOCOL, batch_steps, preprocess_steps
from ppdet_hambox.utils.safe_write import atomic_file, staged_folder, write_yaml

__all__ = ['export_model', 'export_onnx', 'infer_config', 'preprocess_config', 'SINGLE_SCALE_PROTOCOLS',
           'MODEL_FILES', 'ONNX_OPSET']

logger = logging.getLogger(__name__)

MODEL_PREFIX = 'model'
MODEL_FILES = ('model.json', 'model.pdiparams')
INFER_CFG = 'infer_cfg.yml'
ONNX_FILE = 'model.onnx'
ONNX_OPSET = 16
SINGLE_SCALE_PROTOCOLS = ('vga', 'original')
LABEL_LIST = ['face']


def _protocol_resize(settings, protocol):
    if protocol == 'vga':
        return {'type': 'Resize', 'protocol': 'vga', 'rule': 'fit',
                'target_size': [settings.vga_long, settings.vga_short], 'interp': 'linear'}
    if protocol == 'original':
        return {'type': 'Resize', 'protocol': 'original', 'rule': 'cap',
                'max_side': settings.original_max_side, 'interp': 'linear'}
    raise ConfigError('protocol {!r} cannot be exported: a deployed model runs one pass, '
                      'choose one of {}'.format(protocol, ', '.join(SINGLE_SCALE_PROTOCOLS)))


def _standalone_step(item, path):
    """One config transform as a step of ``deploy/python/infer.py``'s vocabulary."""
    name, kwargs = (item, {}) if isinstance(item, str) else next(iter(item.items()))
    kwargs = dict(kwargs or {})
    if name == 'Normalize':
        from ppdet_hambox.data.transform.normalize import Normalize
        defaults = Normalize.__init__.__defaults__
        mean, std, is_scale, to_rgb = (kwargs.get(k, d) for k, d in
                                       zip(('mean', 'std', 'is_scale', 'to_rgb'), defaults))
        return {'type': 'NormalizeImage', 'mean': [float(v) for v in mean], 'std': [float(v) for v in std],
                'is_scale': bool(is_scale), 'to_rgb': bool(to_rgb)}
    if name == 'Permute':
        return {'type': 'Permute'}
    if name == 'PadBatch':
        return {'type': 'PadStride', 'stride': int(kwargs.get('pad_to_stride', 0)),
                'fill_value': float(kwargs.get('fill_value', 0.0))}
    raise ConfigError('{}: pre-processing step {!r} has no standalone equivalent in deploy/python/infer.py '
                      '(known: Normalize, Permute, PadBatch)'.format(path, name))


def preprocess_config(cfg, protocol, reader='EvalReader'):
    """The ``Preprocess`` list of ``infer_cfg.yml``: the protocol's resize,
    then the reader's sample and batch steps after it."""
    steps = [_protocol_resize(create('TestProtocol', cfg), protocol)]
    for item in preprocess_steps(cfg, reader):
        steps.append(_standalone_step(item, '{}.sample_transforms'.format(reader)))
    for item in batch_steps(cfg, reader):
        steps.append(_standalone_step(item, '{}.batch_transforms'.format(reader)))
    if not any(step['type'] == 'Permute' for step in steps):
        raise ConfigError('{}: {}.sample_transforms has no Permute; the exported model takes CHW '
                          'images'.format(cfg.get('__source__', '<config>'), reader))
    return steps


def infer_config(cfg, protocol, reader='EvalReader'):
    post_process = create('HAMBoxPostProcess', cfg)
    return {
        'mode': 'paddle',
        'arch': cfg.get('architecture'),
        'model_files': list(MODEL_FILES),
        'protocol': protocol,
        'draw_threshold': float(cfg.get('draw_threshold', 0.5)),
        'label_list': list(LABEL_LIST),
        'inputs': ['image', 'im_shape', 'scale_factor'],
        'outputs': ['bbox [N, 6]: class, score, x1, y1, x2, y2 (original pixels)', 'bbox_num [B]'],
        'Preprocess': preprocess_config(cfg, protocol, reader),
        'NMS': {'score_threshold': post_process.score_threshold,
                'pre_nms_top_k': post_process.pre_nms_top_k,
                'nms_threshold': post_process.nms_threshold,
                'keep_top_k': post_process.keep_top_k},
    }


def export_model(model, cfg, output_dir, protocol=None, onnx=False, reader='EvalReader'):
    """Trace ``model`` (a built architecture with ``inference_model()``) and
    write the files listed in the module docstring; returns their paths."""
    protocol = protocol or cfg.get('eval_protocol') or DEFAULT_PROTOCOL
    if protocol not in SINGLE_SCALE_PROTOCOLS:
        logger.warning('the %s protocol is several passes; the export uses %s pre-processing',
                       protocol, DEFAULT_PROTOCOL)
        protocol = DEFAULT_PROTOCOL
    info = infer_config(cfg, protocol, reader)
    names = {'model': MODEL_FILES[0], 'params': MODEL_FILES[1], 'infer_cfg': INFER_CFG}
    with staged_folder(output_dir, '--output_dir') as stage:
        was_training = model.training
        model.eval()
        try:
            layer = model.inference_model()
            static = paddle.jit.to_static(layer, input_spec=layer.input_spec(), full_graph=True)
            paddle.jit.save(static, os.path.join(stage, MODEL_PREFIX))
        finally:
            if was_training:
                model.train()
        write_yaml(os.path.join(stage, INFER_CFG), info, guard=False)  # staged_folder guards the export
        for name in names.values():
            if not os.path.isfile(os.path.join(stage, name)):
                raise RuntimeError('export did not write {}'.format(name))
        if onnx:
            export_onnx(stage)
            names['onnx'] = ONNX_FILE
    paths = {key: os.path.join(output_dir, name) for key, name in names.items()}
    logger.info('exported %s (%s protocol) to %s', cfg.get('architecture'), protocol, output_dir)
    return paths


def export_onnx(model_dir, opset_version=ONNX_OPSET, save_file=None):
    """Convert ``model_dir/model.json`` to ONNX with paddle2onnx (the ``onnx``
    extra); returns the ``.onnx`` path. Inputs and outputs keep their names
    and order (``image``, ``im_shape``, ``scale_factor`` -> ``bbox``,
    ``bbox_num``); image height and width stay dynamic.

    What paddle2onnx 2.1 does with ``multiclass_nms3`` (its NMS mapper):
    ONNX ``NonMaxSuppression`` with the score and IoU thresholds, then a
    ``TopK`` for ``keep_top_k``; so decoding and NMS stay in the graph. It
    does not support:
    - a batch of more than one image: the scores are flattened as if the
      batch were 1 (the converter warns; onnxruntime fails on a batch of 2);
    - ``pre_nms_top_k`` as Paddle means it (the best boxes kept *before*
      NMS): it becomes ONNX ``max_output_boxes_per_class``, a cap on boxes
      kept *after* NMS, so results differ when more than ``pre_nms_top_k``
      boxes pass ``score_threshold``;
    - ``nms_eta`` < 1 (adaptive NMS), which it ignores (HAMBox uses 1.0).

    No post-conversion optimisation is run: the converter's default
    (Polygraphy constant folding) installs packages with pip at run time,
    and its onnxoptimizer pass list fails in 2.1.0 (``eliminate_nop_cast ``).
    """
    try:
        import paddle2onnx
    except ImportError:
        raise UserError('--onnx needs paddle2onnx>=2.1: pip install "ppdet-hambox[onnx]"') from None
    save_file = save_file or os.path.join(model_dir, ONNX_FILE)
    with atomic_file(save_file) as tmp:
        paddle2onnx.export(os.path.join(model_dir, MODEL_FILES[0]), os.path.join(model_dir, MODEL_FILES[1]),
                           tmp, opset_version=opset_version, enable_onnx_checker=True, optimize_tool=None)
        if not os.path.getsize(tmp):
            raise RuntimeError('paddle2onnx did not write {} (see its log above)'.format(save_file))
    return save_file
