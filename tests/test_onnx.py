"""ONNX export through paddle2onnx, run by onnxruntime, against the Paddle predictor."""
import os

import cv2
import numpy as np
import pytest

from hambox_eval_helpers import demo_cfg, exported_model_dir, tiny_model, val_images
from ppdet_hambox.export.exporter import export_onnx
from ppdet_hambox.evaluation.predictor import Predictor
from test_export import load_deploy, run_exported
from test_precision import no_detection_export

ort = pytest.importorskip('onnxruntime', reason='the onnx extra (paddle2onnx, onnxruntime) is not installed')
pytest.importorskip('paddle2onnx', reason='the onnx extra (paddle2onnx, onnxruntime) is not installed')


def proper(bbox):
    """Rows with a positive area, in a fixed order (ties in score are
    ordered differently by the two top-k kernels)."""
    bbox = bbox[(bbox[:, 4] > bbox[:, 2]) & (bbox[:, 5] > bbox[:, 3])]
    return bbox[np.lexsort(np.round(bbox[:, ::-1], 2).T)]


def test_onnx_matches_paddle_predictor(tmp_path, monkeypatch):
    monkeypatch.delenv('POLYGRAPHY_AUTOINSTALL_DEPS', raising=False)
    path = export_onnx(str(exported_model_dir()), save_file=str(tmp_path / 'model.onnx'))
    assert os.environ.get('POLYGRAPHY_AUTOINSTALL_DEPS') != '1', 'the converter must not pip-install at run time'
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    inputs = [i.name for i in session.get_inputs()]
    assert sorted(inputs) == ['im_shape', 'image', 'scale_factor']
    detector = load_deploy().Detector(str(exported_model_dir()))
    predictor = Predictor(tiny_model(), demo_cfg(), 'vga')
    counts = []
    for path_, scale in ((val_images()[0], 1.0), (val_images()[1], 0.8), (val_images()[2], 1.0)):
        batch = predictor.prepare(cv2.imread(str(path_)), scale)
        expected, count = run_exported(detector, batch)
        feeds = {k: batch[k].numpy() for k in inputs}
        bbox, bbox_num = session.run(None, feeds)[:2]
        assert int(bbox_num[0]) == len(bbox) and count == len(expected)
        # Boxes clipped to zero area at the image border are junk that the
        # two NMS kernels treat differently (Paddle's IoU of two of them is
        # 0/0 and suppresses, ONNX Runtime's never suppresses); the
        # predictors drop them. Everything else must agree.
        bbox, expected = proper(bbox), proper(expected)
        assert len(bbox) == len(expected)
        np.testing.assert_allclose(bbox, expected, atol=1e-3)
        counts.append(len(expected))
    assert counts[0] > 0, 'an image with detections'


def test_onnx_without_detections(tmp_path):
    """Nothing survives NMS (an export cutting scores at 1): ONNX Runtime
    returns no box, as the Paddle predictor does."""
    path = export_onnx(str(no_detection_export()), save_file=str(tmp_path / 'model.onnx'))
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    batch = Predictor(tiny_model(), demo_cfg(), 'vga').prepare(cv2.imread(str(val_images()[0])), 1.0)
    bbox, bbox_num = session.run(None, {i.name: batch[i.name].numpy() for i in session.get_inputs()})[:2]
    assert int(bbox_num[0]) == 0 and len(proper(np.asarray(bbox).reshape(-1, 6))) == 0
