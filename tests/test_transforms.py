"""Sample and batch transforms: boxes stay on their (drawn) faces, crops drop
faces by centre, data-anchor-sampling follows its distribution, shapes."""
import math

import numpy as np
import pytest
from scipy import stats

from drawn_faces import COLOURS, colour_extent, draw_faces, random_face_image
from ppdet_hambox.core.workspace import build_component_list
from ppdet_hambox.data.pipeline import sample_rng
from ppdet_hambox.data.transform.batch_operators import PadBatch, PadGT
from ppdet_hambox.data.transform.crop import DataAnchorSampling, RandomSquareCrop, _window_start, sample_face_size
from ppdet_hambox.data.transform.geometry import apply_crop
from ppdet_hambox.data.transform.normalize import Normalize, Permute
from ppdet_hambox.data.transform.photometric import RandomDistort
from ppdet_hambox.data.transform.spatial import RandomFlip, Resize, ResizeKeepRatio

ANCHORS = [16, 32, 64, 128, 256, 512]


def make_sample(image, boxes, ignore=None):
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    return {'image': image, 'gt_bbox': boxes,
            'gt_ignore': np.zeros(len(boxes), bool) if ignore is None else np.asarray(ignore),
            'im_shape': np.array(image.shape[:2], np.float32), 'scale_factor': np.ones(2, np.float32),
            'im_file': 'drawn.png'}


def colour_of(image, box):
    cx, cy = int(0.5 * (box[0] + box[2])), int(0.5 * (box[1] + box[3]))
    return image[cy, cx].astype(int)


def check_boxes_on_faces(out, colours, min_side=6):
    """Every output box covers exactly the visible pixels of one face colour."""
    image, boxes = out['image'], out['gt_bbox']
    seen = set()
    for box in boxes:
        w, h = box[2] - box[0], box[3] - box[1]
        if min(w, h) < min_side:
            continue
        distances = [np.abs(colour_of(image, box) - c).max() for c in colours]
        index = int(np.argmin(distances))
        assert distances[index] < 60, 'box {} centre is not on a face'.format(box)
        assert index not in seen, 'two boxes on face colour {}'.format(colours[index])
        seen.add(index)
        extent = colour_extent(image, colours[index])
        np.testing.assert_allclose(extent, box, atol=1.5)
    return len(seen)


TRAIN_CHAIN = [
    {'DataAnchorSampling': {'prob': 0.5, 'target_size': 192, 'min_size': 1.0,
                            'fallback': {'name': 'RandomSquareCrop', 'target_size': 192, 'min_size': 1.0}}},
    {'RandomFlip': {'prob': 0.5}},
    {'Resize': {'target_size': [160, 160]}},
]


def test_train_chain_keeps_boxes_on_drawn_faces():
    ops = build_component_list(TRAIN_CHAIN, {}, 'test')
    checked = 0
    for seed in range(40):
        rng = np.random.default_rng(1000 + seed)
        image, boxes = random_face_image(rng, int(rng.integers(120, 260)), int(rng.integers(120, 260)), 5)
        sample = make_sample(image, boxes)
        sample_rng_ = sample_rng(seed, 0, 0)
        for op in ops:
            sample = op(sample, sample_rng_)
        assert sample['image'].shape == (160, 160, 3) and sample['image'].dtype == np.uint8
        np.testing.assert_array_equal(sample['im_shape'], [160, 160])
        checked += check_boxes_on_faces(sample, COLOURS[:len(boxes)])
    assert checked > 60


def test_flip_moves_boxes_with_faces():
    image = draw_faces(50, 80, [[5, 10, 25, 30], [60, 5, 75, 45]])
    out = RandomFlip(prob=1.0)(make_sample(image, [[5, 10, 25, 30], [60, 5, 75, 45]]), sample_rng(0, 0, 0))
    np.testing.assert_array_equal(out['gt_bbox'], [[55, 10, 75, 30], [5, 5, 20, 45]])
    assert check_boxes_on_faces(out, COLOURS[:2]) == 2
    same = RandomFlip(prob=0.0)(make_sample(image, [[5, 10, 25, 30]]), sample_rng(0, 0, 0))
    np.testing.assert_array_equal(same['gt_bbox'], [[5, 10, 25, 30]])


