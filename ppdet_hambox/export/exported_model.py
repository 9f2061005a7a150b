"""Evaluate what you deploy: an exported model (``tools/export.py``) run by
Paddle Inference behind the dygraph ``Predictor``'s interface, so the
evaluator and every test protocol use it unchanged.

``ExportedPredictor(model_dir, cfg, protocol, precision=...)`` takes the
config's pre-processing and protocol passes (as dygraph evaluation does) and
replaces the network + post-process by the exported graph. The graph's NMS
score cut is baked in at export (``infer_cfg.yml`` ``NMS.score_threshold``):
a pass asking for a higher cut is cut again here; a pass asking for a lower
one (multiscale's ``ms_score_threshold``) cannot get the boxes in between,
which is logged once with the export option that avoids it. The same holds
for the NMS settings of a pass (``pyramidbox``: IoU 0.3, keep-top 750): a
smaller keep-top is applied here, another NMS threshold is not recoverable
and is logged once.
"""
import json
import logging
import os

import numpy as np
import yaml

from ppdet_hambox.core.errors import UserError
from ppdet_hambox.export.exporter import INFER_CFG, MODEL_FILES
from ppdet_hambox.evaluation.predictor import Predictor
from ppdet_hambox.utils.logger import paddle_log_wanted

__all__ = ['ExportedPredictor', 'inference_config', 'available_cpus', 'check_export_folder', 'PRECISIONS',
           'MKLDNN_CACHE_CAPACITY']

logger = logging.getLogger(__name__)

PRECISIONS = ('fp32', 'bf16', 'fp16')
MKLDNN_CACHE_CAPACITY = 10


def available_cpus():
    """Cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, 'sched_getaffinity'):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _device():
    import paddle
    return 'gpu' if paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0 else 'cpu'


def inference_config(model_dir, precision='fp32', device=None, cpu_threads=None, enable_mkldnn=True,
                     mkldnn_cache_capacity=MKLDNN_CACHE_CAPACITY):
    """A ``paddle.inference.Config`` for ``model_dir`` with the settings of
    ``deploy/python/infer.py``'s Detector: oneDNN and all available cores on
    CPU, ``bf16`` through oneDNN where the CPU has it, ``fp16`` on GPU."""
    import paddle.inference as paddle_infer
    from paddle.base import core
    device = device or _device()
    if precision not in PRECISIONS:
        raise UserError('--precision must be one of {}, got {!r}'.format(', '.join(PRECISIONS), precision))
    for name in MODEL_FILES:
        if not os.path.isfile(os.path.join(model_dir, name)):
            raise UserError('--model_dir {}: no {} (export the model with tools/export.py)'.format(model_dir, name))
    if device == 'cpu' and precision == 'fp16':
        raise UserError('--precision fp16 runs on a GPU; on CPU use fp32 or bf16')
    if device == 'cpu' and precision == 'bf16' and not core.supports_bfloat16():
        raise UserError('--precision bf16: this CPU has no native bfloat16 support (needs AVX512-BF16 or AMX); '
                        'use --precision fp32')
    if device == 'gpu' and precision == 'bf16':
        raise UserError('--precision bf16 is the CPU (oneDNN) low precision; on a GPU use fp16')
    config = paddle_infer.Config(*(os.path.join(model_dir, name) for name in MODEL_FILES))
    if device == 'gpu':
        half = paddle_infer.PrecisionType.Half if precision == 'fp16' else paddle_infer.PrecisionType.Float32
        config.enable_use_gpu(200, 0, half)
    else:
        config.disable_gpu()
        config.set_cpu_math_library_num_threads(int(cpu_threads or available_cpus()))
        if enable_mkldnn or precision == 'bf16':
            config.enable_mkldnn()
            config.set_mkldnn_cache_capacity(int(mkldnn_cache_capacity))
            if precision == 'bf16':
                config.enable_mkldnn_bfloat16()
        else:
            config.disable_mkldnn()
    config.switch_ir_optim(True)
    if not paddle_log_wanted():
        config.disable_glog_info()  # the PIR pass banners and glog lines of predictor creation
    return config


def check_export_folder(model_dir, flag='--model_dir'):
    """Check an export folder before loading it (one ``UserError`` naming the
    file otherwise): ``model.json`` (JSON), ``model.pdiparams`` (not empty)
    and ``infer_cfg.yml`` (a mapping with a numeric ``NMS.score_threshold``
    in [0, 1]). Returns the parsed ``infer_cfg.yml``."""
    hint = 're-export with tools/export.py'
    if not os.path.isdir(model_dir):
        raise UserError('{} {}: no such folder (export a model with tools/export.py)'.format(flag, model_dir))
    for name in MODEL_FILES + (INFER_CFG,):
        path = os.path.join(model_dir, name)
        if not os.path.isfile(path):
            raise UserError('{} {}: no {} (export the model with tools/export.py)'.format(flag, model_dir, name))
        if os.path.getsize(path) == 0:
            raise UserError('{}: empty file (an interrupted export? {})'.format(path, hint))
    path = os.path.join(model_dir, MODEL_FILES[0])
    try:
        with open(path, 'rb') as f:
            json.load(f)
    except ValueError as err:
        raise UserError('{}: not a readable model graph ({}; {})'.format(path, err, hint)) from None
    path = os.path.join(model_dir, INFER_CFG)
    try:
        with open(path, encoding='utf-8') as f:
            info = yaml.safe_load(f)
    except (ValueError, yaml.YAMLError) as err:
        raise UserError('{}: not readable YAML ({})'.format(path, ' '.join(str(err).split()))) from None
    try:
        threshold = float(info['NMS']['score_threshold'])
    except (KeyError, TypeError, ValueError):
        raise UserError('{}: missing NMS.score_threshold ({})'.format(path, hint)) from None
    if not 0.0 <= threshold <= 1.0:
        raise UserError('{}: NMS.score_threshold must be in [0, 1], got {}'.format(path, threshold))
    return info


def _baked_nms(model_dir):
    """``infer_cfg.yml``'s ``NMS`` section of a checked export; its ``score_threshold`` as a float."""
    nms = check_export_folder(model_dir)['NMS']
    return dict(nms, score_threshold=float(nms['score_threshold']))


