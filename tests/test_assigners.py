"""Assigners: the fast batched code equals the slow literal references on
hundreds of random crowded cases, plus hand-made cases for each rule."""
import numpy as np
import paddle
import pytest

from ppdet_hambox.core.workspace import create
from ppdet_hambox.modeling.assigners import (
    DMSAssigner, HAMBoxAssigner, NAMSAssigner, SMSAssigner, dms_assign, hambox_assign, nams_assign, sms_assign)
from ppdet_hambox.modeling.box_coder import BoxCoder
from reference_assigners import dms_ref, hambox_ref, iou_matrix, nams_ref, sms_ref


def _boxes(rng, n, canvas, lo, hi):
    xy = rng.integers(0, canvas, size=(n, 2))
    wh = rng.integers(lo, hi + 1, size=(n, 2))
    return np.concatenate([xy, xy + wh], -1).astype('float32')


def random_image(rng, num_anchors=96, max_faces=10, canvas=40):
    """Crowded image on integer coordinates: duplicate anchors and faces and
    exactly equal IoUs are common; decoded boxes are jittered copies of faces
    (so mining finds candidates) or of anchors."""
    anchors = _boxes(rng, num_anchors, canvas, 3, 14)
    dup = rng.random(num_anchors) < 0.15
    anchors[dup] = anchors[rng.integers(0, num_anchors, size=dup.sum())]
    num_faces = int(rng.integers(0, max_faces + 1))
    faces = _boxes(rng, num_faces, canvas, 4, 16)
    if num_faces > 1:
        dup = rng.random(num_faces) < 0.25
        faces[dup] = faces[rng.integers(0, num_faces, size=dup.sum())]
    pred = anchors + rng.integers(-1, 2, size=anchors.shape).astype('float32')
    if num_faces:
        near = rng.random(num_anchors) < 0.5
        pred[near] = faces[rng.integers(0, num_faces, size=near.sum())] + \
            rng.integers(-1, 2, size=(near.sum(), 4)).astype('float32')
    pred[:, 2:] = np.maximum(pred[:, 2:], pred[:, :2] + 1)
    return anchors, pred, faces


def assert_same(fast, ref, case):
    np.testing.assert_array_equal(fast['labels'], ref['labels'], err_msg=case)
    np.testing.assert_array_equal(fast['gt_index'], ref['gt_index'], err_msg=case)
    np.testing.assert_allclose(fast['quality'], ref['quality'], rtol=1e-6, atol=1e-7, err_msg=case)


PARAMS = [dict(pos_iou=0.35, K=3, T=0.8, ignore_iou=0.5), dict(pos_iou=0.5, K=5, T=0.6, ignore_iou=0.7),
          dict(pos_iou=0.35, K=1, T=0.5, ignore_iou=1.5), dict(pos_iou=0.3, K=8, T=0.7, ignore_iou=0.4),
          dict(pos_iou=0.35, K=0, T=0.8, ignore_iou=0.5), dict(pos_iou=0.6, K=4, T=0.9, ignore_iou=0.5)]


@pytest.mark.parametrize('params', PARAMS)
def test_hambox_batched_equals_reference(params):
    """60 images per parameter set (360 in all) in padded batches of 12 with
    the padding at random positions, not only at the end."""
    rng = np.random.default_rng(PARAMS.index(params))
    assigner = HAMBoxAssigner(**params)
    compensated = 0
    for _ in range(5):
        images = [random_image(rng) for _ in range(12)]
        anchors = images[0][0]  # the batch shares its anchors
        max_faces = max(len(f) for _, _, f in images) + 2
        gt_bbox = np.zeros((12, max_faces, 4), 'float32')
        gt_mask = np.zeros((12, max_faces), 'float32')
        slots = []
        for b, (_, _, faces) in enumerate(images):
            slot = np.sort(rng.choice(max_faces, size=len(faces), replace=False))
            gt_bbox[b, slot] = faces
            gt_bbox[b, np.setdiff1d(np.arange(max_faces), slot)] = rng.uniform(0, 30, 4)  # junk padding
            gt_mask[b, slot] = 1
            slots.append(slot)
        pred = np.stack([p for _, p, _ in images])
        out = {k: v.numpy() for k, v in assigner(anchors, pred, gt_bbox, gt_mask).tensors().items()}
        for b, (_, p, faces) in enumerate(images):
            ref = hambox_ref(anchors, p, faces, **params)
            ref['gt_index'] = np.append(slots[b], -1)[ref['gt_index']]  # -1 stays -1
            assert_same({k: v[b] for k, v in out.items()}, ref, '{} image {}'.format(params, b))
            compensated += int((ref['labels'] == 2).sum())
    if params['K'] > 0:
        assert compensated > 20, 'random cases should exercise the mining'


