"""VOC AP for plain box lists (AFW / PASCAL Face format)."""
import contextlib
import json

import numpy as np
import pytest

from ppdet_hambox.metrics import box_ap as B

GT = """# image x1 y1 x2 y2 [ignore]
img1 0 0 10 10
img1 20 0 30 10 1
img2 0 0 10 10 0
"""
DET = """img1 0.9 0 0 10 10
img1 0.8 1 0 11 10
img1 0.7 20 0 30 10
img2 0.6 50 50 60 60
img2 0.5 0 1 10 11
img3 0.4 0 0 5 5
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_hand_case(tmp_path):
    # Sorted: .9 TP (face A); .8 IoU 90/110 with A, already found: FP; .7 on the ignored face: ignored;
    # .6 FP; .5 IoU .818 with C: TP; .4 on an image without faces: FP.
    # Kept: TP FP FP TP FP -> recall .5 .5 .5 1 1, precision 1 .5 1/3 .5 .4;
    # envelope 1 .5 .5 .5 .4 -> AP = .5*1 + .5*.5 = .75.
    with pytest.warns(B.BoxAPWarning, match='1 detections on 1 images without ground-truth'):
        res = B.evaluate(B.read_ground_truth(write(tmp_path, 'gt.txt', GT)),
                         B.read_detections(write(tmp_path, 'det.txt', DET)))
    assert res['ap'] == pytest.approx(0.75, abs=1e-12)
    assert (res['num_gt'], res['num_det'], res['tp'], res['fp']) == (2, 6, 2, 3)
    assert res['precision'] == pytest.approx([1, 0.5, 1 / 3, 0.5, 0.4])


def test_iou_of_one_half_counts():
    gt = {'image': np.array(['a'], dtype=object), 'boxes': np.array([[0., 0, 10, 10]]), 'ignore': np.array([False])}
    det = {'image': np.array(['a'], dtype=object), 'scores': np.array([1.0]), 'boxes': np.array([[0., 0, 10, 5]])}
    assert B.evaluate(gt, det)['ap'] == 1.0
    assert B.evaluate(gt, det, iou_thresh=0.51)['ap'] == 0.0


def _loop_ap(gt, det, thr=0.5):
    """VOC devkit style loop, for comparison."""
    order = np.argsort(-det['scores'], kind='stable')
    found = set()
    tp, fp = [], []
    for d in order:
        faces = [g for g in range(len(gt['image'])) if gt['image'][g] == det['image'][d]]
        best, best_iou = -1, -np.inf
        for g in faces:
            iou = B._pair_iou(det['boxes'][d:d + 1], gt['boxes'][g:g + 1])[0]
            if iou > best_iou:
                best, best_iou = g, iou
        if best >= 0 and best_iou >= thr:
            if gt['ignore'][best]:
                continue
            tp.append(best not in found)
            fp.append(best in found)
            found.add(best)
        else:
            tp.append(False)
            fp.append(True)
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    n = max(int((~gt['ignore']).sum()), 1)
    return B.voc_ap(tp / n, tp / np.maximum(tp + fp, 1)) if len(tp) else 0.0


@pytest.mark.parametrize('seed', range(4))
def test_vectorised_equals_loop(seed):
    rng = np.random.default_rng(seed)
    n_gt, n_det = 40, 120
    xy = rng.integers(0, 50, (n_gt, 2)).astype(float)
    gt = {'image': np.array(['im{}'.format(i) for i in rng.integers(0, 8, n_gt)], dtype=object),
          'boxes': np.c_[xy, xy + rng.integers(4, 20, (n_gt, 2))], 'ignore': rng.random(n_gt) < 0.15}
    src = rng.integers(0, n_gt, n_det)
    boxes = gt['boxes'][src] + rng.integers(-3, 4, (n_det, 4))
    det = {'image': np.where(rng.random(n_det) < 0.9, gt['image'][src], 'im9'), 'boxes': boxes,
           'scores': np.round(rng.random(n_det), 1)}
    with pytest.warns(B.BoxAPWarning) if (det['image'] == 'im9').any() else contextlib.nullcontext():
        ap = B.evaluate(gt, det)['ap']
    assert ap == pytest.approx(_loop_ap(gt, det), abs=1e-12)


@pytest.mark.parametrize('name, text, message', [
    ('gt.txt', 'img1 0 0 10\n', r'gt\.txt:1: expected 5-6 fields'),
    ('gt.txt', '\nimg1 10 0 0 10\n', r'gt\.txt:2: x2 < x1'),
    ('gt.txt', 'img1 0 0 10 10 2\n', r'gt\.txt:1: the ignore flag'),
    ('det.txt', 'img1 nan 0 0 10 10\n', r'det\.txt:1: NaN'),
    ('det.txt', 'img1 0.5 0 0 ten 10\n', r'det\.txt:1: not a number'),
])
def test_bad_lines(tmp_path, name, text, message):
    read = B.read_ground_truth if name == 'gt.txt' else B.read_detections
    with pytest.raises(ValueError, match=message):
        read(write(tmp_path, name, text))


def test_cli(tmp_path, capsys, metric_tool):
    gt, det = write(tmp_path, 'gt.txt', GT), write(tmp_path, 'det.txt', DET)
    assert metric_tool.main(['boxap', '--gt', gt, '--det', det, '--plot', str(tmp_path / 'pr.png')]) == 0
    out = capsys.readouterr()
    assert 'warning: 1 detections on 1 images without ground-truth boxes' in out.err
    last = json.loads(out.out.strip().splitlines()[-1])
    assert last['ap'] == pytest.approx(0.75) and (tmp_path / 'pr.png').exists()
    assert metric_tool.main(['boxap', '--gt', str(tmp_path / 'missing.txt'), '--det', det]) == 2
    assert 'missing.txt' in capsys.readouterr().err