class ExportedPredictor(Predictor):
    """``detect(image)`` -> ``[N, 5]`` (x1 y1 x2 y2 score, original pixels)
    from the exported model in ``model_dir``; ``protocol`` and the
    pre-processing come from ``cfg`` as for ``Predictor``."""

    def __init__(self, model_dir, cfg, protocol=None, precision='fp32', device=None, cpu_threads=None,
                 enable_mkldnn=True, reader='EvalReader', onnx_file=None):
        super().__init__(None, cfg, protocol, reader)
        self.model_dir, self.precision = model_dir, precision
        self.nms = _baked_nms(model_dir)
        self.score_threshold = self.nms['score_threshold']
        self.session = self.predictor = None
        if onnx_file:
            # An ONNX export (e.g. tools/quantize.py's int8 model) run by ONNX Runtime on CPU.
            import onnxruntime as ort
            options = ort.SessionOptions()
            options.intra_op_num_threads = int(cpu_threads or available_cpus())
            self.session = ort.InferenceSession(onnx_file, options, providers=['CPUExecutionProvider'])
            self.input_names = [i.name for i in self.session.get_inputs()]
        else:
            import paddle.inference as paddle_infer
            config = inference_config(model_dir, precision, device, cpu_threads, enable_mkldnn)
            try:
                self.predictor = paddle_infer.create_predictor(config)
            except (RuntimeError, OSError, ValueError) as err:  # Paddle's C++ errors for a damaged file
                reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
                raise UserError('--model_dir {}: cannot load {} (damaged? re-export with tools/export.py): '
                                '{}'.format(model_dir, ' + '.join(MODEL_FILES), reason)) from None
            self.input_names = self.predictor.get_input_names()
        self._warned = set()

    def run_network(self, batch):
        """``bbox [N, 6]`` of the exported graph for a prepared batch of one."""
        if self.session is not None:
            bbox, bbox_num = self.session.run(None, {n: batch[n].numpy() for n in self.input_names})[:2]
            return np.asarray(bbox, np.float32).reshape(-1, 6)[:int(np.asarray(bbox_num).reshape(-1)[0])]
        for name in self.input_names:
            self.predictor.get_input_handle(name).copy_from_cpu(np.ascontiguousarray(batch[name].numpy()))
        self.predictor.run()
        names = self.predictor.get_output_names()
        bbox = self.predictor.get_output_handle(names[0]).copy_to_cpu()
        count = int(np.asarray(self.predictor.get_output_handle(names[1]).copy_to_cpu()).reshape(-1)[0])
        return np.asarray(bbox, np.float32).reshape(-1, 6)[:count]

    def _warn_baked(self, key, wanted, consequence):
        """Warn once per setting the exported graph cannot give a pass."""
        if key in self._warned:
            return
        self._warned.add(key)
        logger.warning('%s runs its NMS with %s %g (%s); the %s protocol asks for %g, so %s. Export with '
                       '-o HAMBoxPostProcess.%s=%g to evaluate it as dygraph does.', self.model_dir, key,
                       self.nms[key], INFER_CFG, self.protocol, wanted, consequence, key, wanted)

    def pass_boxes(self, source, scale_pass):
        """The graph's boxes, then the pass's own score cut and keep-top where
        they are stricter than the baked ones (a looser one or another NMS
        threshold cannot be recovered: warned once)."""
        bbox = self.run_network(self.prepare(source, scale_pass.scale))
        wanted = scale_pass.score_threshold
        if wanted is not None:
            if wanted < self.score_threshold:
                self._warn_baked('score_threshold', wanted, 'boxes scoring in between are missing')
            bbox = bbox[bbox[:, 1] >= wanted]
        nms = scale_pass.nms_threshold
        if nms is not None and self.nms.get('nms_threshold') is not None and nms != self.nms['nms_threshold']:
            self._warn_baked('nms_threshold', nms, 'its boxes differ from the dygraph NMS')
        top_k = scale_pass.keep_top_k
        if top_k is not None:
            if top_k > self.nms.get('keep_top_k', top_k):
                self._warn_baked('keep_top_k', top_k, 'boxes beyond the baked count are missing')
            bbox = bbox[np.argsort(-bbox[:, 1], kind='stable')[:top_k]]
        return bbox

    def detect(self, image, protocol=None):
        """All passes of the protocol on one BGR image, merged."""
        protocol = protocol or self.protocol
        passes = self.settings.passes(protocol, *image.shape[:2])
        return self.settings.merge(protocol, [self.run_pass(image, p) for p in passes])
