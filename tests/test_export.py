"""Export: the Paddle Inference model agrees with dygraph, takes any input
size, carries no training-only branch; infer_cfg.yml holds the config's numbers."""
import importlib.util

import cv2
import numpy as np
import paddle
import pytest
import yaml

from hambox_eval_helpers import DEPLOY_INFER, demo_cfg, exported_model_dir, tiny_model, val_images
from ppdet_hambox.core.errors import ConfigError
from ppdet_hambox.core.workspace import create
from ppdet_hambox.export.exporter import export_model, infer_config
from ppdet_hambox.evaluation.predictor import Predictor


def load_deploy():
    spec = importlib.util.spec_from_file_location('deploy_infer', DEPLOY_INFER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_exported(detector, batch):
    feeds = {k: batch[k].numpy() for k in ('image', 'im_shape', 'scale_factor')}
    bbox, bbox_num = detector.run(feeds)[:2]
    return np.asarray(bbox).reshape(-1, 6), int(np.asarray(bbox_num).reshape(-1)[0])


def test_exported_equals_dygraph_at_two_sizes():
    model, cfg = tiny_model(), demo_cfg()
    detector = load_deploy().Detector(str(exported_model_dir()))
    predictor = Predictor(model, cfg, 'vga')
    shapes = set()
    for path, scale in ((val_images()[0], 1.0), (val_images()[1], 0.8)):
        batch = predictor.prepare(cv2.imread(str(path)), scale)
        shapes.add(tuple(batch['image'].shape))
        with paddle.no_grad():
            out = model(batch)
        expected = out['bbox'].numpy()
        got, count = run_exported(detector, batch)
        assert count == int(out['bbox_num'].numpy()[0]) == len(got) == len(expected)
        assert count > 0
        np.testing.assert_array_equal(got[:, 0], expected[:, 0])
        np.testing.assert_allclose(got[:, 1:], expected[:, 1:], atol=1e-3)
    assert len(shapes) == 2, 'the two images must reach the network at different sizes'


def test_deploy_preprocessing_matches_the_config():
    deploy = load_deploy()
    cfg = demo_cfg()
    predictor = Predictor(tiny_model(), cfg, 'vga')
    predict_cfg = deploy.PredictConfig(str(exported_model_dir()))
    for path in val_images()[:2]:
        image = cv2.imread(str(path))
        scale = create('TestProtocol', cfg).passes('vga', *image.shape[:2])[0].scale
        ours = predictor.prepare(image, scale)
        theirs = predict_cfg.preprocess(image)
        for key in ('image', 'im_shape', 'scale_factor'):
            np.testing.assert_allclose(theirs[key], ours[key].numpy(), atol=1e-5)


def test_infer_cfg_holds_the_config_numbers():
    cfg = demo_cfg(TestProtocol={'vga_size': [320, 240]}, HAMBoxPostProcess={'nms_threshold': 0.35})
    info = yaml.safe_load((exported_model_dir() / 'infer_cfg.yml').read_text())
    assert info['protocol'] == 'vga' and info['label_list'] == ['face']
    assert info['draw_threshold'] == pytest.approx(cfg.get('draw_threshold', 0.5))
    steps = info['Preprocess']
    assert [s['type'] for s in steps][:3] == ['Resize', 'NormalizeImage', 'Permute']
    assert steps[0]['rule'] == 'fit' and steps[0]['target_size'] == [320, 240]
    normalize = next(iter(next(i for i in cfg['EvalReader']['sample_transforms'] if 'Normalize' in i).values()))
    assert steps[1]['mean'] == pytest.approx(list(normalize['mean']))
    assert steps[1]['std'] == pytest.approx(list(normalize['std']))
    pad = [s for s in steps if s['type'] == 'PadStride']
    batch_pads = [i['PadBatch'] for i in cfg['EvalReader'].get('batch_transforms') or [] if 'PadBatch' in i]
    assert [s['stride'] for s in pad] == [p['pad_to_stride'] for p in batch_pads]
    assert info['NMS']['score_threshold'] == pytest.approx(create('HAMBoxPostProcess', cfg).score_threshold)
    # a config value reaches infer_cfg.yml
    fresh = infer_config(cfg, 'original')
    assert fresh['NMS']['nms_threshold'] == pytest.approx(0.35)
    assert fresh['Preprocess'][0] == {'type': 'Resize', 'protocol': 'original', 'rule': 'cap',
                                      'max_side': create('TestProtocol', cfg).original_max_side,
                                      'interp': 'linear'}
    with pytest.raises(ConfigError, match='cannot be exported'):
        infer_config(cfg, 'multiscale')


def test_pyramid_anchor_branches_absent(tmp_path):
    cfg = demo_cfg(HAMBoxHead={'use_pa': True}, HAMBox={'pa_loss': 'PyramidAnchorLoss'})
    paddle.seed(0)
    model = create(cfg['architecture'], cfg)
    pa_params = [p.name for n, p in model.named_parameters() if '.pa_' in n]
    assert pa_params, 'the PA config must build pyramid-anchor branches'
    export_model(model, cfg, str(tmp_path))
    graph = (tmp_path / 'model.json').read_text()
    assert model.head.cls_pred.weight.name in graph
    assert not [name for name in pa_params if '"{}"'.format(name) in graph]
