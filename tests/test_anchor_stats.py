"""Anchor statistics (paper Fig. 1): windowed counts against brute force and hand cases."""
import math

import numpy as np
import pytest

from ppdet_hambox.analysis import anchor_stats as A


def _brute_counts(boxes, anchor_wh, strides, iou_thr, image_shape=None):
    """Every anchor of a grid wide enough to reach every face, full IoU matrix."""
    boxes = np.asarray(boxes, dtype=np.float64)
    counts = np.zeros(len(boxes), dtype=np.int64)
    extent = boxes[:, 2:].max() + 2 * max(float(np.max(s)) for s in anchor_wh)
    for shapes, stride in zip(anchor_wh, strides):
        nx = ny = int(math.ceil(extent / stride)) + 2
        if image_shape is not None:
            ny = math.ceil(image_shape[0] / stride)
            nx = math.ceil(image_shape[1] / stride)
        xs, ys = np.meshgrid((np.arange(nx) + 0.5) * stride, (np.arange(ny) + 0.5) * stride)
        for aw, ah in shapes:
            anchors = np.stack([xs.ravel() - aw / 2, ys.ravel() - ah / 2,
                                xs.ravel() + aw / 2, ys.ravel() + ah / 2], axis=1)
            iw = np.clip(np.minimum(boxes[:, None, 2], anchors[None, :, 2])
                         - np.maximum(boxes[:, None, 0], anchors[None, :, 0]), 0, None)
            ih = np.clip(np.minimum(boxes[:, None, 3], anchors[None, :, 3])
                         - np.maximum(boxes[:, None, 1], anchors[None, :, 1]), 0, None)
            inter = iw * ih
            area_b = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
            iou = inter / (area_b[:, None] + aw * ah - inter)
            counts += (iou >= iou_thr).sum(axis=1)
    return counts


def _random_faces(rng, n, max_side, extent):
    side = np.exp(rng.uniform(np.log(1.0), np.log(max_side), n))
    aspect = np.exp(rng.uniform(np.log(0.4), np.log(2.5), n))
    w, h = side * np.sqrt(aspect), side / np.sqrt(aspect)
    x1 = rng.uniform(-0.2 * extent, extent, n)
    y1 = rng.uniform(-0.2 * extent, extent, n)
    return np.stack([x1, y1, x1 + w, y1 + h], axis=1)


@pytest.mark.parametrize('design,ratio', [('single', 0.68), ('single', 1.2), ('multi', 0.43)])
def test_windowed_counts_match_brute_force(design, ratio):
    rng = np.random.default_rng(7)
    boxes = _random_faces(rng, 150, 300.0, 200.0)
    shapes = A.anchor_shapes(design, ratio, sizes=(16, 32, 64, 128))
    strides = (4, 8, 16, 32)
    fast = A.match_counts(boxes, shapes, strides, iou_thr=0.35)
    brute = _brute_counts(boxes, shapes, strides, 0.35)
    np.testing.assert_array_equal(fast, brute)
    assert brute.sum() > 0 and (brute == 0).any()


def test_windowed_counts_match_brute_force_in_bounded_image():
    rng = np.random.default_rng(3)
    boxes = _random_faces(rng, 120, 120.0, 150.0)
    shapes = A.anchor_shapes('single', 0.68, sizes=(16, 32, 64))
    fast = A.match_counts(boxes, shapes, (4, 8, 16), image_shape=(128, 160))
    brute = _brute_counts(boxes, shapes, (4, 8, 16), 0.35, image_shape=(128, 160))
    np.testing.assert_array_equal(fast, brute)
    unbounded = A.match_counts(boxes, shapes, (4, 8, 16))
    assert (unbounded >= fast).all() and (unbounded > fast).any()


def test_hand_case_exact_anchor_and_its_neighbours():
    # an 8x8 face exactly on the stride-4 anchor of side 8 centred at (6, 6); the four
    # neighbours one stride away have IoU 32 / 96 = 1/3, the diagonals 16 / 112; the best
    # stride-8 anchor (side 16, centre (4, 4)) has 64 / 256.
    face = np.array([[2.0, 2.0, 10.0, 10.0]])
    shapes = A.anchor_shapes('single', 0.5, sizes=(16, 32))
    assert A.match_counts(face, shapes, (4, 8), iou_thr=0.35).tolist() == [1]
    assert A.match_counts(face, shapes, (4, 8), iou_thr=0.30).tolist() == [5]
    assert A.match_counts(face, shapes, (4, 8), iou_thr=0.25).tolist() == [6]


def test_hand_case_tiny_face_and_grid_bounds():
    shapes = A.anchor_shapes('single', 0.68)
    tiny = np.array([[100.0, 100.0, 102.0, 102.0]])  # 4 px^2 against 118 px^2 anchors
    assert A.match_counts(tiny, shapes).tolist() == [0]
    # a face beyond the right edge of a 640-wide image has anchors only on an unbounded grid
    outside = np.array([[650.0, 100.0, 666.0, 116.0]])
    assert A.match_counts(outside, shapes).item() > 0
    assert A.match_counts(outside, shapes, image_shape=(640, 640)).item() == 0


def test_multi_design_shapes_and_summary():
    shapes = A.anchor_shapes('multi', 1.0, sizes=(16,))
    assert shapes[0].shape == (9, 2)
    areas = shapes[0].prod(axis=1)
    np.testing.assert_allclose(sorted(set(np.round(areas, 6))),
                               [256.0, 256.0 * 2 ** (2 / 3), 256.0 * 2 ** (4 / 3)])
    summary = A.summarize(np.array([0, 2, 4, 0]))
    assert summary == {'matched': 0.5, 'anchors_per_matched_face': 3.0, 'anchors_per_face': 1.5}


def test_bad_boxes_are_rejected():
    with pytest.raises(ValueError, match='positive width and height'):
        A.match_counts(np.array([[5.0, 5.0, 5.0, 9.0]]), A.anchor_shapes('single', 1.0))
    with pytest.raises(ValueError, match='unknown anchor design'):
        A.anchor_shapes('triple', 1.0)
