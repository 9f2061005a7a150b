"""The HAMBox architecture: training step, eval output, analysis output, export."""
import numpy as np
import paddle
import pytest

from ppdet_hambox.core.errors import ConfigError
from ppdet_hambox.core.workspace import AttrDict, create
from ppdet_hambox.modeling.architectures.hambox import HAMBoxInference
from ppdet_hambox.modeling.shape_spec import ShapeSpec

SIZE = 64


def tiny_cfg(use_pa=False, **sections):
    cfg = {
        'HAMBox': {'backbone': 'ResNet', 'neck': 'LFPN', 'head': 'HAMBoxHead',
                   'anchor_generator': 'AnchorGenerator', 'box_coder': 'BoxCoder',
                   'assigner': 'HAMBoxAssigner', 'loss': 'HAMBoxLoss',
                   'post_process': 'HAMBoxPostProcess',
                   'pa_loss': 'PyramidAnchorLoss' if use_pa else None},
        'ResNet': {'depth': 18, 'width_mult': 0.125},
        'LFPN': {'out_channels': 16},
        'HAMBoxHead': {'feat_channels': 16, 'use_pa': use_pa},
        'PyramidAnchorLoss': {'assigner': 'SMSAssigner'},
    }
    for name, section in sections.items():
        cfg[name] = dict(cfg.get(name, {}), **section)
    return AttrDict(cfg)


def make_batch(batch=2, size=SIZE, seed=0):
    paddle.seed(seed)
    gt = np.zeros([batch, 2, 4], 'float32')
    mask = np.zeros([batch, 2], 'float32')
    gt[0] = [[8, 8, 28, 30], [36, 30, 56, 54]]
    mask[0] = 1
    if batch > 1:
        gt[1, 0] = [20, 16, 44, 44]
        mask[1, 0] = 1
    return {'image': paddle.randn([batch, 3, size, size]), 'gt_bbox': paddle.to_tensor(gt),
            'gt_mask': paddle.to_tensor(mask),
            'im_shape': paddle.full([batch, 2], float(size)), 'scale_factor': paddle.ones([batch, 2])}


@pytest.mark.parametrize('use_pa', [False, True])
def test_training_step_returns_losses_and_gradients(use_pa):
    model = create('HAMBox', tiny_cfg(use_pa=use_pa))
    model.train()
    out, stats = model(make_batch())
    assert set(out) == {'loss', 'loss_cls', 'loss_box'} | ({'loss_pa'} if use_pa else set())
    assert set(stats) == {'num_pos', 'num_compensated', 'compensated_iou', 'num_ignored'}
    assert np.isfinite(out['loss'].item()) and stats['num_pos'][0].item() > 0
    assert stats['num_pos'][1].item() == 2  # per image: the count is the batch
    terms = out['loss_cls'] + out['loss_box'] + (out['loss_pa'] if use_pa else 0.0)
    np.testing.assert_allclose(out['loss'].item(), terms.item(), rtol=1e-5)
    out['loss'].backward()
    assert model.backbone.layer4[1].conv2.weight.grad is not None
    assert model.neck.laterals[0].conv.weight.grad is not None
    assert model.head.box_pred.weight.grad is not None
    if use_pa:
        assert model.head.pa_cls_pred.weight.grad is not None
        assert model.head.pa_box_pred.weight.grad is not None


@pytest.mark.parametrize('sections', [
    {'HAMBoxHead': {'use_ssh': True, 'share_context': True}},
    {'HAMBoxHead': {'use_ssh': True, 'share_context': False}},
    {'LFPN': {'l2_norm_scales': [10.0, 8.0, 5.0]}},
    {'LFPN': {'l2_norm_scales': [10.0, 8.0, 5.0, 5.0, 5.0, 5.0]}},
    {'ResNet': {'freeze_at': 0}},
    {'ResNet': {'freeze_at': 1}},
], ids=['ssh_shared', 'ssh_per_level', 'norm_p2_p4', 'norm_p2_p7', 'freeze_stem', 'freeze_stem_res2'])
def test_convention_options_build_and_train(sections):
    """Each choice docs/detector.md weighs builds and takes a training step."""
    model = create('HAMBox', tiny_cfg(use_pa=True, **sections))
    model.train()
    out, _ = model(make_batch(batch=1))
    assert np.isfinite(out['loss'].item())
    out['loss'].backward()
    assert model.head.cls_pred.weight.grad is not None
    frozen = model.backbone.layer1[0].conv1.weight.grad is None
    assert frozen is (sections.get('ResNet', {}).get('freeze_at', -1) >= 1)


class RecordingAssigner:
    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def __call__(self, anchors, pred_boxes, gt_bbox, gt_mask):
        self.calls.append((anchors, pred_boxes))
        return self.inner(anchors, pred_boxes, gt_bbox, gt_mask)


