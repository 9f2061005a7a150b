"""The PyramidBox-style LFPN (bilinear deconvolution, no smoothing conv, L2
norm with learnable scales) exports, and the Paddle Inference predictor gives
what dygraph gives, at two input sizes."""
import cv2
import numpy as np
import paddle

from hambox_eval_helpers import (DEPLOY_INFER, SEED, calibration_batch, demo_cfg, set_for_detections,
                                 val_images, workdir)
from ppdet_hambox.core.workspace import create
from ppdet_hambox.export.exporter import export_model
from ppdet_hambox.evaluation.predictor import Predictor
from test_export import load_deploy, run_exported

PYRAMIDBOX_LFPN = {'upsample': 'bilinear', 'smooth': False, 'l2_norm_scales': [10.0, 8.0, 5.0]}


def test_pyramidbox_lfpn_exports_and_agrees_with_dygraph():
    assert DEPLOY_INFER.is_file()
    cfg = demo_cfg(LFPN=PYRAMIDBOX_LFPN)
    paddle.seed(SEED)
    model = create(cfg['architecture'], cfg)
    assert model.neck.norms is not None and model.neck.smooth is None
    model = set_for_detections(model, calibration_batch(model, cfg))
    out_dir = workdir() / 'export_pyramidbox_lfpn'
    export_model(model, cfg, str(out_dir), protocol='vga')
    detector = load_deploy().Detector(str(out_dir))
    predictor = Predictor(model, cfg, 'vga')
    for path, scale in ((val_images()[0], 1.0), (val_images()[1], 0.7)):
        batch = predictor.prepare(cv2.imread(str(path)), scale)
        with paddle.no_grad():
            out = model(batch)
        expected = out['bbox'].numpy()
        got, count = run_exported(detector, batch)
        assert count == len(expected) > 0
        np.testing.assert_allclose(got[:, 1:], expected[:, 1:], atol=1e-3)
