"""Focal, smooth L1 and the HAMBox (RAL) loss against hand computations.

Hand values used below (sigma = logistic, alpha 0.25, gamma 2, beta 1/9):
  FL(x, 1) = 0.25 * (1 - sigma(x))**2 * -log(sigma(x))
  FL(x, 0) = 0.75 * sigma(x)**2 * -log(1 - sigma(x))
  FL(0, 1) = 0.0433216988   FL(1, 1) = 0.00566451438  FL(-2, 1) = 0.412519545
  FL(1, 0) = 0.526401228    FL(-2, 0) = 0.00135267213 FL(3, 0) = 2.07471033
  FL(0.5, 0) = 0.283058701
  SmoothL1(d) = 4.5 d**2 if |d| < 1/9 else |d| - 1/18
"""
import math

import numpy as np
import paddle
import pytest

from ppdet_hambox.core.workspace import ConfigError, create, load_config
from ppdet_hambox.modeling.assigners import Assignment, HAMBoxAssigner
from ppdet_hambox.modeling.box_coder import BoxCoder
from ppdet_hambox.modeling.losses import HAMBoxLoss, sigmoid_focal_loss, smooth_l1_loss

FL_0_1, FL_1_1, FL_M2_1 = 0.0433216988, 0.00566451438, 0.412519545
FL_1_0 = 0.526401228
FL_M2_0, FL_3_0, FL_05_0 = 0.00135267213, 2.07471033, 0.283058701
# anchor 0 [0,0,10,10] -> face [1,1,11,11]: target (1, 1, 0, 0), prediction 0:
BOX_A0 = 2 * (1 - 1 / 18)  # 1.888889
# anchor 1 [10,0,20,10] -> face: target (-9, 1, 0, 0), prediction (-8.5, 1.05, 0, 0.02):
BOX_A1 = (0.5 - 1 / 18) + 4.5 * 0.05 ** 2 + 0 + 4.5 * 0.02 ** 2  # 0.457494


def test_focal_loss_hand_values():
    logits = paddle.to_tensor([0., 1., -2., 3., 0.5])
    got = sigmoid_focal_loss(logits, paddle.to_tensor([1., 1., 0., 0., 0.])).numpy()
    np.testing.assert_allclose(got, [FL_0_1, FL_1_1, FL_M2_0, FL_3_0, FL_05_0], rtol=1e-5)
    # gamma 0, no alpha: plain binary cross-entropy
    plain = sigmoid_focal_loss(logits[:1], paddle.to_tensor([1.]), alpha=-1, gamma=0).numpy()
    np.testing.assert_allclose(plain, [math.log(2)], rtol=1e-6)


def test_smooth_l1_hand_values():
    got = smooth_l1_loss(paddle.to_tensor([0., 0., 0., 3.]), paddle.to_tensor([1., 0.05, 0., 2.98])).numpy()
    np.testing.assert_allclose(got, [1 - 1 / 18, 4.5 * 0.0025, 0, 4.5 * 0.0004], rtol=1e-4)


def tiny_case():
    anchors = paddle.to_tensor([[0., 0., 10., 10.], [10., 0., 20., 10.], [0., 10., 10., 20.],
                                [10., 10., 20., 20.], [20., 20., 30., 30.]])
    gt_bbox = paddle.to_tensor([[[1., 1., 11., 11.], [0., 0., 0., 0.]]])  # one face, one pad
    logits = paddle.to_tensor([[0., 1., -2., 3., 0.5]])
    deltas = paddle.to_tensor([[[0., 0., 0., 0.], [-8.5, 1.05, 0., 0.02], [3., 3., 3., 3.],
                                [3., 3., 3., 3.], [-3., 3., -3., 3.]]])
    assign = Assignment(labels=paddle.to_tensor([[1, 2, 0, -1, 0]], dtype='int64'),
                        gt_index=paddle.to_tensor([[0, 0, -1, -1, -1]], dtype='int64'),
                        quality=paddle.to_tensor([[0.9, 0.8, 0.3, 0.6, 0.1]]))
    return logits, deltas, anchors, gt_bbox, assign, BoxCoder()


def run(loss, case):
    """The loss terms and the statistics' means (sum / count) of one call."""
    losses, stats = loss(*case)
    return losses, {name: float(total) / max(float(count), 1.0) for name, (total, count) in stats.items()}


def test_ral_terms_by_hand():
    out, stats = run(HAMBoxLoss(use_ral=True), tiny_case())
    # N_norm = 1 (anchor 0), N_com = 1 (anchor 1, F = 0.8); anchor 3 ignored
    cls = 0.8 * FL_1_1 / 1 + (FL_0_1 + FL_M2_0 + FL_05_0) / 1  # 0.33226468
    box = BOX_A1 / 1 + BOX_A0 / 1  # 2.34638333
    np.testing.assert_allclose(out['loss_cls'].item(), cls, rtol=1e-5)
    np.testing.assert_allclose(out['loss_box'].item(), box, rtol=1e-5)
    np.testing.assert_allclose(out['loss'].item(), cls + box, rtol=1e-5)
    assert set(out) == {'loss', 'loss_cls', 'loss_box'}
    assert stats['num_pos'] == 1 and stats['num_compensated'] == 1 and stats['num_ignored'] == 1
    np.testing.assert_allclose(stats['compensated_iou'], 0.8, rtol=1e-6)
    assert 'num_second_step' not in stats  # a HAMBox assignment has no second-step anchors