def test_assigner_sees_detached_decoded_boxes():
    model = create('HAMBox', tiny_cfg())
    model.assigner = RecordingAssigner(model.assigner)
    model.train()
    batch = make_batch()
    model(batch)
    anchors, pred_boxes = model.assigner.calls[0]
    assert pred_boxes.stop_gradient
    out, _ = model.run_head(batch['image'])
    assert list(anchors.shape) == [model.anchor_generator.num_anchors(SIZE, SIZE), 4]
    want = model.box_coder.decode(anchors, out['box_deltas'])
    np.testing.assert_allclose(pred_boxes.numpy(), want.numpy(), rtol=1e-4, atol=1e-3)


class RecordingCoder:
    """The model's coder, noting which of its methods were called."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def encode(self, anchors, boxes):
        self.calls.append('encode')
        return self.inner.encode(anchors, boxes)

    def decode(self, anchors, deltas):
        self.calls.append('decode')
        return self.inner.decode(anchors, deltas)


@pytest.mark.parametrize('use_pa', [False, True])
def test_one_box_coder_decodes_and_encodes_every_target(use_pa):
    """The architecture's coder is the only one: the losses encode their
    targets with it, so weights set on HAMBox.box_coder reach the loss."""
    cfg = tiny_cfg(use_pa=use_pa, HAMBox={'box_coder': {'name': 'BoxCoder', 'weights': [1., 1., 1., 1.]}})
    paddle.seed(0)
    model = create('HAMBox', cfg)
    assert model.box_coder.weights == [1., 1., 1., 1.]
    assert not hasattr(model.loss, 'coder') and not hasattr(model.pa_loss or model.loss, 'coder')
    model.box_coder = RecordingCoder(model.box_coder)
    model.train()
    batch = make_batch()
    losses, _ = model(batch)
    # decode for mining, encode for the main loss (and once per PA branch)
    assert model.box_coder.calls == ['decode', 'encode'] + ['encode'] * (2 if use_pa else 0)
    # the same head with the default weights [10, 10, 5, 5] gives another box loss
    model.box_coder = create('BoxCoder', {})
    default, _ = model(batch)
    assert abs(default['loss_box'].item() - losses['loss_box'].item()) > 1e-3


def test_no_faces_in_batch_gives_finite_loss():
    model = create('HAMBox', tiny_cfg(use_pa=True))
    model.train()
    batch = make_batch()
    batch['gt_mask'] = paddle.zeros_like(batch['gt_mask'])
    out, stats = model(batch)
    assert np.isfinite(out['loss'].item()) and stats['num_pos'][0].item() == 0


def _eval_model(seed=0, **head):
    paddle.seed(seed)
    model = create('HAMBox', tiny_cfg(use_pa=True, HAMBoxHead=head,
                                      HAMBoxPostProcess={'score_threshold': 0.4}))
    # BN statistics of real activations (the initial ones saturate the scores in
    # eval mode), and a spread of scores, so that a few dozen detections pass
    model.train()
    with paddle.no_grad():
        for _ in range(20):
            model.neck(model.backbone(make_batch(size=96)['image']))
    model.head.cls_pred.weight.set_value(paddle.randn(model.head.cls_pred.weight.shape) * 0.05)
    model.head.cls_pred.bias.set_value(paddle.to_tensor([-1.0]))
    model.eval()
    return model


def test_eval_output_in_original_image_coordinates():
    model = _eval_model()
    batch = make_batch()
    out = model(batch)
    assert set(out) == {'bbox', 'bbox_num'}
    assert out['bbox_num'].dtype == paddle.int32 and list(out['bbox_num'].shape) == [2]
    assert out['bbox'].shape[1] == 6 and out['bbox'].shape[0] == int(out['bbox_num'].sum())
    assert out['bbox'].shape[0] > 0
    batch['scale_factor'] = paddle.to_tensor([[2.0, 4.0], [0.5, 0.5]])
    scaled = model(batch)['bbox'].numpy()
    first = int(out['bbox_num'][0])
    base = out['bbox'].numpy()
    np.testing.assert_allclose(scaled[:first, 2:], base[:first, 2:] / [4.0, 2.0, 4.0, 2.0], rtol=1e-5)
    np.testing.assert_allclose(scaled[first:, 2:], base[first:, 2:] / 0.5, rtol=1e-5)


def test_head_outputs_for_analysis():
    model = _eval_model()
    batch = make_batch()
    out = model.head_outputs(batch)
    num = model.anchor_generator.num_anchors(SIZE, SIZE)
    assert list(out['scores'].shape) == [2, num] and list(out['boxes'].shape) == [2, num, 4]
    scores = out['scores'].numpy()
    assert ((scores > 0) & (scores < 1)).all()
    # the best detection of image 0 is the best-scoring anchor's box, clipped
    det = model(batch)['bbox'].numpy()[0]
    best = scores[0].argmax()
    assert det[1] == pytest.approx(scores[0, best], rel=1e-5)
    np.testing.assert_allclose(det[2:], np.clip(out['boxes'].numpy()[0, best], 0, SIZE), rtol=1e-4, atol=1e-3)


def test_export_runs_in_the_predictor_without_pa_branches(tmp_path):
    model = _eval_model(use_ssh=True)
    static = paddle.jit.to_static(model.inference_model(), input_spec=HAMBoxInference.input_spec(),
                                  full_graph=True)
    paddle.jit.save(static, str(tmp_path / 'model'))
    batch = make_batch(size=96)
    batch['im_shape'] = paddle.to_tensor([[96.0, 90.0], [80.0, 96.0]])
    batch['scale_factor'] = paddle.to_tensor([[1.5, 1.5], [0.5, 0.25]])
    want = model(batch)

    config = paddle.inference.Config(str(tmp_path / 'model.json'), str(tmp_path / 'model.pdiparams'))
    config.disable_gpu()
    config.set_cpu_math_library_num_threads(2)
    predictor = paddle.inference.create_predictor(config)
    assert predictor.get_input_names() == ['image', 'im_shape', 'scale_factor']
    for name in predictor.get_input_names():
        predictor.get_input_handle(name).copy_from_cpu(batch[name].numpy())
    predictor.run()
    bbox, bbox_num = [predictor.get_output_handle(n).copy_to_cpu() for n in predictor.get_output_names()]
    assert bbox_num.tolist() == want['bbox_num'].numpy().tolist()
    assert bbox.shape[0] > 0
    np.testing.assert_allclose(bbox, want['bbox'].numpy(), rtol=1e-4, atol=1e-3)

    # every parameter but the pyramid-anchor predictors' is in the exported graph
    loaded = paddle.jit.load(str(tmp_path / 'model'))
    numel = lambda params: sum(int(np.prod(p.shape)) for p in params)
    pa_params = model.head.pa_cls_pred.parameters() + model.head.pa_box_pred.parameters()
    assert numel(loaded.parameters()) == numel(model.parameters()) - numel(pa_params)


def test_neck_and_head_are_built_for_the_shapes_before_them():
    model = create('HAMBox', tiny_cfg(ResNet={'width_mult': 0.25}, LFPN={'out_channels': 24}))
    assert model.backbone.out_shape == [ShapeSpec(16 * 2 ** i, 4 * 2 ** i) for i in range(4)]
    assert model.neck.laterals[0].conv.weight.shape[1] == 16
    assert model.neck.out_shape == [ShapeSpec(24, 4 * 2 ** i) for i in range(6)]
    assert model.head.cls_tower[0].weight.shape[1] == 24
    # on its own a neck needs the shapes from its caller
    alone = create('LFPN', tiny_cfg(), in_shape=model.backbone.out_shape)
    assert alone.out_shape == [ShapeSpec(16, 4 * 2 ** i) for i in range(6)]
    with pytest.raises(ConfigError, match='LFPN is built for the output shapes'):
        create('LFPN', tiny_cfg())


def test_wiring_errors_name_the_key():
    with pytest.raises(ConfigError, match='unknown key LFPN.in_channels'):
        create('HAMBox', tiny_cfg(LFPN={'in_channels': [8, 16, 32, 64]}))
    with pytest.raises(ConfigError, match='unknown key HAMBoxHead.in_channels'):
        create('HAMBox', tiny_cfg(HAMBoxHead={'in_channels': 16}))
    with pytest.raises(ConfigError, match='HAMBoxHead.in_shape is not a config key'):
        create('HAMBox', tiny_cfg(HAMBoxHead={'in_shape': [16] * 6}))
    with pytest.raises(ConfigError, match=r'strides \[4, 8, 16, 32, 64, 128\] but AnchorGenerator'):
        create('HAMBox', tiny_cfg(AnchorGenerator={'strides': [8, 16, 32, 64, 128, 256]}))
    with pytest.raises(ConfigError, match='pa_loss is not set'):
        create('HAMBox', tiny_cfg(HAMBoxHead={'use_pa': True}))
    cfg = tiny_cfg(use_pa=True, HAMBoxHead={'use_pa': False})
    with pytest.raises(ConfigError, match='use_pa is false'):
        create('HAMBox', cfg)
    with pytest.raises(ConfigError, match='pa_branches'):
        create('HAMBox', tiny_cfg(use_pa=True, PyramidAnchorLoss={'scales': [2.0]}))