def test_tiled_scan_equals_reference():
    """Tiny anchor tiles (so every scan runs many tiles) change nothing."""
    rng = np.random.default_rng(11)
    for case in range(20):
        anchors, pred, faces = random_image(rng, num_anchors=80, max_faces=12)
        assert_same(hambox_assign(anchors, pred, faces, T=0.6, tile_bytes=148),
                    hambox_ref(anchors, pred, faces, T=0.6), str(case))
        assert_same(nams_assign(anchors, faces, tile_bytes=148), nams_ref(anchors, faces), str(case))


def test_hambox_functional_equals_reference_with_ties():
    """One image at a time through the functional API, 100 images."""
    rng = np.random.default_rng(100)
    for case in range(100):
        anchors, pred, faces = random_image(rng, num_anchors=64, max_faces=14, canvas=30)
        K, T = int(rng.integers(1, 6)), float(rng.choice([0.5, 0.6, 0.75, 0.8]))
        fast = hambox_assign(anchors, pred, faces, K=K, T=T)
        assert_same(fast, hambox_ref(anchors, pred, faces, K=K, T=T), 'case {}'.format(case))


def test_hambox_deep_conflict_chain_needs_many_rounds():
    """Eight copies of one face, none matched in step one, all wanting the
    same decoded boxes: face i must get candidates 3i..3i+2 in ranking order."""
    face = np.array([[10., 10., 30., 30.]], 'float32')
    faces = np.repeat(face, 8, axis=0)
    num_anchors = 40
    anchors = np.tile(np.array([[100., 100., 104., 104.]], 'float32'), (num_anchors, 1))
    shrink = np.arange(num_anchors, dtype='float32')[:, None] * np.array([[0, 0, -0.1, 0]], 'float32')
    pred = face + shrink  # IoU decreases with the anchor index: 1, 0.995, ...
    pred[::2] = pred[1::2]  # pairs of exactly equal IoU: the lower index ranks first
    assigner = HAMBoxAssigner(K=3, T=0.5)
    out = assigner(anchors, pred[None], faces[None], np.ones((1, 8), 'float32'))
    got = {k: v.numpy()[0] for k, v in out.tensors().items()}
    assert_same(got, hambox_ref(anchors, pred, faces, K=3, T=0.5), 'chain')
    np.testing.assert_array_equal(got['gt_index'][:24], np.repeat(np.arange(8), 3))
    assert np.all(got['labels'][:24] == 2)
    assert out.rounds >= 8


def test_hambox_hand_case():
    """Face 0 matches one anchor in step one (D=1, wants 2 more); face 1
    matches none (wants 3). Both decoded boxes 2 and 3 fit both faces; face 0
    comes first, so face 1 only gets anchor 4. Anchor 5 decodes onto face 1
    with IoU exactly 55/110 = 0.5 = T (face 0: 45/110): not taken (strict)
    but ignored (>= 0.5)."""
    anchors = np.array([[0, 0, 10, 10], [50, 50, 60, 60], [60, 60, 70, 70], [70, 70, 80, 80],
                        [80, 80, 90, 90], [90, 90, 100, 100], [200, 200, 210, 210]], 'float32')
    faces = np.array([[0, 0, 10, 10], [0, 0, 10, 11]], 'float32')
    pred = np.array([[0, 0, 10, 10], [200, 200, 201, 201], [0, 0, 10, 10.5], [0, 0, 10, 10.5],
                     [0, 0, 10, 11], [0, 5.5, 10, 11], [300, 300, 310, 310]], 'float32')
    out = hambox_assign(anchors, pred, faces, K=3, T=0.5, ignore_iou=0.5)
    np.testing.assert_array_equal(out['labels'], [1, 0, 2, 2, 2, -1, 0])
    np.testing.assert_array_equal(out['gt_index'], [0, -1, 0, 0, 1, -1, -1])
    np.testing.assert_allclose(out['quality'], [1, 0, 1 / 1.05, 1 / 1.05, 1, 0.5, 0], rtol=1e-6)


