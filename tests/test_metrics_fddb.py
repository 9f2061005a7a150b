"""FDDB ROC: rasterised ratios, Hungarian matching, threshold sweep, conversions, files, real folds."""
import json

import numpy as np
import pytest

from ppdet_hambox.metrics import fddb as F

CIRCLE_A = [2, 2, 0, 5, 5]     # radius 2 at (5, 5): 1 + 3 + 5 + 3 + 1 = 13 pixels
CIRCLE_B = [2, 2, 0, 10, 10]


def write_folds(folder, images):
    """A fold 01 of [(path, [ellipse, ...])]."""
    folder.mkdir(parents=True, exist_ok=True)
    text = ''.join('{}\n{}\n{}'.format(p, len(es), ''.join(' '.join(map(str, e)) + ' 1\n' for e in es))
                   for p, es in images)
    (folder / 'FDDB-fold-01-ellipseList.txt').write_text(text)
    (folder / 'FDDB-fold-01.txt').write_text(''.join(p + '\n' for p, _ in images))
    return folder


def test_rasterised_areas():
    rows = np.arange(20, dtype=np.float64)
    xl, xr = F.ellipse_runs(np.array(CIRCLE_A), rows, 20)
    assert np.maximum(xr - xl + 1, 0).sum() == 13
    assert (xl[5], xr[5]) == (3, 7) and (xl[3], xr[3]) == (5, 5)
    # x from ceil(1.2) = 2 to 4, rows 0 and 1: 6 pixels; clipped at the image border (width 3): x 2 only
    xl, xr = F.rect_runs(np.array([1.2, 0, 3, 2]), rows, 20)
    assert np.maximum(xr - xl + 1, 0).sum() == 6
    xl, xr = F.rect_runs(np.array([1.2, 0, 3, 2]), rows, 3)
    assert np.maximum(xr - xl + 1, 0).sum() == 2
    areas = F.region_areas(np.array([CIRCLE_A, CIRCLE_B]), True, np.array([20, 11]), np.array([20, 20]))
    assert areas.tolist() == [13, 9]  # the second circle cut at x = 10 (image width 11): 1 + 2 + 3 + 2 + 1


def test_region_ratios_by_hand():
    # rect 3..7 x 3..7 (25 px) holds the whole circle: 13/25; rect rows 3..6 (20 px) loses the
    # circle's bottom pixel: 12 / (13 + 20 - 12); a far rect: 0.
    rects = np.array([[3, 3, 5, 5], [3, 3, 5, 4], [15, 15, 3, 3]], dtype=np.float64)
    r = F.region_ratios(np.array([CIRCLE_A], dtype=np.float64), rects, False, 20, 20)
    assert r[0] == pytest.approx([13 / 25, 12 / 21, 0.0])
    # an upright ellipse equal to the face: ratio 1; rotated by pi (same region): 1
    e = np.array([[4, 2, np.pi / 2, 10, 10]])
    assert F.region_ratios(e, np.array([[4, 2, -np.pi / 2, 10, 10]]), True, 20, 20)[0, 0] == pytest.approx(1)


def test_rotated_ellipse_matches_a_pixel_mask():
    e = np.array([[7.3, 3.1, 0.6, 9.4, 8.2]])
    ys, xs = np.mgrid[0:20, 0:20]
    dx, dy = xs - e[0, 3], ys - e[0, 4]
    u = dx * np.cos(0.6) + dy * np.sin(0.6)
    v = -dx * np.sin(0.6) + dy * np.cos(0.6)
    mask = (u / 7.3) ** 2 + (v / 3.1) ** 2 <= 1
    xl, xr = F.ellipse_runs(e[0], np.arange(20.0), 20)
    runs = np.zeros((20, 20), dtype=bool)
    for y in range(20):
        runs[y, xl[y]:xr[y] + 1] = xl[y] <= xr[y]
    assert np.array_equal(runs, mask)


def test_hungarian_not_greedy_and_threshold_levels():
    # faces A, B; det1 (score .9): A .9, B .6; det2 (.8): A .7, B 0.
    # Level .9: det1-A: TP 1, cont .9, FP 0. Level .8: maximum weight det1-B + det2-A = 1.3 > .9:
    # TP 2, cont 1.3, FP 0 (greedy would keep det1-A and make det2 a FP).
    ratios = np.array([[0.9, 0.7], [0.6, 0.0]])
    levels = F.image_levels(ratios, np.array([0.9, 0.8]))
    assert np.allclose(levels, [[0.9, 1, 0.9, 0], [0.8, 2, 1.3, 0]])