def test_ral_without_the_ignore_rule_trains_ignored_anchors_as_background():
    out, _ = run(HAMBoxLoss(ral_ignore=False), tiny_case())
    # anchor 3 (label -1, logit 3) joins the background term: + FL(3, 0)
    cls = 0.8 * FL_1_1 + (FL_0_1 + FL_M2_0 + FL_3_0 + FL_05_0)
    np.testing.assert_allclose(out['loss_cls'].item(), cls, rtol=1e-5)
    np.testing.assert_allclose(out['loss_box'].item(), BOX_A1 + BOX_A0, rtol=1e-5)


def test_compensated_weight_cap_bounds_a_compensated_anchor_against_a_positive():
    # one compensated anchor and one label-1 positive: cap 0.5 -> divided by
    # max(N_com 1, N_norm 1 / 0.5) = 2; a cap of 1 or more changes nothing here
    out, _ = run(HAMBoxLoss(compensated_weight_cap=0.5), tiny_case())
    np.testing.assert_allclose(out['loss_cls'].item(), 0.8 * FL_1_1 / 2 + (FL_0_1 + FL_M2_0 + FL_05_0), rtol=1e-5)
    np.testing.assert_allclose(out['loss_box'].item(), BOX_A1 / 2 + BOX_A0, rtol=1e-5)
    paper, _ = run(HAMBoxLoss(), tiny_case())
    uncapped, _ = run(HAMBoxLoss(compensated_weight_cap=1.0), tiny_case())
    assert uncapped['loss'].item() == paper['loss'].item()
    for bad in (0, -1.0, 'x', True):
        with pytest.raises(ValueError, match='compensated_weight_cap'):
            HAMBoxLoss(compensated_weight_cap=bad)


def test_without_ral_compensated_are_positives_and_ignored_are_background():
    out, _ = run(HAMBoxLoss(use_ral=False, loss_box_weight=2.0), tiny_case())
    cls = (FL_0_1 + FL_1_1 + FL_M2_0 + FL_3_0 + FL_05_0) / 2  # 1.20405396
    box = (BOX_A0 + BOX_A1) / 2  # 1.17319167
    np.testing.assert_allclose(out['loss_cls'].item(), cls, rtol=1e-5)
    np.testing.assert_allclose(out['loss_box'].item(), box, rtol=1e-5)
    np.testing.assert_allclose(out['loss'].item(), cls + 2 * box, rtol=1e-5)


def test_no_compensated_anchor_and_no_positive():
    logits, deltas, anchors, gt_bbox, assign, coder = tiny_case()
    assign = Assignment(labels=paddle.to_tensor([[1, 0, 0, 0, 0]], dtype='int64'),
                        gt_index=paddle.to_tensor([[0, -1, -1, -1, -1]], dtype='int64'), quality=assign.quality)
    out, stats = run(HAMBoxLoss(), (logits, deltas, anchors, gt_bbox, assign, coder))
    np.testing.assert_allclose(out['loss_cls'].item(), FL_0_1 + FL_1_0 + FL_M2_0 + FL_3_0 + FL_05_0, rtol=1e-5)
    np.testing.assert_allclose(out['loss_box'].item(), BOX_A0, rtol=1e-5)
    assert stats['num_compensated'] == 0 and stats['compensated_iou'] == 0
    # nothing positive at all: N_norm is clamped to 1, the box loss is 0
    empty = Assignment(labels=paddle.zeros([1, 5], dtype='int64'), gt_index=paddle.full([1, 5], -1, 'int64'),
                       quality=assign.quality)
    out, _ = run(HAMBoxLoss(), (logits, deltas, anchors, gt_bbox, empty, coder))
    assert out['loss_box'].item() == 0 and np.isfinite(out['loss'].item())


def test_normalisers_run_over_the_batch():
    logits, deltas, anchors, gt_bbox, assign, coder = tiny_case()
    # image 2 repeats image 1 with anchor 2 a step-one positive too (logit -2)
    labels = paddle.to_tensor([[1, 2, 0, -1, 0], [1, 2, 1, -1, 0]], dtype='int64')
    gt_index = paddle.to_tensor([[0, 0, -1, -1, -1], [0, 0, 0, -1, -1]], dtype='int64')
    quality = paddle.concat([assign.quality] * 2)
    batch = (paddle.concat([logits] * 2), paddle.concat([deltas] * 2), anchors, paddle.concat([gt_bbox] * 2),
             Assignment(labels=labels, gt_index=gt_index, quality=quality), coder)
    out, stats = run(HAMBoxLoss(), batch)
    cls = 2 * 0.8 * FL_1_1 / 2 + (2 * FL_0_1 + FL_M2_0 + FL_M2_1 + 2 * FL_05_0) / 3
    np.testing.assert_allclose(out['loss_cls'].item(), cls, rtol=1e-5)
    # anchor 2 [0,10,10,20] -> face: target (1, -9, 0, 0), prediction (3, 3, 3, 3)
    box_a2 = (2 - 1 / 18) + (12 - 1 / 18) + 2 * (3 - 1 / 18)
    np.testing.assert_allclose(out['loss_box'].item(), 2 * BOX_A1 / 2 + (2 * BOX_A0 + box_a2) / 3, rtol=1e-5)
    assert stats['num_pos'] == 1.5 and stats['num_compensated'] == 1.0 and stats['num_ignored'] == 1.0
    # capped at one positive each: compensated terms / max(N_com 2, N_norm 3 / 1)
    capped, _ = run(HAMBoxLoss(compensated_weight_cap=1.0), batch)
    np.testing.assert_allclose(capped['loss_box'].item(), 2 * BOX_A1 / 3 + (2 * BOX_A0 + box_a2) / 3, rtol=1e-5)


