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

from ppdet_hambox.core.workspace import create
from ppdet_hambox.modeling.assigners import HAMBoxAssigner
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
    assign = dict(labels=paddle.to_tensor([[1, 2, 0, -1, 0]], dtype='int64'),
                  gt_index=paddle.to_tensor([[0, 0, -1, -1, -1]], dtype='int64'),
                  quality=paddle.to_tensor([[0.9, 0.8, 0.3, 0.6, 0.1]]))
    return logits, deltas, anchors, gt_bbox, assign


def test_ral_terms_by_hand():
    out = HAMBoxLoss(use_ral=True)(*tiny_case())
    # N_norm = 1 (anchor 0), N_com = 1 (anchor 1, F = 0.8); anchor 3 ignored
    cls = 0.8 * FL_1_1 / 1 + (FL_0_1 + FL_M2_0 + FL_05_0) / 1  # 0.33226468
    box = BOX_A1 / 1 + BOX_A0 / 1  # 2.34638333
    np.testing.assert_allclose(out['loss_cls'].item(), cls, rtol=1e-5)
    np.testing.assert_allclose(out['loss_box'].item(), box, rtol=1e-5)
    np.testing.assert_allclose(out['loss'].item(), cls + box, rtol=1e-5)
    assert out['num_pos'].item() == 1 and out['num_com'].item() == 1
    np.testing.assert_allclose(out['com_iou'].item(), 0.8, rtol=1e-6)


def test_without_ral_compensated_are_positives_and_ignored_are_background():
    out = HAMBoxLoss(use_ral=False, loss_box_weight=2.0)(*tiny_case())
    cls = (FL_0_1 + FL_1_1 + FL_M2_0 + FL_3_0 + FL_05_0) / 2  # 1.20405396
    box = (BOX_A0 + BOX_A1) / 2  # 1.17319167
    np.testing.assert_allclose(out['loss_cls'].item(), cls, rtol=1e-5)
    np.testing.assert_allclose(out['loss_box'].item(), box, rtol=1e-5)
    np.testing.assert_allclose(out['loss'].item(), cls + 2 * box, rtol=1e-5)


def test_no_compensated_anchor_and_no_positive():
    logits, deltas, anchors, gt_bbox, assign = tiny_case()
    assign = dict(assign, labels=paddle.to_tensor([[1, 0, 0, 0, 0]], dtype='int64'),
                  gt_index=paddle.to_tensor([[0, -1, -1, -1, -1]], dtype='int64'))
    out = HAMBoxLoss()(logits, deltas, anchors, gt_bbox, assign)
    np.testing.assert_allclose(out['loss_cls'].item(), FL_0_1 + FL_1_0 + FL_M2_0 + FL_3_0 + FL_05_0, rtol=1e-5)
    np.testing.assert_allclose(out['loss_box'].item(), BOX_A0, rtol=1e-5)
    assert out['num_com'].item() == 0 and out['com_iou'].item() == 0
    # nothing positive at all: N_norm is clamped to 1, the box loss is 0
    empty = dict(assign, labels=paddle.zeros([1, 5], dtype='int64'), gt_index=paddle.full([1, 5], -1, 'int64'))
    out = HAMBoxLoss()(logits, deltas, anchors, gt_bbox, empty)
    assert out['loss_box'].item() == 0 and np.isfinite(out['loss'].item())


def test_normalisers_run_over_the_batch():
    logits, deltas, anchors, gt_bbox, assign = tiny_case()
    # image 2 repeats image 1 with anchor 2 a step-one positive too (logit -2)
    labels = paddle.to_tensor([[1, 2, 0, -1, 0], [1, 2, 1, -1, 0]], dtype='int64')
    gt_index = paddle.to_tensor([[0, 0, -1, -1, -1], [0, 0, 0, -1, -1]], dtype='int64')
    quality = paddle.concat([assign['quality']] * 2)
    batch = (paddle.concat([logits] * 2), paddle.concat([deltas] * 2), anchors, paddle.concat([gt_bbox] * 2),
             dict(labels=labels, gt_index=gt_index, quality=quality))
    out = HAMBoxLoss()(*batch)
    cls = 2 * 0.8 * FL_1_1 / 2 + (2 * FL_0_1 + FL_M2_0 + FL_M2_1 + 2 * FL_05_0) / 3
    np.testing.assert_allclose(out['loss_cls'].item(), cls, rtol=1e-5)
    # anchor 2 [0,10,10,20] -> face: target (1, -9, 0, 0), prediction (3, 3, 3, 3)
    box_a2 = (2 - 1 / 18) + (12 - 1 / 18) + 2 * (3 - 1 / 18)
    np.testing.assert_allclose(out['loss_box'].item(), 2 * BOX_A1 / 2 + (2 * BOX_A0 + box_a2) / 3, rtol=1e-5)
    assert out['num_pos'].item() == 1.5 and out['num_com'].item() == 1.0


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
    assert sorted(assign['labels'].numpy()[0].tolist()) == [-1, 0, 1, 2, 2]
    assert assign['quality'].stop_gradient
    # a caller that hands in a quality still attached to the graph (same
    # values, gradient 1 towards the decoded x1): the loss must detach it
    x1 = pred[..., 0]
    attached = dict(assign, quality=assign['quality'] - x1.detach() + x1)
    loss = HAMBoxLoss(coder=coder)
    total = loss(logits, deltas, anchors, gt_bbox, attached)
    total['loss'].backward()
    grad_total = deltas.grad.numpy().copy()
    deltas.clear_gradient()
    loss(logits, deltas, anchors, gt_bbox, attached)['loss_box'].backward()
    np.testing.assert_allclose(grad_total, deltas.grad.numpy(), rtol=1e-6)
    assert np.abs(grad_total).sum() > 0
    assert total['com_iou'].stop_gradient


def test_registry_builds_the_loss_with_its_coder():
    loss = create('HAMBoxLoss', {'HAMBoxLoss': {'use_ral': False}, 'BoxCoder': {'weights': [1., 1., 1., 1.]}})
    assert loss.use_ral is False and loss.coder.weights == [1., 1., 1., 1.]
    with pytest.raises(Exception, match='use_ral'):
        create('HAMBoxLoss', {'HAMBoxLoss': {'use_ral': 'yes'}})


def test_mining_statistics_count_second_step_anchors_of_dms():
    """num_com / com_iou (the Fig. 3 log) also cover DMS second-step anchors,
    while the loss itself treats them as plain positives."""
    from ppdet_hambox.modeling.assigners import DMSAssigner
    from ppdet_hambox.modeling.losses import HAMBoxLoss
    anchors = paddle.to_tensor([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]], dtype='float32')
    faces = paddle.to_tensor([[[0, 0, 10, 10], [19, 0, 23, 4]]], dtype='float32')
    assign = DMSAssigner()(anchors, None, faces, paddle.ones([1, 2]))
    out = HAMBoxLoss(use_ral=False)(paddle.zeros([1, 3]), paddle.zeros([1, 3, 4]), anchors, faces, assign)
    assert out['num_com'].item() == 1.0
    assert abs(out['com_iou'].item() - 12.0 / 104.0) < 1e-6   # anchor 1 vs face 1: 3x4 overlap, union 104
    assert out['num_pos'].item() == 1.0
