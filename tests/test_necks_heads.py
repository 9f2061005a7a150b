"""LFPN / FPN wiring and the shared HAMBoxHead."""
import math

import numpy as np
import paddle
import pytest

from ppdet_hambox.modeling.anchors import AnchorGenerator
from ppdet_hambox.modeling.backbones.resnet import ResNet
from ppdet_hambox.modeling.heads.hambox_head import HAMBoxHead
from ppdet_hambox.modeling.heads.ssh import SSHContext
from ppdet_hambox.modeling.necks.common import L2NormScale, TopDownMerge, Upsample2x
from ppdet_hambox.modeling.necks.fpn import FPN
from ppdet_hambox.modeling.necks.lfpn import LFPN
from ppdet_hambox.modeling.shape_spec import ShapeSpec

IN_CHANNELS = [8, 16, 32, 64]
STRIDES = [4, 8, 16, 32, 64, 128]
IN_SHAPE = [ShapeSpec(c, s) for c, s in zip(IN_CHANNELS, STRIDES)]


def levels(channels):
    """The neck's out_shape for ``channels`` channels: what a head is built for."""
    return [ShapeSpec(channels, s) for s in STRIDES]


def backbone_maps(height=67, width=45, seed=0):
    paddle.seed(seed)
    return [paddle.randn([1, c, math.ceil(height / s), math.ceil(width / s)])
            for c, s in zip(IN_CHANNELS, STRIDES[:4])]


@pytest.mark.parametrize('neck', [LFPN(IN_SHAPE, 16), LFPN(IN_SHAPE, 16, fusion='sum'),
                                  LFPN(IN_SHAPE, 16, extra_source='p5'), FPN(IN_SHAPE, 16)])
def test_six_levels_with_ceil_sizes(neck):
    outs = neck(backbone_maps(67, 45))
    assert neck.out_shape == levels(16)
    assert [list(p.shape) for p in outs] == [[1, 16, math.ceil(67 / s), math.ceil(45 / s)] for s in STRIDES]


def _outputs_after_perturbing(neck, param, feats):
    before = [p.numpy() for p in neck(feats)]
    param.set_value(param + 0.5)
    after = [p.numpy() for p in neck(feats)]
    return [not np.allclose(b, a) for b, a in zip(before, after)]


def test_lfpn_top_levels_do_not_reach_small_face_levels():
    neck = LFPN(IN_SHAPE, 16)
    changed = _outputs_after_perturbing(neck, neck.extra.p6.weight, backbone_maps())
    assert changed == [False, False, False, False, True, True]


def test_fpn_top_down_starts_at_the_top():
    neck = FPN(IN_SHAPE, 16)
    changed = _outputs_after_perturbing(neck, neck.extra.p7.weight, backbone_maps())
    assert changed == [True, True, True, True, True, True]


def test_lfpn_top_down_reaches_p2_from_c5_only_downward():
    neck = LFPN(IN_SHAPE, 16)
    feats = backbone_maps()
    base = [p.numpy() for p in neck(feats)]
    changed_c5 = [p.numpy() for p in neck(feats[:3] + [feats[3] + 1.0])]
    changed_c2 = [p.numpy() for p in neck([feats[0] + 1.0] + feats[1:])]
    assert not np.allclose(base[0], changed_c5[0])
    assert [np.allclose(b, c) for b, c in zip(base, changed_c2)] == [False, True, True, True, True, True]


@pytest.mark.parametrize('source,p6_follows_p5', [('c5', False), ('p5', True)])
def test_lfpn_extra_source(source, p6_follows_p5):
    neck = LFPN(IN_SHAPE, 16, extra_source=source)
    changed = _outputs_after_perturbing(neck, neck.smooth[3].bias, backbone_maps())
    assert changed == [False, False, False, True, p6_follows_p5, p6_follows_p5]


