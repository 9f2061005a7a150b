"""PyramidAnchorLoss: context boxes, their anchors, and the loss at its optimum."""
import numpy as np
import paddle
import pytest

from ppdet_hambox.modeling.anchors import AnchorGenerator
from ppdet_hambox.modeling.assigners import SMSAssigner
from ppdet_hambox.modeling.box_coder import BoxCoder, bbox_iou
from ppdet_hambox.modeling.losses.pyramid_anchor_loss import PyramidAnchorLoss, enlarge_boxes

FACE = [54.0, 54.0, 74.0, 74.0]  # side 20, centre (64, 64): matched by P3 anchors (side 21.76)


def setup():
    gen = AnchorGenerator()
    anchors = gen.anchors(gen.feature_shapes(128, 128))
    gt = paddle.to_tensor([[FACE, [0.0, 0.0, 0.0, 0.0]]])
    mask = paddle.to_tensor([[1.0, 0.0]])
    return anchors, gt, mask


def test_enlarge_about_the_centre():
    got = enlarge_boxes(paddle.to_tensor([[10.0, 20.0, 30.0, 60.0]]), 2.0).numpy()
    np.testing.assert_allclose(got, [[0.0, 0.0, 40.0, 80.0]])


@pytest.mark.parametrize('scale,side', [(2.0, 0.68 * 64), (4.0, 0.68 * 128)])
def test_context_boxes_are_matched_levels_up(scale, side):
    anchors, gt, mask = setup()
    loss = PyramidAnchorLoss(SMSAssigner(), scales=[scale])
    labels = loss.assigner(anchors, None, enlarge_boxes(gt, scale), mask).labels.numpy()[0]
    sides = (anchors.numpy()[:, 2] - anchors.numpy()[:, 0])[labels == 1]
    assert len(sides) > 0
    np.testing.assert_allclose(sides, side, rtol=1e-5)


def test_loss_vanishes_at_the_targets_and_not_elsewhere():
    anchors, gt, mask = setup()
    loss = PyramidAnchorLoss(SMSAssigner(), scales=[2.0, 4.0])
    num = anchors.shape[0]
    logits, deltas = [], []
    for scale in loss.scales:
        box = enlarge_boxes(paddle.to_tensor([FACE]), scale)
        positive = bbox_iou(anchors, box).numpy()[:, 0] >= 0.35
        assert positive.any()
        logits.append(np.where(positive, 30.0, -30.0))
        deltas.append(BoxCoder().encode(anchors, box.expand([num, 4])).numpy())
    aux = {'cls_logits': paddle.to_tensor(np.stack(logits, -1)[None], 'float32'),
           'box_deltas': paddle.to_tensor(np.stack(deltas, 1)[None], 'float32')}
    assert loss(aux, anchors, gt, mask, BoxCoder()).item() < 1e-6
    zeros = {'cls_logits': paddle.zeros([1, num, 2]), 'box_deltas': paddle.zeros([1, num, 2, 4])}
    zeros['cls_logits'].stop_gradient = False
    value = loss(zeros, anchors, gt, mask, BoxCoder())
    value.backward()
    assert value.item() > 0.1 and np.abs(zeros['cls_logits'].grad.numpy()).sum() > 0


def test_weight_scales_the_loss():
    anchors, gt, mask = setup()
    num = anchors.shape[0]
    aux = {'cls_logits': paddle.zeros([1, num, 2]), 'box_deltas': paddle.zeros([1, num, 2, 4])}
    one = PyramidAnchorLoss(SMSAssigner(), weight=1.0)(aux, anchors, gt, mask, BoxCoder()).item()
    half = PyramidAnchorLoss(SMSAssigner(), weight=0.5)(aux, anchors, gt, mask, BoxCoder()).item()
    assert half == pytest.approx(0.5 * one, rel=1e-6)
    with pytest.raises(ValueError, match='scales'):
        PyramidAnchorLoss(SMSAssigner(), scales=[2.0, -1.0])