def test_hambox_no_faces_and_faces_without_candidates():
    anchors = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], 'float32')
    out = hambox_assign(anchors, anchors, np.zeros((0, 4), 'float32'))
    np.testing.assert_array_equal(out['labels'], [0, 0])
    np.testing.assert_array_equal(out['gt_index'], [-1, -1])
    np.testing.assert_array_equal(out['quality'], [0, 0])
    # a face far from every decoded box: outer, but nothing to compensate
    out = hambox_assign(anchors, anchors, np.array([[100, 100, 120, 120]], 'float32'))
    np.testing.assert_array_equal(out['labels'], [0, 0])
    # a batch whose faces are all padding
    out = HAMBoxAssigner()(anchors, anchors[None], np.ones((1, 2, 4), 'float32') * 5, np.zeros((1, 2)))
    assert out.labels.numpy().tolist() == [[0, 0]] and out.quality.numpy().max() == 0


@pytest.mark.parametrize('name,fast,ref', [('sms', sms_assign, sms_ref), ('dms', dms_assign, dms_ref),
                                           ('nams', nams_assign, nams_ref)])
def test_offline_assigners_equal_reference(name, fast, ref):
    rng = np.random.default_rng(7)
    for case in range(60):
        anchors, pred, faces = random_image(rng, num_anchors=80, max_faces=10)
        pos_iou = float(rng.choice([0.35, 0.5, 0.7]))
        use_pred = case % 2 == 0
        got = fast(anchors, faces, pos_iou=pos_iou, pred_boxes=pred if use_pred else None)
        want = ref(anchors, faces, pos_iou=pos_iou, pred_boxes=pred if use_pred else None)
        assert_same(got, want, '{} case {}'.format(name, case))


def test_sms_hand_case_ties_go_to_lower_face():
    anchors = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [40, 40, 50, 50]], 'float32')
    faces = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [5, 0, 15, 10]], 'float32')
    out = sms_assign(anchors, faces)
    np.testing.assert_array_equal(out['labels'], [1, 1, 0])
    np.testing.assert_array_equal(out['gt_index'], [0, 2, -1])
    np.testing.assert_allclose(out['quality'], [1, 1, 0])
    # IoU exactly at the threshold is positive: [0,0,10,10] vs [0,0,10,5] = 0.5
    out = sms_assign(np.array([[0, 0, 10, 5]], 'float32'), faces[:1], pos_iou=0.5)
    assert out['labels'].tolist() == [1]


def test_dms_hand_case():
    """Face 0 matches anchor 0. Faces 1 and 2 (identical) match nothing at
    pos_iou 0.95; anchors 1 and 2 tie at IoU 90/110 with them: face 1 takes
    the lower index (1), face 2 the next one (2). Anchor 3 does not overlap."""
    anchors = np.array([[0, 0, 10, 10], [20, 0, 30, 10], [22, 0, 32, 10], [60, 0, 70, 10]], 'float32')
    faces = np.array([[0, 0, 10, 10], [21, 0, 31, 10], [21, 0, 31, 10], [100, 0, 110, 10]], 'float32')
    out = dms_assign(anchors, faces, pos_iou=0.95)
    np.testing.assert_array_equal(out['labels'], [1, 1, 1, 0])
    np.testing.assert_array_equal(out['gt_index'], [0, 1, 2, -1])
    np.testing.assert_allclose(out['quality'], [1, 90 / 110, 90 / 110, 0], rtol=1e-6)


def test_nams_hand_case():
    """D = [3, 0], so N = round(1.5) = 2: face 1 gets anchors 3 (IoU 0.3) and
    4 (IoU 0.2) but not 5 (IoU 0.05 <= 0.1)."""
    anchors = np.array([[0, 0, 10, 10], [0, 0, 10, 9], [0, 0, 9, 10],
                        [100, 0, 103, 10], [100, 0, 102, 10], [100, 0, 100.5, 10]], 'float32')
    faces = np.array([[0, 0, 10, 10], [100, 0, 110, 10]], 'float32')
    out = nams_assign(anchors, faces)
    np.testing.assert_array_equal(out['labels'], [1, 1, 1, 1, 1, 0])
    np.testing.assert_array_equal(out['gt_index'], [0, 0, 0, 1, 1, -1])
    np.testing.assert_allclose(out['quality'], [1, 0.9, 0.9, 0.3, 0.2, 0.05], rtol=1e-6)