def test_ratio_of_one_half_is_not_a_match():
    levels = F.image_levels(np.array([[0.5, 0.0]]), np.array([0.9, 0.4]))
    assert levels[:, 1].tolist() == [0, 0] and levels[:, 3].tolist() == [1, 2]


def test_evaluate_by_hand(tmp_path):
    # a: circle A; D1 (3,3,5,5) .9 ratio .52 TP, D2 far .8 FP.
    # b: circle B; D3 (8,8,5,5) .85 ratio .52; D4 (9,9,3,3) .7 ratio 9/13: at t .7 the single face
    #    takes D4 (larger ratio) and D3 becomes a FP.
    # t .9: TP 1, cont .52, FP 0 | .85: 2, 1.04, 0 | .8: 2, 1.04, 1 | .7: 2, .52 + 9/13, 2.
    images = F.read_folds(write_folds(tmp_path / 'folds', [('img/a', [CIRCLE_A]), ('img/b', [CIRCLE_B])]))
    dets = {'img/a': [[3, 3, 5, 5, 0.9], [14, 14, 4, 4, 0.8]],
            'img/b': [[8, 8, 5, 5, 0.85], [9, 9, 3, 3, 0.7]]}
    sizes = {'img/a': (20, 20), 'img/b': (20, 20)}
    res = F.evaluate(images, dets, sizes)
    assert res['thresholds'].tolist() == [0.9, 0.85, 0.8, 0.7]
    assert res['fp'].tolist() == [0, 0, 1, 2]
    assert res['tpr_discrete'].tolist() == [0.5, 1, 1, 1]
    assert res['tpr_continuous'] == pytest.approx([0.26, 0.52, 0.52, (0.52 + 9 / 13) / 2])
    assert (res['discrete'], res['num_faces']) == (1.0, 2)
    low = F.evaluate(images, dets, sizes, fp_budget=0)  # last point with no FP: t .85
    assert low['continuous'] == pytest.approx(0.52)


def test_conversions(tmp_path):
    box = np.array([[10, 20, 8, 10]])
    stretched, is_ellipse = F.convert_boxes(box, 'stretch', 1.5)
    assert not is_ellipse and stretched.tolist() == [[10, 15, 8, 15]]  # bottom edge 30 kept
    ell, is_ellipse = F.convert_boxes(box, 'box-to-ellipse', 1.2)
    assert is_ellipse and ell[0] == pytest.approx([6, 4, np.pi / 2, 14, 24])
    # a box whose inscribed upright ellipse is exactly the face: ratio 1 with box-to-ellipse
    images = F.read_folds(write_folds(tmp_path / 'folds', [('x', [[6, 4, np.pi / 2, 14, 24]])]))
    dets = {'x': [[10, 20, 8, 10, 1.0]]}
    plain = F.evaluate(images, dets, {'x': (40, 40)})
    conv = F.evaluate(images, dets, {'x': (40, 40)}, conversion='box-to-ellipse', factor=1.2)
    assert conv['continuous'] == pytest.approx(1.0) and plain['continuous'] < 0.8
    assert (conv['conversion'], conv['factor'], plain['factor']) == ('box-to-ellipse', 1.2, None)
    with pytest.raises(ValueError, match='unknown conversion'):
        F.convert_boxes(box, 'squash')


def test_files_round_trip_and_cli(tmp_path, capsys, metric_tool):
    folds = write_folds(tmp_path / 'folds', [('img/a', [CIRCLE_A]), ('img/b', [CIRCLE_B])])
    images = F.read_folds(folds)
    out = F.write_detections(tmp_path / 'det.txt', images, {'img/b': [[8, 8, 5, 5, 0.85]]})
    assert open(out).read().splitlines()[:3] == ['img/a', '0', 'img/b']
    assert F.read_detections(out, images)['img/b'].tolist() == [[8, 8, 5, 5, 0.85]]
    sizes = tmp_path / 'sizes.txt'
    sizes.write_text('# path width height\nimg/a 20 20\nimg/b 20 20\n')
    plot = tmp_path / 'roc.png'
    assert metric_tool.main(['fddb', '--pred', str(out), '--folds', str(folds), '--sizes', str(sizes),
                             '--plot', str(plot), '--stretch', '1.0']) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last['discrete'] == 0.5 and last['conversion'] == 'stretch' and plot.stat().st_size > 5000
    (tmp_path / 'sizes.json').write_text(json.dumps({'img/a': [20, 20], 'img/b': {'width': 20, 'height': 20}}))
    assert F.load_image_sizes(tmp_path / 'sizes.json') == {'img/a': (20, 20), 'img/b': (20, 20)}


