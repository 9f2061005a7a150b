"""int8 through the ONNX export: ONNX Runtime static quantization (QDQ),
calibrated on images of the config's train set pre-processed as the export
does (its protocol's resize, normalisation, padding).

This is the experiment behind docs/deployment.md's int8 section: the
quantized model is only worth shipping if it keeps the AP within 0.01 and
runs faster than the alternatives; the docs record what it measured.
"""
import logging
import os

import numpy as np

from ppdet_hambox.core.errors import UserError
from ppdet_hambox.core.workspace import build_component
from ppdet_hambox.data import read_image
from ppdet_hambox.export.exported_model import check_export_folder
from ppdet_hambox.export.exporter import ONNX_FILE
from ppdet_hambox.evaluation.predictor import Predictor
from ppdet_hambox.utils.safe_write import atomic_file, claim, record

__all__ = ['calibration_feeds', 'quantize_onnx']

logger = logging.getLogger(__name__)


def calibration_feeds(cfg, protocol, num_images, seed=0):
    """``num_images`` feeds ``{image, im_shape, scale_factor}`` (numpy) from
    ``cfg.TrainDataset``, drawn evenly across it, pre-processed as the
    ``protocol`` pass of the exported model."""
    dataset = build_component(cfg['TrainDataset'], cfg, 'TrainDataset')
    if len(dataset) == 0:
        raise UserError('TrainDataset of {} holds no image to calibrate on'.format(cfg.get('__source__', 'the config')))
    predictor = Predictor(None, cfg, protocol)
    picks = np.unique(np.linspace(0, len(dataset) - 1, min(num_images, len(dataset))).round().astype(int))
    feeds = []
    for index in picks.tolist():
        image = read_image(dataset[index]['im_file'])
        scale = predictor.settings.passes(protocol, *image.shape[:2])[0].scale
        batch = predictor.prepare(image, scale)
        feeds.append({k: batch[k].numpy() for k in ('image', 'im_shape', 'scale_factor')})
    return feeds


class _Reader:
    """ONNX Runtime's ``CalibrationDataReader`` protocol over a list of feeds."""

    def __init__(self, feeds):
        self.feeds = iter(feeds)

    def get_next(self):
        return next(self.feeds, None)


def quantize_onnx(model_dir, cfg, output=None, num_images=32, op_types=('Conv',), per_channel=True,
                  method='minmax'):
    """Write ``model_dir/model.onnx`` quantized to int8 (QDQ, ``op_types``
    only) to ``output`` (default ``model_dir/model_int8.onnx``); returns its path."""
    try:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        raise UserError('int8 quantization needs onnxruntime: pip install "ppdet-hambox[onnx]"') from None
    source = os.path.join(model_dir, ONNX_FILE)
    if not os.path.isfile(source):
        raise UserError('--model_dir {}: no {} (export with tools/export.py --onnx)'.format(model_dir, ONNX_FILE))
    protocol = check_export_folder(model_dir).get('protocol') or 'vga'
    methods = {'minmax': CalibrationMethod.MinMax, 'entropy': CalibrationMethod.Entropy,
               'percentile': CalibrationMethod.Percentile}
    if method not in methods:
        raise UserError('--method must be one of {}, got {!r}'.format(', '.join(methods), method))
    output = claim(output or os.path.join(model_dir, 'model_int8.onnx'), '--output')
    with atomic_file(output) as tmp:
        prepared = tmp + '.pre.onnx'
        quant_pre_process(source, prepared, skip_symbolic_shape=True)
        try:
            quantize_static(prepared, tmp, _Reader(calibration_feeds(cfg, protocol, num_images)),
                            quant_format=QuantFormat.QDQ, op_types_to_quantize=list(op_types),
                            per_channel=per_channel, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                            calibrate_method=methods[method])
        finally:
            if os.path.isfile(prepared):
                os.remove(prepared)
    record(output)
    logger.info('int8 (QDQ, %s) model written to %s', ', '.join(op_types), output)
    return output
