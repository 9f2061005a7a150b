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


# ----------------------------------------------------------------------------- PyramidBox's protocol

def test_protocol_defaults_are_pinned(repo_root):
    """The shipped numbers: multiscale keeps single-box clusters and the
    model's NMS; pyramidbox runs NMS 0.3 / keep-top 750 per pass and drops
    single-box clusters; the paper configs evaluate with pyramidbox."""
    from ppdet_hambox.core.workspace import create, load_config
    cfg = load_config(str(repo_root / 'configs' / 'hambox' / 'hambox_r50_lfpn_sms_640.yml'))
    assert cfg.eval_protocol == 'pyramidbox'
    p = create('TestProtocol', cfg)
    assert (p.vote_iou, p.vote_min_count, p.vote_top_k) == (0.3, 1, 750)
    assert (p.ms_nms_threshold, p.ms_keep_top_k) == (None, None)
    assert (p.pb_nms_threshold, p.pb_keep_top_k, p.pb_vote_min_count) == (0.3, 750, 2)
    assert (p.pb_max_pixels, p.pb_scale_margin, p.pb_pyramid_scales) == (2777088, 0.3, [0.25, 0.75, 1.25, 1.5, 1.75])
    assert (p.pb_small_scale_min_face, p.pb_large_scale_max_face) == (30.0, 100.0)
    pp = create('HAMBoxPostProcess', cfg)
    assert (pp.nms_threshold, pp.keep_top_k) == (0.4, 750)
    assert TestProtocol().pb_vote_min_count == 2 and TestProtocol().vote_min_count == 1


def _ladder(p, height, width):
    return [(round(q.scale, 4), q.flip, q.min_face, q.max_face) for q in p.passes('pyramidbox', height, width)]


def test_pyramidbox_ladder():
    p = TestProtocol()
    inf = float('inf')
    # A WIDER-sized image: sqrt(2777088 / 786432) = 1.879 -> 1.87 - 0.3 = 1.57 -> -0.1 (>= 1.5) = 1.47.
    assert p.pyramidbox_max_scale(768, 1024) == pytest.approx(1.47)
    assert _ladder(p, 768, 1024) == [
        (1.0, False, 0.0, inf), (1.0, True, 0.0, inf),           # full pass and its mirror: every face
        (0.5, False, 30.0, inf),                                   # shrunk: big faces only
        (1.47, False, 0.0, 100.0),                                 # enlarged up to m (2 is out of budget)
        (0.25, False, 30.0, inf), (0.75, False, 30.0, inf),        # pyramid, shrunk
        (1.25, False, 0.0, 100.0)]                                 # pyramid, enlarged: small faces only
    # A small image: m = 8.82, the enlarged passes double from 2 up to m, then one at m.
    small = _ladder(p, 150, 200)
    assert p.pyramidbox_max_scale(150, 200) == pytest.approx(8.82)
    assert [s for s, _, _, cap in small if cap == 100.0] == [2.0, 4.0, 8.0, 8.82, 1.25, 1.5, 1.75]
    # A huge image: m < 1; the shrunk pass is 0.5 m, the "enlarged" one halfway to m (big faces),
    # 0.25 always runs and no other pyramid scale fits.
    m = p.pyramidbox_max_scale(3000, 4000)
    assert m == pytest.approx(0.18)
    assert _ladder(p, 3000, 4000) == [(0.18, False, 0.0, inf), (0.18, True, 0.0, inf), (0.09, False, 30.0, inf),
                                      (0.135, False, 30.0, inf), (0.25, False, 30.0, inf)]
    q = p.passes('pyramidbox', 768, 1024)[0]
    assert (q.score_threshold, q.nms_threshold, q.keep_top_k, q.max_face_side) == (0.01, 0.3, 750, 'short')
    assert {(q.nms_threshold, q.keep_top_k, q.max_face_side) for q in p.passes('multiscale', 768, 1024)} == {
        (None, None, 'long')}