@pytest.mark.parametrize('fusion', ['product', 'sum'])
def test_merge_formula_with_odd_sizes(fusion):
    paddle.seed(3)
    merge = TopDownMerge(4, fusion)
    higher, lateral = paddle.randn([1, 4, 3, 4]), paddle.randn([1, 4, 5, 7])
    got = merge(higher, lateral).numpy()
    top = higher.numpy() if fusion == 'sum' else np.maximum(merge.top(higher).numpy(), 0)
    up = top[:, :, np.arange(5) // 2][:, :, :, np.arange(7) // 2]  # nearest: lower cell i takes i // 2
    want = up + lateral.numpy() if fusion == 'sum' else up * lateral.numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_bilinear_upsampling_is_pyramidbox_deconvolution():
    # Interior cells equal bilinear interpolation (half-pixel centres); the border row and column
    # take only the 3/4 tap (PyramidBox's fixed bilinear conv2d_transpose, zero outside).
    paddle.seed(1)
    x = paddle.randn([1, 3, 4, 5])
    up = Upsample2x(3, 'bilinear')
    got = up(x, paddle.zeros([1, 3, 7, 10])).numpy()
    assert got.shape == (1, 3, 7, 10)
    want = paddle.nn.functional.interpolate(x, scale_factor=2, mode='bilinear', align_corners=False).numpy()
    np.testing.assert_allclose(got[:, :, 1:7, 1:9], want[:, :, 1:7, 1:9], rtol=1e-5, atol=1e-6)
    x0 = x.numpy()[0, :, 0, 0]
    np.testing.assert_allclose(got[0, :, 0, 0], 0.75 * 0.75 * x0, rtol=1e-5)
    assert not up.parameters(), 'the bilinear kernel is fixed, not learned'
    with pytest.raises(ValueError, match='upsample'):
        Upsample2x(3, 'cubic')


def test_l2_norm_scale_sets_the_channel_norm():
    norm = L2NormScale(4, 8.0)
    x = paddle.to_tensor(np.random.default_rng(0).normal(0, 1000, (2, 4, 3, 3)).astype('float32'))
    norms = np.linalg.norm(norm(x).numpy(), axis=1)
    np.testing.assert_allclose(norms, 8.0, rtol=1e-5)
    assert [list(p.shape) for p in norm.parameters()] == [[4]]


def test_lfpn_l2_norm_on_the_fused_levels_only():
    # Product fusion compounds magnitudes down the pyramid; with the norm, P2..P4 have channel
    # norm 10, 8, 5 at every location whatever the input scale; P5..P7 are left as they are.
    neck = LFPN(IN_SHAPE, 16, l2_norm_scales=[10.0, 8.0, 5.0])
    plain = LFPN(IN_SHAPE, 16)
    plain.set_state_dict({k: v for k, v in neck.state_dict().items() if 'norms' not in k})
    feats = [f * 30 for f in backbone_maps()]
    outs, ref = neck(feats), plain(feats)
    for level, scale in enumerate([10.0, 8.0, 5.0]):
        norms = np.linalg.norm(outs[level].numpy(), axis=1)
        np.testing.assert_allclose(norms[norms > 1e-3], scale, rtol=1e-4)
    for level in range(3, 6):
        np.testing.assert_allclose(outs[level].numpy(), ref[level].numpy(), rtol=1e-5)
    stds = [float(p.std()) for p in ref]
    assert stds[0] > 10 * stds[3], 'without the norm P2 is far larger than P5 (compounding)'


@pytest.mark.parametrize('extra_source', ['c5', 'p5'])
def test_lfpn_l2_norm_on_chosen_levels(extra_source):
    # Each scale normalises one more level from P2 up; P6/P7 are computed from P5 before its norm.
    scales = [10.0, 8.0, 5.0, 4.0, 3.0]
    neck = LFPN(IN_SHAPE, 16, extra_source=extra_source, l2_norm_scales=scales)
    plain = LFPN(IN_SHAPE, 16, extra_source=extra_source)
    plain.set_state_dict({k: v for k, v in neck.state_dict().items() if 'norms' not in k})
    feats = [f * 30 for f in backbone_maps()]
    outs, ref = neck(feats), plain(feats)
    for level, scale in enumerate(scales):
        norms = np.linalg.norm(outs[level].numpy(), axis=1)
        np.testing.assert_allclose(norms[norms > 1e-3], scale, rtol=1e-4)
    np.testing.assert_allclose(outs[5].numpy(), ref[5].numpy(), rtol=1e-5)
    all_six = LFPN(IN_SHAPE, 16, l2_norm_scales=[2.0] * 6)
    for out in all_six(feats):
        norms = np.linalg.norm(out.numpy(), axis=1)
        np.testing.assert_allclose(norms[norms > 1e-3], 2.0, rtol=1e-4)


def test_lfpn_without_smoothing_and_with_bilinear_merges():
    neck = LFPN(IN_SHAPE, 16, upsample='bilinear', smooth=False)
    assert neck.smooth is None and all(m.up.mode == 'bilinear' for m in neck.merges)
    feats = backbone_maps(67, 45)
    outs = neck(feats)
    assert [list(p.shape) for p in outs] == [[1, 16, math.ceil(67 / s), math.ceil(45 / s)] for s in STRIDES]
    # P5 is the lateral of C5 itself (ReLU'd for product fusion), P4 its fusion with lat(C4)
    np.testing.assert_allclose(outs[3].numpy(), neck.laterals[3](feats[3]).numpy(), rtol=1e-6)
    np.testing.assert_allclose(outs[2].numpy(), neck.merges[2](outs[3], neck.laterals[2](feats[2])).numpy(),
                               rtol=1e-5)
    assert len(neck.parameters()) < len(LFPN(IN_SHAPE, 16).parameters())


def test_bad_neck_arguments():
    with pytest.raises(ValueError, match='fusion'):
        LFPN(IN_SHAPE, fusion='concat')
    with pytest.raises(ValueError, match='LFPN.upsample'):
        LFPN(IN_SHAPE, upsample='area')
    for scales in ([], [1.0] * 7, [10.0, 0.0]):
        with pytest.raises(ValueError, match='l2_norm_scales'):
            LFPN(IN_SHAPE, l2_norm_scales=scales)
    with pytest.raises(ValueError, match='C2..C5'):
        FPN(IN_SHAPE[:3])
    with pytest.raises(ValueError, match='extra_source'):
        LFPN(IN_SHAPE, extra_source='c4')


def test_head_anchor_count_matches_generator_for_odd_inputs():
    paddle.seed(0)
    backbone = ResNet(depth=18, width_mult=0.125)
    neck = LFPN(backbone.out_shape, 16)
    head = HAMBoxHead(neck.out_shape, feat_channels=16)
    height, width = 333, 517
    out = head(neck(backbone(paddle.randn([2, 3, height, width]))))
    num = AnchorGenerator().num_anchors(height, width)
    assert list(out['cls_logits'].shape) == [2, num]
    assert list(out['box_deltas'].shape) == [2, num, 4]


def _pyramid(channels, height=40, width=24, seed=0):
    paddle.seed(seed)
    return [paddle.randn([2, channels, math.ceil(height / s), math.ceil(width / s)]) for s in STRIDES]


def test_head_layout_is_levels_then_rows_then_columns():
    """With identity predictors the logits are the feature maps, flattened in order."""
    head = HAMBoxHead(levels(4), num_convs=0)
    identity = np.zeros([4, 4, 3, 3], 'float32')
    identity[np.arange(4), np.arange(4), 1, 1] = 1.0
    head.box_pred.weight.set_value(identity)
    head.box_pred.bias.set_value(np.zeros(4, 'float32'))
    head.cls_pred.weight.set_value(identity[:1])
    head.cls_pred.bias.set_value(np.zeros(1, 'float32'))
    pyramid = _pyramid(4)
    out = head(pyramid)
    maps = [p.numpy() for p in pyramid]
    want_cls = np.concatenate([m[:, 0].reshape(2, -1) for m in maps], axis=1)
    want_box = np.concatenate([m.transpose(0, 2, 3, 1).reshape(2, -1, 4) for m in maps], axis=1)
    np.testing.assert_allclose(out['cls_logits'].numpy(), want_cls, rtol=1e-6)
    np.testing.assert_allclose(out['box_deltas'].numpy(), want_box, rtol=1e-6)


def test_head_prior_probability_at_init():
    head = HAMBoxHead(levels(16), feat_channels=16, num_convs=4, use_ssh=True)
    probs = paddle.nn.functional.sigmoid(head(_pyramid(16))['cls_logits']).numpy()
    assert abs(probs.mean() - 0.01) < 0.002


def test_deep_head_and_ssh_options():
    plain = HAMBoxHead(levels(16), feat_channels=8)
    deep = HAMBoxHead(levels(16), feat_channels=8, num_convs=4, use_ssh=True)
    conv_count = lambda tower: sum(isinstance(l, paddle.nn.Conv2D) for l in tower.sublayers())
    assert (conv_count(plain.cls_tower), conv_count(deep.cls_tower), conv_count(deep.box_tower)) == (1, 4, 4)
    assert plain.ssh is None
    out = deep(_pyramid(16))
    out['cls_logits'].sum().backward()
    assert all(module.conv7x7_b.weight.grad is not None for module in deep.ssh)
    with pytest.raises(ValueError, match='divisible by 4'):
        HAMBoxHead(levels(18), use_ssh=True)


def _level_changes(head, param, pyramid):
    """Which levels' logits change at all when ``param`` is perturbed (the towers' small
    initial weights shrink the change far below allclose's tolerance)."""
    sizes = [p.shape[2] * p.shape[3] for p in pyramid]
    before = head(pyramid)['cls_logits'].numpy()
    param.set_value(param + 0.5)
    after = head(pyramid)['cls_logits'].numpy()
    bounds = np.cumsum([0] + sizes)
    return [not np.array_equal(before[:, a:b], after[:, a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


@pytest.mark.parametrize('share', [True, False])
def test_ssh_context_per_level_or_shared(share):
    head = HAMBoxHead(levels(16), feat_channels=8, num_convs=1, use_ssh=True, share_context=share)
    head.eval()
    pyramid = _pyramid(16)
    probs = paddle.nn.functional.sigmoid(head(pyramid)['cls_logits']).numpy()
    assert abs(probs.mean() - 0.01) < 0.002
    if share:
        assert isinstance(head.ssh, SSHContext)
        changed = _level_changes(head, head.ssh.conv3x3.weight, pyramid)
        assert changed == [True] * 6
    else:
        assert len(head.ssh) == 6 and all(isinstance(m, SSHContext) for m in head.ssh)
        changed = _level_changes(head, head.ssh[2].conv3x3.weight, pyramid)
        assert changed == [False, False, True, False, False, False]
    # the towers are shared by the levels either way
    assert _level_changes(head, head.cls_tower[0].weight, pyramid) == [True] * 6


def test_head_needs_one_channel_count():
    with pytest.raises(ValueError, match='one channel count'):
        HAMBoxHead([ShapeSpec(16, 4), ShapeSpec(32, 8)])


def test_pyramid_anchor_branches_only_in_training():
    head = HAMBoxHead(levels(8), feat_channels=8, use_pa=True, pa_branches=2)
    pyramid = _pyramid(8)
    num = AnchorGenerator().num_anchors(40, 24)
    head.train()
    aux = head(pyramid)['aux']
    assert list(aux['cls_logits'].shape) == [2, num, 2]
    assert list(aux['box_deltas'].shape) == [2, num, 2, 4]
    head.eval()
    assert set(head(pyramid)) == {'cls_logits', 'box_deltas'}
    assert 'aux' not in HAMBoxHead(levels(8), feat_channels=8)(pyramid)