def test_crop_drops_faces_whose_centre_is_outside():
    boxes = [[0, 0, 30, 30],      # centre (15, 15): inside the window starting at (10, 10)
             [0, 40, 18, 60],     # centre x 9 < 10: dropped although it overlaps
             [100, 100, 130, 130],  # centre (115, 115) outside [10, 110): dropped
             [60, 60, 61, 61],    # inside but 1 px: a tiny remnant, dropped
             [95, 20, 125, 40]]   # centre x 110 is the excluded edge: dropped
    image = draw_faces(140, 140, boxes)
    out = apply_crop(make_sample(image, boxes, ignore=[True, False, False, False, False]),
                     10, 10, 1.0, 100, 100, (0, 0, 0), min_size=2.0)
    np.testing.assert_allclose(out['gt_bbox'], [[0, 0, 20, 20]])
    np.testing.assert_array_equal(out['gt_ignore'], [True])
    assert out['image'].shape == (100, 100, 3)
    np.testing.assert_array_equal(out['image'][5, 5], COLOURS[0])


def test_crop_scales_and_pads_outside_the_image():
    image = draw_faces(40, 40, [[10, 10, 20, 20]])
    out = apply_crop(make_sample(image, [[10, 10, 20, 20]]), -20, -20, 2.0, 100, 100, (1, 2, 3), 0.0)
    np.testing.assert_allclose(out['gt_bbox'], [[60, 60, 80, 80]])
    np.testing.assert_array_equal(out['image'][2, 2], [1, 2, 3])
    np.testing.assert_allclose(out['scale_factor'], [2, 2])
    assert check_boxes_on_faces(out, COLOURS[:1]) == 1
    big = apply_crop(make_sample(image, [[10, 10, 20, 20]]), 5, 5, 8.0, 160, 160, (1, 2, 3), 0.0)
    np.testing.assert_allclose(big['gt_bbox'], [[40, 40, 120, 120]])
    assert check_boxes_on_faces(big, COLOURS[:1]) == 1
    small = apply_crop(make_sample(image, [[10, 10, 20, 20]]), 0, 0, 0.5, 30, 30, (1, 2, 3), 0.0)
    np.testing.assert_allclose(small['gt_bbox'], [[5, 5, 10, 10]])
    np.testing.assert_array_equal(small['image'][25, 25], [1, 2, 3])


def analytic_cdf(size, anchors, low=0.5, high=2.0):
    nearest = int(np.argmin(np.abs(np.asarray(anchors) - size)))
    choices = [anchors[k] for k in range(min(len(anchors) - 1, nearest + 1) + 1)]

    def cdf(x):
        x = np.asarray(x, dtype=np.float64)[..., None]
        a = np.asarray(choices, dtype=np.float64)
        return np.clip((x - low * a) / ((high - low) * a), 0, 1).mean(axis=-1)
    return cdf, len(choices)


@pytest.mark.parametrize('size,num_choices', [(5, 2), (40, 3), (300, 6), (700, 6)])
def test_sample_face_size_index_frequencies_and_support(size, num_choices):
    rng = np.random.default_rng(7)
    draws = [sample_face_size(size, rng, ANCHORS, (0.5, 2.0)) for _ in range(6000)]
    sizes = np.array([d[0] for d in draws])
    indices = np.array([d[1] for d in draws])
    counts = np.bincount(indices, minlength=6)
    assert counts[num_choices:].sum() == 0
    assert stats.chisquare(counts[:num_choices]).pvalue > 1e-3
    anchors = np.array(ANCHORS, dtype=float)[indices]
    assert np.all(sizes >= anchors / 2) and np.all(sizes <= anchors * 2)
    cdf, _ = analytic_cdf(size, ANCHORS)
    assert stats.kstest(sizes, cdf).pvalue > 1e-3