def test_pyramidbox_window_caps_the_shorter_side():
    """Enlarged passes keep a box whose *shorter* side is <= 100 (a 40 x 150
    box survives pyramidbox, not multiscale); shrunk passes need a longer side >= 30."""
    from ppdet_hambox.evaluation.protocols import filter_face_size
    dets = np.array([[0, 0, 40, 150, 0.9],     # tall: long 150, short 40
                     [0, 0, 120, 120, 0.8],    # big
                     [0, 0, 20, 25, 0.7]], np.float32)  # small: long 25
    p = TestProtocol()
    enlarged = [q for q in p.passes('pyramidbox', 768, 1024) if q.scale > 1][0]
    shrunk = [q for q in p.passes('pyramidbox', 768, 1024) if q.scale < 1][0]
    keep = filter_face_size(dets, enlarged.min_face, enlarged.max_face, enlarged.max_face_side)
    assert keep[:, 4].tolist() == pytest.approx([0.9, 0.7])
    keep = filter_face_size(dets, shrunk.min_face, shrunk.max_face, shrunk.max_face_side)
    assert keep[:, 4].tolist() == pytest.approx([0.9, 0.8])
    ms_enlarged = [q for q in p.passes('multiscale', 768, 1024) if q.scale > 1][0]
    keep = filter_face_size(dets, ms_enlarged.min_face, ms_enlarged.max_face, ms_enlarged.max_face_side)
    assert keep[:, 4].tolist() == pytest.approx([0.7])


def test_pyramidbox_vote_drops_single_box_clusters():
    p = TestProtocol()
    pair = np.array([[0, 0, 10, 10, 0.9], [0, 0, 10, 11, 0.8]], np.float32)
    lone = np.array([[50, 50, 60, 60, 0.95]], np.float32)
    assert p.merge('pyramidbox', [pair, lone])[:, 4].tolist() == pytest.approx([0.9])
    assert p.merge('multiscale', [pair, lone])[:, 4].tolist() == pytest.approx([0.95, 0.9])


def test_post_process_nms_and_keep_top_overrides():
    """Two boxes at IoU 1/3: NMS 0.4 keeps both, 0.3 one; keep-top 1 keeps one."""
    scores = paddle.to_tensor([[0.9, 0.8]])
    boxes = paddle.to_tensor([[[0.0, 0, 20, 10], [10, 0, 30, 10]]])
    shape, scale = paddle.to_tensor([[100.0, 100.0]]), paddle.ones([1, 2])
    pp = HAMBoxPostProcess(nms_threshold=0.4, keep_top_k=750)
    assert pp(scores, boxes, shape, scale)[1].tolist() == [2]
    assert pp(scores, boxes, shape, scale, nms_threshold=0.3)[1].tolist() == [1]
    assert pp(scores, boxes, shape, scale, keep_top_k=1)[1].tolist() == [1]
    assert (pp.nms_threshold, pp.keep_top_k) == (0.4, 750)


def test_predictor_runs_each_pass_with_its_nms():
    """A pyramidbox pass's boxes are those of the model's post-process called
    with NMS 0.3 and keep-top 750."""
    model, cfg = tiny_model(), demo_cfg()
    image = cv2.imread(str(val_images()[0]))
    predictor = Predictor(model, cfg, 'pyramidbox')
    scale_pass = predictor.settings.passes('pyramidbox', *image.shape[:2])[0]
    got = predictor.pass_boxes(image, scale_pass)
    batch = predictor.prepare(image, scale_pass.scale)
    model.eval()
    with paddle.no_grad():
        scores, boxes = model.decoded(batch['image'])
        want, _ = model.post_process(scores, boxes, batch['im_shape'], batch['scale_factor'],
                                     score_threshold=0.01, nms_threshold=0.3, keep_top_k=750)
        loose, _ = model.post_process(scores, boxes, batch['im_shape'], batch['scale_factor'], score_threshold=0.01)
    np.testing.assert_array_equal(got, want.numpy().reshape(-1, 6))
    assert len(got) < len(loose.numpy().reshape(-1, 6)), 'NMS 0.3 should remove boxes NMS 0.4 keeps'
