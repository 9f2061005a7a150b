"""HAMBoxPostProcess: thresholds, NMS, top-k, scaling, batching, export."""
import numpy as np
import paddle
import pytest
from paddle.static import InputSpec

from ppdet_hambox.modeling.post_process import HAMBoxPostProcess


def run(pp, scores, boxes, im_shape=None, scale_factor=None):
    batch = len(scores)
    im_shape = im_shape if im_shape is not None else [[1000.0, 1000.0]] * batch
    scale_factor = scale_factor if scale_factor is not None else [[1.0, 1.0]] * batch
    bbox, bbox_num = pp(paddle.to_tensor(scores, 'float32'), paddle.to_tensor(boxes, 'float32'),
                        paddle.to_tensor(im_shape, 'float32'), paddle.to_tensor(scale_factor, 'float32'))
    return bbox.numpy(), bbox_num.numpy()


def test_threshold_nms_and_output_layout():
    boxes = [[[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [100, 100, 120, 120]]]
    scores = [[0.9, 0.8, 0.7, 0.01]]
    bbox, num = run(HAMBoxPostProcess(score_threshold=0.05, nms_threshold=0.4), scores, boxes)
    assert num.tolist() == [2] and num.dtype == np.int32
    # class 0 (face), score, box; the overlapping lower box is suppressed, the 0.01 one thresholded
    np.testing.assert_allclose(bbox, [[0, 0.9, 0, 0, 10, 10], [0, 0.7, 50, 50, 60, 60]], rtol=1e-6)


def test_iou_has_no_plus_one():
    """IoU([0,0,10,10], [0,0,10,7]) is 0.7 continuous, 0.727 with the +1 convention."""
    boxes = [[[0, 0, 10, 10], [0, 0, 10, 7]]]
    _, num = run(HAMBoxPostProcess(nms_threshold=0.71), [[0.9, 0.8]], boxes)
    assert num.tolist() == [2]
    _, num = run(HAMBoxPostProcess(nms_threshold=0.69), [[0.9, 0.8]], boxes)
    assert num.tolist() == [1]


def test_top_k_before_and_after_nms():
    boxes = [[[i * 20, 0, i * 20 + 10, 10] for i in range(6)]]
    scores = [[0.9, 0.8, 0.7, 0.6, 0.5, 0.4]]
    bbox, num = run(HAMBoxPostProcess(keep_top_k=3), scores, boxes)
    assert num.tolist() == [3]
    np.testing.assert_allclose(bbox[:, 1], [0.9, 0.8, 0.7], rtol=1e-6)
    # pre-NMS top-k 2 keeps the two overlapping best boxes; NMS then leaves one,
    # and the separate third box never reaches NMS
    boxes = [[[0, 0, 10, 10], [0, 0, 10, 10.5], [40, 0, 50, 10]]]
    _, num = run(HAMBoxPostProcess(pre_nms_top_k=2), [[0.9, 0.8, 0.7]], boxes)
    assert num.tolist() == [1]
    _, num = run(HAMBoxPostProcess(pre_nms_top_k=3), [[0.9, 0.8, 0.7]], boxes)
    assert num.tolist() == [2]


def test_batched_scaling_and_clipping():
    boxes = [[[-5, 10, 20, 40], [30, 30, 80, 90]],
             [[10, 10, 30, 30], [0, 0, 1, 1]]]
    scores = [[0.9, 0.6], [0.3, 0.01]]
    im_shape = [[60, 70], [100, 100]]          # (h, w) of each network input
    scale_factor = [[2.0, 0.5], [1.0, 1.0]]    # (sy, sx) original -> input
    bbox, num = run(HAMBoxPostProcess(), scores, boxes, im_shape, scale_factor)
    assert num.tolist() == [2, 1]
    expected = [[0, 0.9, 0 / 0.5, 10 / 2.0, 20 / 0.5, 40 / 2.0],
                [0, 0.6, 30 / 0.5, 30 / 2.0, 70 / 0.5, 60 / 2.0],
                [0, 0.3, 10, 10, 30, 30]]
    np.testing.assert_allclose(bbox, expected, rtol=1e-6)


def test_no_detections():
    bbox, num = run(HAMBoxPostProcess(), [[0.01, 0.02]], [[[0, 0, 5, 5], [9, 9, 20, 20]]])
    assert bbox.shape == (0, 6) and num.tolist() == [0]


class _Wrapper(paddle.nn.Layer):
    def __init__(self, pp):
        super().__init__()
        self.pp = pp

    def forward(self, scores, boxes, im_shape, scale_factor):
        return self.pp(scores, boxes, im_shape, scale_factor)


def test_exports_and_matches_dygraph(tmp_path):
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 80, (2, 300, 2))
    wh = rng.uniform(4, 30, (2, 300, 2))
    boxes = np.concatenate([xy, xy + wh], -1).astype('float32')
    scores = rng.uniform(0, 1, (2, 300)).astype('float32')
    im_shape = np.array([[100, 100], [90, 110]], 'float32')
    scale = np.array([[0.5, 0.5], [2.0, 1.5]], 'float32')
    pp = HAMBoxPostProcess(pre_nms_top_k=200, keep_top_k=50)
    wrapper = _Wrapper(pp)
    spec = [InputSpec([None, None], 'float32'), InputSpec([None, None, 4], 'float32'),
            InputSpec([None, 2], 'float32'), InputSpec([None, 2], 'float32')]
    static = paddle.jit.to_static(wrapper, input_spec=spec, full_graph=True)
    paddle.jit.save(static, str(tmp_path / 'pp'))
    loaded = paddle.jit.load(str(tmp_path / 'pp'))
    args = [paddle.to_tensor(a) for a in (scores, boxes, im_shape, scale)]
    want_bbox, want_num = wrapper(*args)
    got_bbox, got_num = loaded(*args)
    assert want_num.numpy().tolist() == got_num.numpy().tolist()
    assert 0 < want_num.numpy().sum() <= 100
    np.testing.assert_allclose(got_bbox.numpy(), want_bbox.numpy(), rtol=1e-6)
