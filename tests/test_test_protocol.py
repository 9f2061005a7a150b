"""The per-pass score threshold follows the test protocol: single-pass
protocols keep the model's cut, every multiscale pass uses
TestProtocol.ms_score_threshold; merging never thresholds again."""
import cv2
import numpy as np
import paddle
import pytest

from hambox_eval_helpers import demo_cfg, tiny_model, val_images
from ppdet_hambox.evaluation.predictor import Predictor
from ppdet_hambox.evaluation.protocols import TestProtocol
from ppdet_hambox.modeling.post_process import HAMBoxPostProcess


def test_passes_carry_the_protocol_threshold():
    p = TestProtocol(ms_score_threshold=0.02)
    assert p.passes('vga', 480, 640)[0].score_threshold is None
    assert p.passes('original', 480, 640)[0].score_threshold is None
    ms = p.passes('multiscale', 480, 640)
    assert len(ms) > 1 and {q.score_threshold for q in ms} == {0.02}
    with pytest.raises(ValueError, match='ms_score_threshold'):
        TestProtocol(ms_score_threshold=1.5)


def test_merge_does_not_threshold_again():
    p = TestProtocol(ms_score_threshold=0.01)
    dets = np.array([[0, 0, 10, 10, 0.02], [50, 50, 60, 60, 0.004]], np.float32)
    np.testing.assert_array_equal(p.merge('vga', [dets]), dets)
    assert sorted(p.merge('multiscale', [dets[:1], dets[1:]])[:, 4].tolist()) == pytest.approx([0.004, 0.02])


def test_post_process_threshold_override():
    scores = paddle.to_tensor([[0.9, 0.03]])
    boxes = paddle.to_tensor([[[0.0, 0, 10, 10], [50, 50, 60, 60]]])
    shape, scale = paddle.to_tensor([[100.0, 100.0]]), paddle.ones([1, 2])
    pp = HAMBoxPostProcess(score_threshold=0.05)
    assert pp(scores, boxes, shape, scale)[1].tolist() == [1]
    assert pp(scores, boxes, shape, scale, score_threshold=0.01)[1].tolist() == [2]
    assert pp.score_threshold == 0.05


def test_predictor_cuts_each_pass_by_its_protocol():
    model, cfg = tiny_model(), demo_cfg()
    cut = model.post_process.score_threshold
    image = cv2.imread(str(val_images()[0]))
    predictor = Predictor(model, cfg, 'vga')
    single = predictor.detect(image)
    assert len(single) and single[:, 4].min() >= cut
    settings = predictor.settings
    low = settings.ms_score_threshold
    assert low < cut
    passes = settings.passes('multiscale', *image.shape[:2])
    dets = np.concatenate([predictor.run_pass(image, q) for q in passes])
    # multiscale passes keep boxes between the protocol's cut and the model's
    assert dets[:, 4].min() >= low and (dets[:, 4] < cut).any()
