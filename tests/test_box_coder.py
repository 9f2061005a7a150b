"""Box coding and IoU: hand-computed values, round trips, clamping, batching."""
import math

import numpy as np
import paddle
import pytest

from ppdet_hambox.core.workspace import create
from ppdet_hambox.modeling.box_coder import BoxCoder, bbox_iou


def test_iou_hand_values():
    a = paddle.to_tensor([[0., 0., 10., 10.], [5., 5., 25., 45.]])
    b = paddle.to_tensor([[1., 2., 12., 9.], [0., 0., 20., 40.], [30., 30., 31., 31.]])
    iou = bbox_iou(a, b).numpy()
    # [0,0,10,10] & [1,2,12,9]: inter 9*7 = 63, union 100 + 77 - 63 = 114
    expected = np.array([
        [63 / 114, 100 / 800, 0.0],
        [(7 * 4) / (800 + 77 - 28), (15 * 35) / (800 + 800 - 525), 0.0],
    ])
    np.testing.assert_allclose(iou, expected, rtol=1e-6)


def test_iou_empty_boxes_are_zero_not_nan():
    zero = paddle.zeros([2, 4])
    iou = bbox_iou(zero, zero).numpy()
    assert np.all(iou == 0)


def test_iou_batched_matches_unbatched():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 50, size=(3, 7, 2))
    a = np.concatenate([xy, xy + rng.uniform(1, 30, size=(3, 7, 2))], -1).astype('float32')
    xy = rng.uniform(0, 50, size=(3, 5, 2))
    b = np.concatenate([xy, xy + rng.uniform(1, 30, size=(3, 5, 2))], -1).astype('float32')
    batched = bbox_iou(paddle.to_tensor(a), paddle.to_tensor(b)).numpy()
    assert batched.shape == (3, 7, 5)
    for i in range(3):
        np.testing.assert_array_equal(batched[i], bbox_iou(paddle.to_tensor(a[i]), paddle.to_tensor(b[i])).numpy())


def test_iou_rejects_bad_shapes():
    with pytest.raises(ValueError, match='bbox_iou'):
        bbox_iou(paddle.zeros([3, 4]), paddle.zeros([2, 3, 4]))


def test_encode_hand_values():
    coder = BoxCoder()
    anchors = paddle.to_tensor([[0., 0., 10., 10.]])
    boxes = paddle.to_tensor([[1., 2., 12., 9.]])
    # anchor centre (5, 5) size 10x10; box centre (6.5, 5.5) size 11x7
    expected = [10 * 1.5 / 10, 10 * 0.5 / 10, 5 * math.log(11 / 10), 5 * math.log(7 / 10)]
    np.testing.assert_allclose(coder.encode(anchors, boxes).numpy()[0], expected, rtol=1e-5)


def test_round_trip_broadcasts_over_batch():
    rng = np.random.default_rng(1)
    coder = BoxCoder(weights=[10, 10, 5, 5])
    xy = rng.uniform(0, 600, size=(50, 2))
    anchors = np.concatenate([xy, xy + rng.uniform(4, 300, size=(50, 2))], -1).astype('float32')
    xy = rng.uniform(0, 600, size=(2, 50, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(4, 300, size=(2, 50, 2))], -1).astype('float32')
    deltas = coder.encode(paddle.to_tensor(anchors), paddle.to_tensor(boxes))
    assert deltas.shape == [2, 50, 4]
    decoded = coder.decode(paddle.to_tensor(anchors), deltas).numpy()
    np.testing.assert_allclose(decoded, boxes, atol=1e-2)


def test_decode_clamps_scale():
    coder = BoxCoder()
    anchors = paddle.to_tensor([[0., 0., 16., 16.]])
    decoded = coder.decode(anchors, paddle.to_tensor([[0., 0., 1e4, 1e4]])).numpy()[0]
    assert np.all(np.isfinite(decoded))
    # exp(log(1000 / 16)) * 16 = 1000 pixels wide, centred on the anchor
    np.testing.assert_allclose(decoded, [8 - 500, 8 - 500, 8 + 500, 8 + 500], rtol=1e-4)


def test_weights_scale_deltas_and_registry_builds_it():
    coder = create('BoxCoder', {}, weights=[1.0, 1.0, 1.0, 1.0])
    anchors = paddle.to_tensor([[0., 0., 10., 10.]])
    boxes = paddle.to_tensor([[1., 2., 12., 9.]])
    plain = coder.encode(anchors, boxes).numpy()
    weighted = BoxCoder().encode(anchors, boxes).numpy()
    np.testing.assert_allclose(weighted, plain * np.array([10, 10, 5, 5]), rtol=1e-5)
    with pytest.raises(ValueError, match='weights'):
        BoxCoder(weights=[1, 1, 1])
