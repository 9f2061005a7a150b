"""COCO-style AP@[.5:.95] on WIDER FACE ground truth."""
import json
import os

import numpy as np
import pytest

from ppdet_hambox.metrics import coco_map as C
from ppdet_hambox.metrics import widerface as W
from widerface_testdata import box_file, write_ground_truth, write_raw


def run(tmp_path, faces, rows, counted=None, setting='hard'):
    gt_dir = write_ground_truth(str(tmp_path / 'gt'), [('ev', 'a', faces)], counted)
    write_raw(str(tmp_path / 'pred'), 'ev', 'a', box_file('a', rows))
    return C.evaluate(str(tmp_path / 'pred'), gt_dir, setting)


def test_perfect_and_shifted_by_hand(tmp_path):
    face = [0, 0, 10, 10]
    assert run(tmp_path / 'p', [face], [face + [0.9]])['ap'] == pytest.approx(1.0)
    # shifted by 1 px: IoU 9*10 / (100 + 100 - 90) = .818: a match at IoU .50 ... .80 (7 of 10
    # thresholds, precision 1 at every recall point), none at .85, .90, .95 -> AP .7
    res = run(tmp_path / 's', [face], [[1, 0, 10, 10, 0.9]])
    assert res['ap'] == pytest.approx(0.7) and res['ap50'] == pytest.approx(1) == res['ap75']
    # shifted by 3 px: IoU 70/130 = .538: only the .50 threshold -> AP .1, AP75 0
    res = run(tmp_path / 't', [face], [[3, 0, 10, 10, 0.9]])
    assert res['ap'] == pytest.approx(0.1) and res['ap75'] == 0.0


def test_ignored_faces(tmp_path):
    faces = [[0, 0, 10, 10], [50, 50, 10, 10]]
    counted = {s: [[1]] for s in W.SETTINGS}  # the second face counts nowhere
    # a detection on the ignored face, ranked first, is neither TP nor FP: AP 1
    res = run(tmp_path / 'i', faces, [[50, 50, 10, 10, 0.9], [0, 0, 10, 10, 0.8]], counted)
    assert res['ap'] == pytest.approx(1.0) and (res['num_faces'], res['num_ignored']) == (1, 1)
    # the same detection elsewhere is a FP ranked above the TP: precision .5 at recall 1 -> AP .5
    res = run(tmp_path / 'f', faces, [[200, 200, 10, 10, 0.9], [0, 0, 10, 10, 0.8]], counted)
    assert res['ap'] == pytest.approx(0.5)


def test_cli(tmp_path, capsys, metric_tool):
    gt_dir = write_ground_truth(str(tmp_path / 'gt'), [('ev', 'a', [[0, 0, 10, 10]])])
    write_raw(str(tmp_path / 'pred'), 'ev', 'a', box_file('a', [[1, 0, 10, 10, 0.9]]))
    assert metric_tool.main(['coco', '--pred', str(tmp_path / 'pred'), '--gt', gt_dir, '--setting', 'easy']) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last['ap'] == pytest.approx(0.7) and last['setting'] == 'easy'
    assert metric_tool.main(['coco', '--pred', str(tmp_path / 'nothing'), '--gt', gt_dir]) == 2
    assert 'nothing' in capsys.readouterr().err


def test_real_ground_truth_subset(shared_data, tmp_path):
    events = ['27--Spa', '19--Couple', '30--Surgeons', '45--Balloonist', '34--Baseball']
    gt = W.load_ground_truth(shared_data / 'widerface').subset(events)
    rng = np.random.default_rng(0)
    for i in range(gt.num_images):
        faces = gt.boxes[gt.offsets[i]:gt.offsets[i + 1]].astype(np.float64)
        shift = faces.copy()
        shift[:, 0] += 0.2 * faces[:, 2]  # IoU .8 / 1.2 = .67: a match up to IoU .65
        scores = rng.uniform(0.1, 1, len(faces))
        for folder, boxes in (('perfect', faces), ('shifted', shift)):
            W.write_predictions(tmp_path / folder, gt.events[gt.image_event[i]], gt.names[i], np.c_[boxes, scores])
    perfect = C.evaluate(str(tmp_path / 'perfect'), gt)
    shifted = C.evaluate(str(tmp_path / 'shifted'), gt)
    assert perfect['ap'] > 0.99 and perfect['num_faces'] > 300
    assert 0.3 < shifted['ap'] < 0.45 and shifted['ap50'] > 0.95 and shifted['ap75'] < 0.05
    assert os.path.isdir(tmp_path / 'perfect' / '27--Spa')