@pytest.mark.parametrize('text, message', [
    ('img/zzz\n1\n1 1 2 2 0.5\n', r'det\.txt:1: image img/zzz is not in the FDDB folds'),
    ('img/a\n2\n1 1 2 2 0.5\n', r'det\.txt:2: image img/a declares 2'),
    ('img/a\n1\n1 1 2 nan 0.5\n', r'det\.txt:3: NaN'),
    ('img/a\n1\n1 1 2 0.5\n', r'det\.txt:3: expected 5 numbers'),
])
def test_bad_detection_files(tmp_path, text, message):
    images = F.read_folds(write_folds(tmp_path / 'folds', [('img/a', [CIRCLE_A]), ('img/b', [CIRCLE_B])]))
    (tmp_path / 'det.txt').write_text(text)
    with pytest.raises(ValueError, match=message):
        F.read_detections(tmp_path / 'det.txt', images)


def test_missing_inputs_are_named(tmp_path, capsys, metric_tool):
    folds = write_folds(tmp_path / 'folds', [('img/a', [CIRCLE_A])])
    images = F.read_folds(folds)
    with pytest.raises(KeyError, match='img/a'):
        F.evaluate(images, {'img/a': [[3, 3, 5, 5, 0.9]]}, {})
    with pytest.warns(F.FDDBWarning, match='no detections block for 1 image'):
        (tmp_path / 'empty.txt').write_text('')
        F.read_detections(tmp_path / 'empty.txt', images)
    assert metric_tool.main(['fddb', '--pred', str(tmp_path / 'none.txt'), '--folds', str(folds), '--sizes', 'x']) == 2
    assert 'x' in capsys.readouterr().err


def test_real_folds(shared_data):
    images = F.read_folds(shared_data / 'fddb')
    assert len(images) == 2845 and sum(len(im.ellipses) for im in images) == 5171
    assert [im.fold for im in images[:1] + images[-1:]] == [1, 10]
    assert images[0].path == '2002/08/11/big/img_591'
    assert images[0].ellipses[0] == pytest.approx([123.5833, 85.5495, 1.265839, 269.6934, 161.7812])


def _mask(region, is_ellipse, width, height):
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    if not is_ellipse:
        left, top, w, h = region
        return (xs >= left) & (xs < left + w) & (ys >= top) & (ys < top + h)
    a, b, t, cx, cy = region
    u = (xs - cx) * np.cos(t) + (ys - cy) * np.sin(t)
    v = -(xs - cx) * np.sin(t) + (ys - cy) * np.cos(t)
    return (u / a) ** 2 + (v / b) ** 2 <= 1


@pytest.mark.parametrize('is_ellipse', [False, True])
def test_pair_ratios_equal_pixel_masks(is_ellipse):
    rng = np.random.default_rng(3)
    widths, heights = np.array([40, 33]), np.array([30, 41])
    faces = np.c_[rng.uniform(3, 12, (6, 2)), rng.uniform(-1.6, 1.6, 6), rng.uniform(0, 38, (6, 2))]
    faces[:, :2] = np.sort(faces[:, :2], axis=1)[:, ::-1]
    face_image = np.array([0, 0, 0, 1, 1, 1])
    if is_ellipse:
        regions = np.c_[rng.uniform(2, 10, (20, 2)), rng.uniform(-1.6, 1.6, 20), rng.uniform(-5, 40, (20, 2))]
    else:
        regions = np.c_[rng.uniform(-5, 38, (20, 2)), rng.uniform(0, 20, (20, 2))]
    region_image = np.sort(rng.integers(0, 2, 20))
    pf, pr, ratio = F.pair_ratios(faces, face_image, regions, region_image, is_ellipse, widths, heights)
    got = np.zeros((6, 20))
    got[pf, pr] = ratio
    want = np.zeros((6, 20))
    for i in range(6):
        for j in range(20):
            if face_image[i] == region_image[j]:
                w, h = widths[face_image[i]], heights[face_image[i]]
                fm, rm = _mask(faces[i], True, w, h), _mask(regions[j], is_ellipse, w, h)
                union = (fm | rm).sum()
                want[i, j] = (fm & rm).sum() / union if union else 0
    assert np.allclose(got, want) and (want > 0).sum() > 5


def test_sizes_from_images(tmp_path):
    from PIL import Image
    (tmp_path / '2002' / 'big').mkdir(parents=True)
    Image.new('RGB', (37, 21)).save(tmp_path / '2002' / 'big' / 'img_1.jpg')
    assert F.load_image_sizes(images_dir=str(tmp_path), names=['2002/big/img_1']) == {'2002/big/img_1': (37, 21)}
    with pytest.raises(FileNotFoundError, match='img_2.jpg'):
        F.load_image_sizes(images_dir=str(tmp_path), names=['2002/big/img_2'])