def test_quality_weights_and_mining_carry_no_gradient():
    """Decoded boxes (for mining) and F_i come from the deltas, but only the
    box loss may send gradient to the deltas."""
    coder = BoxCoder()
    rng = np.random.default_rng(0)
    anchors = paddle.to_tensor([[0., 0., 10., 10.], [2., 2., 12., 12.], [20., 20., 30., 30.], [1., 0., 11., 10.],
                                [1., 1., 11., 11.]])
    gt_bbox = paddle.to_tensor([[[1., 1., 11., 11.]]])
    deltas = paddle.to_tensor(rng.normal(0, 0.3, size=(1, 5, 4)).astype('float32'))
    deltas.stop_gradient = False
    logits = paddle.to_tensor([[0.3, -0.2, 0.1, 0.5, 0.4]])
    pred = coder.decode(anchors, deltas)  # not detached on purpose
    assign = HAMBoxAssigner(pos_iou=0.85, K=3, T=0.3)(anchors, pred, gt_bbox, paddle.ones([1, 1]))
    # anchor 4 is the face (step one, D = 1); anchors 0, 1, 3 (IoU 0.68-0.82
    # < 0.85) decode onto it: the best two are compensated, the third ignored
    assert sorted(assign.labels.numpy()[0].tolist()) == [-1, 0, 1, 2, 2]
    assert assign.quality.stop_gradient
    # a caller that hands in a quality still attached to the graph (same
    # values, gradient 1 towards the decoded x1): the loss must detach it
    x1 = pred[..., 0]
    attached = Assignment(labels=assign.labels, gt_index=assign.gt_index,
                          quality=assign.quality - x1.detach() + x1)
    loss = HAMBoxLoss()
    total, stats = loss(logits, deltas, anchors, gt_bbox, attached, coder)
    total['loss'].backward()
    grad_total = deltas.grad.numpy().copy()
    deltas.clear_gradient()
    loss(logits, deltas, anchors, gt_bbox, attached, coder)[0]['loss_box'].backward()
    np.testing.assert_allclose(grad_total, deltas.grad.numpy(), rtol=1e-6)
    assert np.abs(grad_total).sum() > 0
    assert all(t.stop_gradient and c.stop_gradient for t, c in stats.values())


def test_registry_builds_the_loss_without_a_coder_of_its_own(repo_root):
    loss = create('HAMBoxLoss', {'HAMBoxLoss': {'use_ral': False, 'ral_ignore': False}})
    assert loss.use_ral is False and loss.ral_ignore is False and not hasattr(loss, 'coder')
    with pytest.raises(Exception, match='use_ral'):
        create('HAMBoxLoss', {'HAMBoxLoss': {'use_ral': 'yes'}})
    # the loss encodes with the architecture's coder: a coder key of its own is refused
    config = str(repo_root / 'configs' / 'demo' / 'hambox_demo.yml')
    for key in ('HAMBoxLoss.coder', 'PyramidAnchorLoss.coder'):
        with pytest.raises(ConfigError, match='unknown key {}'.format(key)):
            load_config(config, ['{}=BoxCoder'.format(key)])


def test_second_step_anchors_of_dms_are_positives_with_statistics_of_their_own():
    """DMS second-step anchors are plain positives in the loss; the
    statistics count them apart from step-one positives and compensated anchors."""
    from ppdet_hambox.modeling.assigners import DMSAssigner
    anchors = paddle.to_tensor([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]], dtype='float32')
    faces = paddle.to_tensor([[[0, 0, 10, 10], [19, 0, 23, 4]]], dtype='float32')
    assign = DMSAssigner()(anchors, None, faces, paddle.ones([1, 2]))
    _, stats = run(HAMBoxLoss(use_ral=False),
                   (paddle.zeros([1, 3]), paddle.zeros([1, 3, 4]), anchors, faces, assign, BoxCoder()))
    assert stats['num_second_step'] == 1.0 and stats['num_pos'] == 1.0 and stats['num_compensated'] == 0
    assert abs(stats['second_step_iou'] - 12.0 / 104.0) < 1e-6   # anchor 1 vs face 1: 3x4 overlap, union 104