def test_reference_iou_matches_paddle_bit_for_bit():
    from ppdet_hambox.modeling.box_coder import bbox_iou
    rng = np.random.default_rng(3)
    a = rng.uniform(0, 50, size=(30, 4)).astype('float32')
    a[:, 2:] += a[:, :2]
    b = rng.uniform(0, 50, size=(20, 4)).astype('float32')
    b[:, 2:] += b[:, :2]
    np.testing.assert_array_equal(bbox_iou(paddle.to_tensor(b), paddle.to_tensor(a)).numpy(), iou_matrix(b, a))


def test_assigners_carry_no_gradient():
    coder = BoxCoder()
    anchors = paddle.to_tensor([[0., 0., 10., 10.], [5., 5., 15., 15.]])
    deltas = paddle.zeros([1, 2, 4])
    deltas.stop_gradient = False
    pred = coder.decode(anchors, deltas)  # not detached on purpose
    out = HAMBoxAssigner(T=0.1)(anchors, pred, paddle.to_tensor([[[4., 4., 14., 14.]]]), paddle.ones([1, 1]))
    assert all(v.stop_gradient for v in out.tensors().values())


def test_registry_and_config_errors():
    assigner = create('HAMBoxAssigner', {'HAMBoxAssigner': {'K': 5, 'T': 0.7}})
    assert (assigner.K, assigner.T, assigner.pos_iou) == (5, 0.7, 0.35)
    assert isinstance(create('SMSAssigner', {}), SMSAssigner)
    assert isinstance(create('DMSAssigner', {}), DMSAssigner)
    assert create('NAMSAssigner', {'NAMSAssigner': {'cand_iou': 0.2}}).cand_iou == 0.2
    with pytest.raises(ValueError, match='HAMBoxAssigner.T'):
        HAMBoxAssigner(T=1.5)
    with pytest.raises(ValueError, match='HAMBoxAssigner.K'):
        HAMBoxAssigner(K=-1)
    with pytest.raises(ValueError, match='pos_iou'):
        SMSAssigner(pos_iou=0)
    with pytest.raises(ValueError, match='pred_boxes is required'):
        HAMBoxAssigner()(np.zeros((2, 4)), None, np.zeros((1, 1, 4)), np.ones((1, 1)))
    with pytest.raises(ValueError, match='gt_bbox'):
        SMSAssigner()(np.zeros((2, 4)), None, np.zeros((1, 4)), np.ones((1, 1)))


def test_second_step_and_compensated_anchors_are_told_apart():
    """DMS / NAMS label their second-step anchors 1 and mark them in
    ``second_step``; HAMBox labels its compensated anchors 2; SMS and HAMBox
    have no second-step mask."""
    from ppdet_hambox.modeling.assigners import DMSAssigner, NAMSAssigner
    anchors = np.array([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]], dtype='float32')
    faces = np.array([[0, 0, 10, 10], [19, 0, 23, 4]], dtype='float32')   # face 1: IoU 12/104 with anchor 1
    assert 'second_step' not in sms_assign(anchors, faces)
    dms = dms_assign(anchors, faces)
    assert dms['labels'].tolist() == [1, 1, 0] and dms['second_step'].tolist() == [False, True, False]
    batched = DMSAssigner()(anchors, None, faces[None], np.ones((1, 2), 'float32'))
    assert batched.step_one.numpy().tolist() == [[True, False, False]]
    assert not batched.compensated.numpy().any() and batched.positive.numpy().tolist() == [[True, True, False]]
    assert 'second_step' in nams_assign(anchors, faces) and NAMSAssigner.has_second_step
    decoded = np.array([[0, 0, 10, 10], [19, 0, 23, 4], [60, 0, 70, 10]], dtype='float32')
    mined = HAMBoxAssigner(K=1, T=0.8)(anchors, decoded[None], faces[None], np.ones((1, 2), 'float32'))
    assert mined.labels.numpy().tolist() == [[1, 2, 0]] and mined.second_step is None
    assert mined.compensated.numpy().tolist() == [[False, True, False]]
    assert mined.step_one.numpy().tolist() == [[True, False, False]]