def test_data_anchor_sampling_face_size_distribution():
    """Through the whole operator: a 40x40 face (nearest anchor 32, index 1)
    ends up with a size distributed as the uniform mixture over anchors
    16, 32, 64 of U[a/2, 2a], fully inside the patch."""
    image = draw_faces(200, 240, [[100, 80, 140, 120]])
    op = DataAnchorSampling(prob=1.0, target_size=256, anchor_sizes=ANCHORS, min_size=0.0)
    sizes = []
    for seed in range(500):
        out = op(make_sample(image, [[100, 80, 140, 120]]), sample_rng(seed, 0, 0))
        assert out['image'].shape == (256, 256, 3)
        assert len(out['gt_bbox']) == 1
        box = out['gt_bbox'][0]
        assert box[0] >= 0 and box[1] >= 0 and box[2] <= 256 and box[3] <= 256
        sizes.append(math.sqrt((box[2] - box[0]) * (box[3] - box[1])))
        if seed < 20:
            check_boxes_on_faces(out, COLOURS[:1], min_side=4)
    cdf, _ = analytic_cdf(40, ANCHORS)
    assert stats.kstest(np.array(sizes), cdf).pvalue > 1e-3
    assert 8 * 0.99 <= min(sizes) and max(sizes) <= 128 * 1.01


def test_data_anchor_sampling_faces_on_the_image_border():
    # float32 edges a hair past the scaled image edge (found by the benchmark)
    start = _window_start(np.float32(4057.0122), np.float32(4088.9573), 4088.957157216599, 640,
                          np.random.default_rng(0))
    assert 4088.9573 - 640 <= start <= 4057.0122
    boxes = [[0, 0, 13, 11], [118, 86, 131, 97]]
    image = draw_faces(97, 131, boxes)
    op = DataAnchorSampling(prob=1.0, target_size=64, min_size=0.0)
    for seed in range(200):
        out = op(make_sample(image, boxes), sample_rng(seed, 0, 0))
        assert len(out['gt_bbox']) >= 1
        check_boxes_on_faces(out, COLOURS[:2], min_side=4)


def test_data_anchor_sampling_falls_through():
    image = draw_faces(100, 100, [[10, 10, 30, 30]])
    plain = DataAnchorSampling(prob=0.0)(make_sample(image, [[10, 10, 30, 30]]), sample_rng(0, 0, 0))
    assert plain['image'].shape == (100, 100, 3)
    fallback = DataAnchorSampling(prob=0.0, fallback=RandomSquareCrop(target_size=64))
    out = fallback(make_sample(image, [[10, 10, 30, 30]]), sample_rng(0, 0, 0))
    assert out['image'].shape == (64, 64, 3)
    empty = DataAnchorSampling(prob=1.0)(make_sample(image, np.zeros((0, 4))), sample_rng(0, 0, 0))
    assert empty['image'].shape == (100, 100, 3)


def test_random_square_crop_keeps_a_face_or_pads_whole_image():
    image = draw_faces(90, 300, [[280, 40, 290, 50]])
    for seed in range(30):
        out = RandomSquareCrop(target_size=100, min_size=1.0)(
            make_sample(image, [[280, 40, 290, 50]]), sample_rng(seed, 0, 0))
        assert out['image'].shape == (100, 100, 3)
        assert len(out['gt_bbox']) == 1
        check_boxes_on_faces(out, COLOURS[:1], min_side=3)
    hopeless = RandomSquareCrop(target_size=60, max_trials=0, min_size=0.0)
    out = hopeless(make_sample(image, [[280, 40, 290, 50]]), sample_rng(1, 0, 0))
    np.testing.assert_allclose(out['gt_bbox'], [[56, 8, 58, 10]], atol=1e-4)
    np.testing.assert_array_equal(out['image'][50, 30], [104, 117, 123])


def test_resize_modes_and_scale_factor():
    image = draw_faces(100, 200, [[20, 20, 60, 60]])
    fixed = Resize(target_size=[50, 50])(make_sample(image, [[20, 20, 60, 60]]))
    np.testing.assert_allclose(fixed['gt_bbox'], [[5, 10, 15, 30]])
    np.testing.assert_allclose(fixed['scale_factor'], [0.5, 0.25])
    np.testing.assert_array_equal(fixed['im_shape'], [50, 50])
    keep = Resize(target_size=[300, 300], keep_ratio=True, max_size=500)(make_sample(image, [[20, 20, 60, 60]]))
    assert keep['image'].shape == (250, 500, 3)
    np.testing.assert_allclose(keep['scale_factor'], [2.5, 2.5])
    np.testing.assert_allclose(keep['gt_bbox'], [[50, 50, 150, 150]])
    check_boxes_on_faces(keep, COLOURS[:1])


