"""Anchor statistics (paper Fig. 1): windowed counts against brute force and hand cases."""
import math

import numpy as np
import pytest

from ppdet_hambox.analysis import anchor_stats as A
from ppdet_hambox.core.errors import run_tool


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


def test_per_face_image_shapes_group_like_single_shapes():
    rng = np.random.default_rng(5)
    boxes = _random_faces(rng, 80, 100.0, 150.0)
    shapes = A.anchor_shapes('single', 0.68, sizes=(16, 32, 64))
    per_face = np.where(np.arange(80)[:, None] % 2 == 0, [[128, 160]], [[96, 200]])
    counts = A.match_counts(boxes, shapes, (4, 8, 16), image_shape=per_face)
    even = A.match_counts(boxes[::2], shapes, (4, 8, 16), image_shape=(128, 160))
    odd = A.match_counts(boxes[1::2], shapes, (4, 8, 16), image_shape=(96, 200))
    np.testing.assert_array_equal(counts[::2], even)
    np.testing.assert_array_equal(counts[1::2], odd)
    with pytest.raises(ValueError, match='image_shape per face'):
        A.match_counts(boxes, shapes, (4, 8, 16), image_shape=per_face[:5])


def _geometric_pipeline(decode):
    from ppdet_hambox.data.transform.crop import DataAnchorSampling, RandomSquareCrop
    from ppdet_hambox.data.transform.spatial import RandomFlip, Resize

    return [decode,
            DataAnchorSampling(prob=0.5, target_size=320, fallback=RandomSquareCrop(target_size=320)),
            RandomFlip(prob=0.5), Resize(target_size=[320, 320])]


def test_blank_decode_gives_the_faces_of_real_decoding(sample_val_tree):
    from ppdet_hambox.analysis.train_faces import BlankDecode, header_image_sizes
    from ppdet_hambox.data.pipeline import TransformedDataset
    from ppdet_hambox.data.source.widerface import WIDERFaceDataset, read_wider_annotation
    from ppdet_hambox.data.transform.decode import Decode

    anno, image_dir = sample_val_tree
    sizes = header_image_sizes(read_wider_annotation(anno), image_dir)
    assert sizes[:, 1].tolist() == [1024] * 4
    dataset = WIDERFaceDataset(dataset_dir='', image_dir=str(image_dir), anno_path=str(anno))
    real = TransformedDataset(dataset, _geometric_pipeline(Decode()), seed=11)
    blank = TransformedDataset(dataset, _geometric_pipeline(BlankDecode(sizes)), seed=11)
    for key in [(e, i) for e in range(3) for i in range(len(dataset))]:
        a, b = real[key], blank[key]
        np.testing.assert_array_equal(a['gt_bbox'], b['gt_bbox'])
        np.testing.assert_array_equal(a['im_shape'], b['im_shape'])
        assert not b['image'].any()


def test_train_protocol_faces_are_in_the_network_input(sample_val_tree, repo_root):
    import ppdet_hambox.components  # noqa: F401
    from ppdet_hambox.analysis.train_faces import estimate_image_sizes, train_faces
    from ppdet_hambox.core.workspace import load_config
    from ppdet_hambox.data.source.widerface import read_wider_annotation

    anno, _ = sample_val_tree
    sizes = estimate_image_sizes(read_wider_annotation(anno), assumed=(683, 1024))
    assert (sizes[:, 0] >= 683).all() and (sizes[:, 1] >= 1024).all()
    cfg = load_config(str(repo_root / 'configs' / 'datasets' / 'demo.yml'))
    size = next(op['Resize']['target_size'][0] for op in cfg.TrainReader.sample_transforms if 'Resize' in op)
    boxes, shapes, info = train_faces(cfg, anno, epochs=2, seed=3)
    assert info['samples'] == 8 and info['pipeline'][0] == 'BlankDecode'
    assert 'RandomDistort' in info['left_out_pixel_ops']
    assert len(boxes) > 50 and (shapes == size).all()
    assert boxes.min() >= 0 and boxes.max() <= size
    again, _, _ = train_faces(cfg, anno, epochs=2, seed=3)
    np.testing.assert_array_equal(boxes, again)
    other, _, _ = train_faces(cfg, anno, epochs=2, seed=4)
    assert len(other) != len(boxes) or not np.array_equal(other, boxes)


def _tool(repo_root):
    import importlib.util

    spec = importlib.util.spec_from_file_location('anchor_stats_tool', repo_root / 'tools' / 'anchor_stats.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tool_original_protocol_json_and_plot(tmp_path, repo_root):
    import json

    anno = tmp_path / 'gt.txt'
    anno.write_text('a/1.jpg\n3\n2 2 8 8 0 0 0 0 0 0 \n100 40 60 70 0 0 0 1 0 0 \n'
                    '5 5 0 9 0 0 0 0 0 0 \nb/2.jpg\n0\n0 0 0 0 0 0 0 0 0 0 \n'
                    'c/3.jpg\n1\n300 200 3 2 0 0 0 0 0 0 \n')
    out = tmp_path / 'stats.json'
    result = _tool(repo_root).main(['--anno', str(anno), '--ratios', '0.5,1.0', '--json', str(out),
                                    '--plot', str(tmp_path / 'fig.png')])
    saved = json.loads(out.read_text())
    assert saved['protocol'] == 'original' and [r['ratio'] for r in saved['single']] == [0.5, 1.0]
    assert saved['face_set']['faces'] == 3 and saved['face_set']['invalid_faces_included'] == 1
    boxes = np.array([[2, 2, 10, 10], [100, 40, 160, 110], [300, 200, 303, 202]], dtype=np.float64)
    for design in ('single', 'multi'):
        for row in saved[design]:
            counts = A.match_counts(boxes, A.anchor_shapes(design, row['ratio']))
            assert row['matched'] == pytest.approx((counts > 0).mean())
            assert row == pytest.approx(dict(result[design][[0.5, 1.0].index(row['ratio'])]))
    assert saved['single'][0]['matched'] == pytest.approx(2 / 3)  # the 3x2 face matches nothing
    assert (tmp_path / 'fig.png').stat().st_size > 10_000


def test_tool_bad_annotation_is_a_clear_error(tmp_path, repo_root, capsys):
    anno = tmp_path / 'bad.txt'
    anno.write_text('a/1.jpg\n2\n1 2 3 4 0 0 0 0 0 0 \n1 2 x 4 0 0 0 0 0 0 \n')
    tool = _tool(repo_root)
    assert run_tool(tool.main, ['--anno', str(anno), '--ratios', '0.68']) == 2
    assert 'bad.txt:4' in capsys.readouterr().err