def test_resize_keep_ratio_protocols():
    image = draw_faces(300, 500, [[100, 100, 200, 180]])
    vga = ResizeKeepRatio(target_area=640 * 480)(make_sample(image, [[100, 100, 200, 180]]))
    h, w = vga['image'].shape[:2]
    assert abs(h * w - 640 * 480) < 0.01 * 640 * 480
    np.testing.assert_allclose(vga['scale_factor'], [h / 300, w / 500], rtol=1e-6)
    np.testing.assert_allclose(vga['gt_bbox'] / np.tile(vga['scale_factor'][::-1], 2),
                               [[100, 100, 200, 180]], rtol=1e-5)
    check_boxes_on_faces(vga, COLOURS[:1])
    capped = ResizeKeepRatio(scale=2.0, max_side=800)(make_sample(image, [[100, 100, 200, 180]]))
    assert capped['image'].shape[:2] == (480, 800)
    same = ResizeKeepRatio()(make_sample(image, [[100, 100, 200, 180]]))
    assert same['image'] is image
    with pytest.raises(ValueError, match='interp'):
        ResizeKeepRatio(interp='bogus')


def test_random_distort_changes_colours_not_geometry():
    image = draw_faces(60, 80, [[10, 10, 30, 30]])
    op = RandomDistort(prob=1.0)
    out = op(make_sample(image.copy(), [[10, 10, 30, 30]]), sample_rng(3, 0, 0))
    assert out['image'].shape == image.shape and out['image'].dtype == np.uint8
    assert np.abs(out['image'].astype(int) - image).max() > 5
    np.testing.assert_array_equal(out['gt_bbox'], [[10, 10, 30, 30]])
    again = op(make_sample(image.copy(), [[10, 10, 30, 30]]), sample_rng(3, 0, 0))
    np.testing.assert_array_equal(out['image'], again['image'])
    untouched = RandomDistort(prob=0.0)(make_sample(image.copy(), [[10, 10, 30, 30]]), sample_rng(3, 0, 0))
    np.testing.assert_array_equal(untouched['image'], image)


def test_normalize_and_permute():
    image = np.zeros((2, 3, 3), np.uint8)
    image[..., 0] = 255  # blue in BGR
    out = Normalize(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5], to_rgb=True)(make_sample(image, []))
    assert out['image'].dtype == np.float32
    np.testing.assert_allclose(out['image'][0, 0], [-1, -1, 1], atol=1e-6)
    chw = Permute()(out)['image']
    assert chw.shape == (3, 2, 3) and chw.flags['C_CONTIGUOUS']
    np.testing.assert_allclose(chw[:, 0, 0], [-1, -1, 1], atol=1e-6)


def test_pad_gt_shapes_and_mask():
    samples = [make_sample(np.zeros((4, 4, 3), np.uint8), [[1, 1, 2, 2], [0, 0, 3, 3]], ignore=[False, True]),
               make_sample(np.zeros((4, 4, 3), np.uint8), [])]
    out = PadGT(return_ignore=True)([dict(s) for s in samples])
    assert out[0]['gt_bbox'].shape == (2, 4) and out[1]['gt_bbox'].shape == (2, 4)
    np.testing.assert_array_equal(out[0]['gt_mask'], [1, 1])
    np.testing.assert_array_equal(out[1]['gt_mask'], [0, 0])
    np.testing.assert_array_equal(out[1]['gt_bbox'], np.zeros((2, 4)))
    np.testing.assert_array_equal(out[0]['gt_ignore'], [0, 1])
    empty = PadGT()([dict(samples[1])])
    assert empty[0]['gt_bbox'].shape == (1, 4) and empty[0]['gt_mask'].tolist() == [0.0]
    assert 'gt_ignore' not in empty[0]


def test_pad_batch_to_stride():
    samples = [{'image': np.ones((3, 30, 50), np.float32)}, {'image': np.ones((3, 40, 20), np.float32)}]
    out = PadBatch(pad_to_stride=32)(samples)
    assert [s['image'].shape for s in out] == [(3, 64, 64), (3, 64, 64)]
    assert out[0]['image'][:, :30, :50].min() == 1 and out[0]['image'][:, 30:].max() == 0
    with pytest.raises(ValueError, match='Permute'):
        PadBatch()([{'image': np.ones((4, 4), np.float32)}])
