"""WIDER FACE evaluation: hand-derived cases for every rule of docs/evaluation_protocol.md, the python-port
differences, odd prediction files, vectorised == per-box reference, and the real val ground truth.

Notation in the comments: t_k = 1 - k/1000; "k 1-499: P1 R1" means that for those thresholds the
summed proposal and recall counts are 1 and 1. AP = sum over recall steps of step x interpolated
precision.
"""
import json
import os
import warnings

import numpy as np
import pytest

from ppdet_hambox.metrics import widerface as W
from reference_widerface import evaluate_reference
from widerface_testdata import box_file, write_ground_truth, write_raw

FACE = [0, 0, 10, 10]
FAR = [500, 500, 10, 10]  # overlaps no face


def run(tmp_path, images, files, mode='official', counted=None):
    """Ground truth ``images`` [(name, faces)] in event 'ev'; ``files`` {name: text}; evaluate."""
    gt_dir = write_ground_truth(str(tmp_path / 'gt'), [('ev', n, f) for n, f in images], counted)
    pred_dir = str(tmp_path / 'pred')
    os.makedirs(pred_dir, exist_ok=True)
    for name, text in files.items():
        write_raw(pred_dir, 'ev', name, text)
    return W.evaluate(pred_dir, gt_dir, mode)


def aps(result):
    return [result[s] for s in W.SETTINGS]


def messages(record):
    return [str(w.message) for w in record if issubclass(w.category, W.WiderEvalWarning)]


# ----------------------------------------------------------------------------- the official rules

def test_round_half_away_from_zero():
    x = [0.5, 1.5, 2.5, -0.5, -2.5, 0.49999999999999994, 2.4999999999999996, -7.0]
    assert W.round_half_away(x).tolist() == [1, 2, 3, -1, -3, 0, 2, -7]


CASE_A = [[100, 100, 10, 10, 0.25], [0, 0, 10, 10, 0.75], [300, 300, 10, 10, 0.5]]


def test_sorting_voc_step_and_thresholds(tmp_path):
    # Faces g0 = (0,0,10,10), g1 = (100,100,10,10). The file lists TP(g1, 0.25), TP(g0, 0.75), FP(0.5).
    # Official sorts: TP g0 (norm 1), FP (norm 0.5), TP g1 (norm 0).
    # k 1-499: P1 R1 -> p 1, r .5; k 500-999 (t <= .5): P2 R1 -> p .5, r .5; k 1000 (t = 0): P3 R2.
    # Interpolated precision at r .5 is max(.5, 2/3) = 2/3 only after recall 1; AP = .5*1 + .5*2/3.
    res = run(tmp_path, [('a', [FACE, [100, 100, 10, 10]])], {'a': box_file('a', CASE_A)})
    assert aps(res) == pytest.approx([5 / 6] * 3, abs=1e-12)
    c = res['curves']['hard']
    assert c['proposals'][498] == 1 and c['proposals'][499] == 2  # norm 0.5 enters at t_500 = 0.5
    assert c['proposals'][998] == 2 and c['proposals'][999] == 3  # norm 0 enters only at t = 0
    assert c['recalled'][999] == 2 and c['count_face'] == 2


def test_python_port_uses_file_order(tmp_path):
    # Same file, unsorted; the port normalises with min 0.25 and max 0.75 too: TP g1 0, TP g0 1, FP .5.
    # It takes the LAST box with score >= t and counts every box before it:
    # k 1-499: the last box >= t is TP g0 (index 1) -> P2 R2 -> p 1, r 1 at once. AP = 1.
    res = run(tmp_path, [('a', [FACE, [100, 100, 10, 10]])], {'a': box_file('a', CASE_A)}, 'python-port')
    assert aps(res) == pytest.approx([1.0] * 3, abs=1e-12)


def test_float32_score_normalisation(tmp_path):
    # Scores 1.0 (TP, image b), 0.300000001 (TP, image a), 0.29999999999 (FP, image b), 0.0 (TP, image c).
    # min 0, max 1: norm = single(score). Both middle scores become single 0.30000001192..., >= t_700
    # (0.30000000000000004), so TP and FP enter together at k 700:
    # k 1-699: P1 R1 (1, 1/3); k 700-999: P3 R2 (2/3, 2/3); k 1000: P4 R3 (3/4, 1).
    # AP = 1/3*1 + 1/3*3/4 + 1/3*3/4 = 5/6.
    # The port reads scores as Python floats (float64): the TP (>= t_700) enters one threshold before
    # the FP (>= t_701 only): an extra point (1, 2/3) at k 700; AP = 2/3*1 + 1/3*3/4 = 11/12.
    images = [('a', [FACE]), ('b', [FACE]), ('c', [FACE])]
    files = {'a': box_file('a', [FACE + [0.300000001]]),
             'b': box_file('b', [FACE + [1.0], FAR + [0.29999999999]]),
             'c': box_file('c', [FACE + [0.0]])}
    assert aps(run(tmp_path / 'o', images, files, 'official')) == pytest.approx([5 / 6] * 3, abs=1e-12)
    assert aps(run(tmp_path / 'p', images, files, 'python-port')) == pytest.approx([11 / 12] * 3, abs=1e-12)


def _single_match(tmp_path, face, pred, mode):
    """AP 1 if ``pred`` (score 1) matches ``face``, 0 if not; a far FP with score 0 fixes the scale."""
    res = run(tmp_path, [('a', [face])], {'a': box_file('a', [pred + [1.0], FAR + [0.0]])}, mode)
    return res['hard']


@pytest.mark.parametrize('pred, official, port', [
    # Face (10,10,9,9): x 10..19, area 10*10 = 100. Prediction x 8..14.5, y 10..19:
    # official: round(14.5) = 15 (half away; half-even gives 14), w = 15-10+1 = 6, h = 10, inter 60,
    # area_p = 7.5*10 = 75, union = round(175) - 60 = 115, round(60/115 = .52) = 1 -> match
    # (with 14: inter 50, 50/125 = .4 -> no match). Port: iw = 14.5-10+1 = 5.5, IoU 55/120 = .458 -> no.
    ([8, 10, 6.5, 9], 1.0, 0.0),
    # Prediction x 12.5..23: official round(12.5) = 13, w = 7, inter 70, area_p = 11.5*10 = 115,
    # union 215 - 70 = 145, round(.483) = 0 -> no match. Port: iw 7.5, IoU 75/140 = .536 -> match.
    ([12.5, 10, 10.5, 9], 0.0, 1.0),
    # Prediction (10,10,9,4): inter 10*5 = 50, union 100 + 50 - 50 = 100, overlap round(0.5) = 1
    # (half away; half-even would give 0); the port's IoU 0.5 >= 0.5 matches too.
    ([10, 10, 9, 4], 1.0, 1.0),
])
def test_integer_overlap_and_rounding(tmp_path, pred, official, port):
    face = [10, 10, 9, 9]
    assert _single_match(tmp_path / 'o', face, pred, 'official') == official
    assert _single_match(tmp_path / 'p', face, pred, 'python-port') == port


def test_python_port_reads_boxes_as_float64(tmp_path):
    # Face (0,0,9,9): area 100. Prediction h = 3.9999999: the port's float64 y2 = 3.9999999,
    # inter = 10 * 4.9999999 = 49.999999, IoU 49.999999/100 < 0.5 -> no match. Read as float32, h
    # would be 4.0 and the IoU exactly 0.5, a match. With h = 4 both readings match.
    assert _single_match(tmp_path / 'a', [0, 0, 9, 9], [0, 0, 9, 3.9999999], 'python-port') == 0.0
    assert _single_match(tmp_path / 'b', [0, 0, 9, 9], [0, 0, 9, 4.0], 'python-port') == 1.0


def test_first_match_not_best(tmp_path):
    # Faces g0 (0,0,10,10) and g1 (2,0,10,10); only g1 counts. Prediction = g1 (score .9) + far FP (.5).
    # Official: overlap with g0: inter 9*11 = 99, union 242 - 99 = 143, round(.69) = 1; with g1: 1.
    # The first face with the maximal overlap is g0, which does not count: the prediction is ignored,
    # recall stays 0 -> AP 0. Port: best IoU is g1 (1.0) -> k 1-999 P1 R1 -> AP 1.
    images = [('a', [FACE, [2, 0, 10, 10]])]
    files = {'a': box_file('a', [[2, 0, 10, 10, 0.9], FAR + [0.5]])}
    counted = {s: [[2]] for s in W.SETTINGS}
    assert aps(run(tmp_path / 'o', images, files, 'official', counted)) == [0.0] * 3
    assert aps(run(tmp_path / 'p', images, files, 'python-port', counted)) == pytest.approx([1.0] * 3)


def test_faces_not_counted_are_ignored(tmp_path):
    # g0 (0,0,10,10) counts in medium and hard, g1 (100,100,10,10) everywhere.
    # Sorted: TP g0 (norm 1), FP (.5), duplicate of g0 (.25), TP g1 (0).
    # easy (1 face): k 1-499: P0 R0 (g0 ignored); 500-749: P1 R0; 750-999: the duplicate of the
    #   ignored face is ignored too: P1 R0; k 1000: P2 R1 -> p .5 at r 1. AP = .5.
    # medium/hard (2 faces): k 1-499: P1 R1 (1, .5); 500-749: P2 R1; 750-999: the duplicate of a
    #   recalled counted face is a false positive: P3 R1; 1000: P4 R2 (.5, 1). AP = .5*1 + .5*.5 = .75.
    images = [('a', [FACE, [100, 100, 10, 10]])]
    rows = [FACE + [1.0], [300, 300, 10, 10, 0.75], [1, 0, 10, 10, 0.625], [100, 100, 10, 10, 0.5]]
    counted = {'easy': [[2]], 'medium': [[1, 2]], 'hard': [[1, 2]]}
    for mode in W.MODES:
        res = run(tmp_path / mode, images, {'a': box_file('a', rows)}, mode, counted)
        assert aps(res) == pytest.approx([0.5, 0.75, 0.75], abs=1e-12)
        assert res['curves']['easy']['count_face'] == 1


def test_voc_ap_interpolation_and_nan_precision():
    # Points (r, p): (0, nan) (.5, .5) (.5, 1) (1, .25): precision made non-increasing from the right:
    # the .5 at r .5 becomes 1; AP = .5*1 + .5*.25. The 0/0 point at recall 0 adds nothing.
    ap = W.voc_ap(np.array([0.0, 0.5, 0.5, 1.0]), np.array([np.nan, 0.5, 1.0, 0.25]))
    assert ap == pytest.approx(0.625, abs=1e-15)


def test_all_equal_scores(tmp_path):
    images = [('a', [FACE])]
    half = {'a': box_file('a', [FACE + [0.5], FAR + [0.5]])}
    three = {'a': box_file('a', [FACE + [3.0], FAR + [3.0]])}
    for mode in W.MODES:  # min = max = 0.5: 0/0 in both modes, AP 0 with a warning
        with pytest.warns(W.WiderEvalWarning, match='0/0'):
            assert aps(run(tmp_path / mode, images, half, mode)) == [0.0] * 3
    with pytest.warns(W.WiderEvalWarning, match='0/0'):
        assert aps(run(tmp_path / 'o3', images, three, 'official')) == [0.0] * 3
    # python-port: min starts at 1 and max at 0, so scores 3 normalise to (3-1)/(3-1) = 1: P2 R1, AP .5
    with warnings.catch_warnings():
        warnings.simplefilter('error', W.WiderEvalWarning)
        assert aps(run(tmp_path / 'p3', images, three, 'python-port')) == pytest.approx([0.5] * 3)


# ----------------------------------------------------------------------------- odd prediction files
# Two images: 'a' holds the file under test, 'b' an anchor: TP (score 1) and a far FP (score 0).
# 'b' alone gives k 1-999: P1 R1, k 1000: P2 R1.

ANCHOR = box_file('b', [FACE + [1.0], FAR + [0.0]])
TWO = [('a', [FACE]), ('b', [FACE])]


def test_missing_file(tmp_path):
    # official: image a has no detections: (1, .5) then (.5, .5): AP .5
    with pytest.warns(W.WiderEvalWarning) as record:
        assert aps(run(tmp_path / 'o', TWO, {'b': ANCHOR})) == pytest.approx([0.5] * 3)
    assert any('missing' in m and os.path.join('ev', 'a.txt') in m for m in messages(record))
    with pytest.raises(FileNotFoundError, match=r'a\.txt'):
        run(tmp_path / 'p', TWO, {'b': ANCHOR}, 'python-port')


def test_empty_file_and_file_without_count(tmp_path):
    for mode in W.MODES:
        for text, what in (('', 'empty'), ('a\n', 'no box-count')):
            with pytest.warns(W.WiderEvalWarning) as record:
                res = run(tmp_path / (mode + what), TWO, {'a': text, 'b': ANCHOR}, mode)
            assert aps(res) == pytest.approx([0.5] * 3)
            assert any(what in m and 'a.txt' in m for m in messages(record))


def test_count_smaller_than_box_lines(tmp_path):
    # a.txt declares 1 box but lists FP (.5) then TP (.75).
    # official reads only the FP: k 1-499 P1 R1; 500-999 P2 R1; 1000 P3 R1 -> AP .5.
    # port reads both: a contributes P2 R1 from k 250 (last box >= t is the TP at index 1):
    # k 1-249 P1 R1 (1, .5); 250-999 P3 R2 (2/3, 1) -> AP .5 + .5*2/3.
    files = {'a': box_file('a', [FAR + [0.5], FACE + [0.75]], count=1), 'b': ANCHOR}
    with pytest.warns(W.WiderEvalWarning) as record:
        assert aps(run(tmp_path / 'o', TWO, files)) == pytest.approx([0.5] * 3)
    assert any('a.txt:2' in m and 'declares 1' in m for m in messages(record))
    with pytest.warns(W.WiderEvalWarning, match=r'a\.txt:2'):
        assert aps(run(tmp_path / 'p', TWO, files, 'python-port')) == pytest.approx([5 / 6] * 3)


def test_count_larger_than_box_lines(tmp_path):
    # a.txt declares 3 boxes, has 2: official (MATLAB "Invalid format") drops a: AP .5 as if missing;
    # the port uses the 2 lines: 5/6 as above.
    files = {'a': box_file('a', [FAR + [0.5], FACE + [0.75]], count=3), 'b': ANCHOR}
    with pytest.warns(W.WiderEvalWarning, match=r'a\.txt:2: declares 3'):
        assert aps(run(tmp_path / 'o', TWO, files)) == pytest.approx([0.5] * 3)
    with pytest.warns(W.WiderEvalWarning, match=r'a\.txt:2'):
        assert aps(run(tmp_path / 'p', TWO, files, 'python-port')) == pytest.approx([5 / 6] * 3)


def test_extra_whitespace_is_harmless(tmp_path):
    clean = {'a': box_file('a', [FACE + [0.75], FAR + [0.5]]), 'b': ANCHOR}
    messy = {'a': 'a.jpg \r\n 2\r\n0\t0  10 10   0.75  \r\n 500 500 10 10 0.5\r\n\r\n\n', 'b': ANCHOR}
    with warnings.catch_warnings():
        warnings.simplefilter('error', W.WiderEvalWarning)
        for mode in W.MODES:
            assert aps(run(tmp_path / ('c' + mode), TWO, clean, mode)) == \
                aps(run(tmp_path / ('m' + mode), TWO, messy, mode))


def test_blank_line_between_boxes(tmp_path):
    text = 'a\n2\n0 0 10 10 0.75\n\n500 500 10 10 0.5\n'
    with pytest.warns(W.WiderEvalWarning, match=r'a\.txt:4: blank line'):
        res = run(tmp_path, TWO, {'a': text, 'b': ANCHOR})
    # both boxes read: k 1-249 P1 R1; 250-499 P2 R2 (1, 1) -> AP 1
    assert aps(res) == pytest.approx([1.0] * 3)


def test_degenerate_boxes_are_kept_as_false_positives(tmp_path):
    # a.txt: TP (.75) and a zero-width box (.9) that matches nothing.
    # k 1-99: P1 R1 (1, .5); 100-249: P2 R1; 250-999: P3 R2 (2/3, 1); 1000: P4 R2. AP = .5 + .5*2/3
    # (dropping the box would give 1).
    files = {'a': box_file('a', [FACE + [0.75], [5, 5, 0, 10, 0.9], [5, 5, 4, -3, 0.1]]), 'b': ANCHOR}
    for mode in W.MODES:
        with pytest.warns(W.WiderEvalWarning) as record:
            res = run(tmp_path / mode, TWO, files, mode)
        msgs = messages(record)
        assert any('a.txt:4: width or height <= 0' in m for m in msgs)
        assert any('a.txt:5: width or height <= 0' in m for m in msgs)
        # the box with score .1 (norm .1) adds a FP from k 900: only the last point changes
        assert res['hard'] == pytest.approx(0.5 + 0.5 * 2 / 3, abs=1e-12)


@pytest.mark.parametrize('line, message', [
    ('0 0 10 10 nan', r'a\.txt:3: NaN or infinite'),
    ('0 0 inf 10 0.5', r'a\.txt:3: NaN or infinite'),
    ('0 0 10 10', r'a\.txt:3: expected 5 values'),
    ('0 0 10 10 0.5 7', r'a\.txt:3: expected 5 values'),
    ('0 0 ten 10 0.5', r'a\.txt:3: not a number'),
])
def test_bad_box_lines_are_errors(tmp_path, line, message):
    with pytest.raises(ValueError, match=message):
        run(tmp_path, TWO, {'a': 'a\n1\n' + line + '\n', 'b': ANCHOR})


def test_bad_count_line_is_an_error(tmp_path):
    with pytest.raises(ValueError, match=r'a\.txt:2: the box count'):
        run(tmp_path, TWO, {'a': 'a\nmany\n0 0 10 10 0.5\n', 'b': ANCHOR})


def test_wrong_name_line_and_unknown_files_warn(tmp_path):
    files = {'a': box_file('other_name', [FACE + [0.5]]), 'b': ANCHOR, 'zzz': box_file('zzz', [FACE + [1]])}
    os.makedirs(tmp_path / 'pred' / 'not_an_event')
    with pytest.warns(W.WiderEvalWarning) as record:
        res = run(tmp_path, TWO, files)
    msgs = messages(record)
    assert any('a.txt:1' in m and 'other_name' in m for m in msgs)
    assert any('zzz.txt' in m and 'ignored' in m for m in msgs)
    assert any('not_an_event' in m for m in msgs)
    assert aps(res) == pytest.approx([1.0] * 3)  # both TPs ranked first; zzz is not read


def test_hidden_files_are_passed_over_silently(tmp_path):
    files = {'a': box_file('a', [FACE + [0.5]]), 'b': ANCHOR}
    (tmp_path / 'pred' / 'ev').mkdir(parents=True)
    (tmp_path / 'pred' / '.ppdet_hambox_files').write_text('ev/a.txt\n')
    (tmp_path / 'pred' / 'ev' / '.DS_Store').write_text('')
    (tmp_path / 'pred' / 'stray.txt').write_text('')
    with pytest.warns(W.WiderEvalWarning) as record:
        res = run(tmp_path, TWO, files)
    msgs = messages(record)
    assert len(msgs) == 1 and 'stray.txt' in msgs[0], msgs
    assert aps(res) == pytest.approx([1.0] * 3)


def test_write_predictions_round_trip(tmp_path):
    gt_dir = write_ground_truth(str(tmp_path / 'gt'), [('ev', 'a', [FACE]), ('ev', 'b', [FACE])])
    boxes = np.array([[0, 0, 10, 10, 0.123456789], [3.25, 4.5, 7, 8, 0.5]], dtype=np.float32)
    path = W.write_predictions(tmp_path / 'pred', 'ev', 'a.jpg', boxes)
    W.write_predictions(tmp_path / 'pred', 'ev', 'b', np.zeros((0, 5)))
    assert open(path).read().splitlines()[:2] == ['a', '2']
    preds = W.load_predictions(tmp_path / 'pred', W.load_ground_truth(gt_dir))
    assert preds.issues == []
    assert np.array_equal(preds.boxes.astype(np.float32), boxes[:, :4])
    assert np.array_equal(preds.scores.astype(np.float32), boxes[:, 4])
    with pytest.raises(ValueError, match='ev/a'):
        W.write_predictions(tmp_path / 'pred', 'ev', 'a', np.zeros((2, 4)))


def test_ground_truth_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='wider_face_val.mat'):
        W.load_ground_truth(tmp_path)
    write_ground_truth(str(tmp_path), [('ev', 'a', [FACE])], {s: [[2]] for s in W.SETTINGS})
    with pytest.raises(ValueError, match=r'wider_easy_val\.mat: ev/a: gt_list index out of 1\.\.1'):
        W.load_ground_truth(tmp_path)


# ----------------------------------------------------------------------------- vectorised == reference

def _random_case(rng, folder):
    images, counted = [], {s: [] for s in W.SETTINGS}
    for i in range(12):
        n = int(rng.integers(0, 7))
        faces = np.c_[rng.integers(0, 60, (n, 2)), rng.integers(0, 25, (n, 2))]
        images.append(('ev{}'.format(i % 3), 'im{}'.format(i), faces))
        hard = sorted(rng.choice(n, size=int(rng.integers(0, n + 1)), replace=False) + 1) if n else []
        medium = [k for k in hard if rng.random() < 0.6]
        counted['hard'].append(hard)
        counted['medium'].append(medium)
        counted['easy'].append([k for k in medium if rng.random() < 0.6])
    gt_dir = write_ground_truth(os.path.join(folder, 'gt'), images, counted)
    pred_dir = os.path.join(folder, 'pred')
    os.makedirs(pred_dir)
    for event, name, faces in images:
        if rng.random() < 0.1:
            continue  # missing file
        jitter = faces + rng.integers(-6, 7, faces.shape) * 0.5
        dup = faces[: len(faces) // 2] + rng.integers(-3, 4, (len(faces) // 2, 4)) * 0.5
        fp = np.c_[rng.integers(-5, 80, (3, 2)) * 0.5, rng.integers(-2, 30, (3, 2))]
        boxes = np.r_[jitter, dup, fp]
        rows = np.c_[boxes, np.round(rng.random(len(boxes)), 2)]  # 2 decimals: many ties
        rows = rows[rng.permutation(len(rows))]
        count = len(rows) + (int(rng.integers(-1, 2)) if rng.random() < 0.2 else 0)
        write_raw(pred_dir, event, name, box_file(name, rows, count=max(count, 0)))
    return gt_dir, pred_dir


@pytest.mark.parametrize('seed', range(6))
def test_vectorised_equals_reference_random(tmp_path, seed):
    gt_dir, pred_dir = _random_case(np.random.default_rng(seed), str(tmp_path))
    gt = W.load_ground_truth(gt_dir)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', W.WiderEvalWarning)
        preds = W.load_predictions(pred_dir, gt)
        for mode in W.MODES:
            if mode == 'python-port' and any(f is None for f in preds.files):
                with pytest.raises(FileNotFoundError):
                    W.evaluate(preds, gt, mode)
                continue
            fast = W.evaluate(preds, gt, mode)
            ref = evaluate_reference(preds, gt, mode)
            assert aps(fast) == pytest.approx([ref[s] for s in W.SETTINGS], abs=1e-12)


# ----------------------------------------------------------------------------- command line

def test_cli(tmp_path, capsys, metric_tool):
    gt_dir = write_ground_truth(str(tmp_path / 'gt'), [('ev', n, f) for n, f in [('a', [FACE, [100, 100, 10, 10]])]])
    write_raw(str(tmp_path / 'pred'), 'ev', 'a', box_file('a', CASE_A))
    plot, curves = tmp_path / 'pr.png', tmp_path / 'pr.json'
    assert metric_tool.main(['widerface', '--pred', str(tmp_path / 'pred'), '--gt', gt_dir, '--mode', 'both',
                             '--plot', str(plot), '--curves', str(curves)]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last['official']['easy'] == pytest.approx(5 / 6) and last['python-port']['hard'] == pytest.approx(1)
    assert plot.stat().st_size > 10000
    saved = json.load(open(curves))
    assert saved['official']['hard']['proposals'][499] == 2 and len(saved['official']['hard']['recall']) == 1000
    assert metric_tool.main(['widerface', '--pred', str(tmp_path / 'pred'), '--gt', gt_dir]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == pytest.approx(
        {'easy': 5 / 6, 'medium': 5 / 6, 'hard': 5 / 6})
    assert metric_tool.main(['widerface', '--pred', str(tmp_path / 'nowhere'), '--gt', gt_dir]) == 2
    assert 'nowhere' in capsys.readouterr().err


# ----------------------------------------------------------------------------- real ground truth

@pytest.fixture(scope='module')
def real_gt(shared_data):
    return W.load_ground_truth(shared_data / 'widerface')


def test_real_ground_truth_counts(real_gt):
    assert real_gt.num_images == 3226 and len(real_gt.events) == 61
    assert len(real_gt.boxes) == 39708
    assert [real_gt.count_face(s) for s in W.SETTINGS] == [7211, 13319, 31958]
    assert np.all(real_gt.counted['easy'] <= real_gt.counted['medium'])


def _predictions_from_gt(gt, rng, jitter, fps_per_image):
    """Predictions derived from the ground truth, as a Predictions object (no files needed)."""
    image = np.repeat(np.arange(gt.num_images), np.diff(gt.offsets))
    boxes = gt.boxes.astype(np.float64)
    boxes = boxes + rng.normal(0, jitter, boxes.shape) * np.maximum(boxes[:, 2:3], 1)
    fp_image = np.repeat(np.arange(gt.num_images), fps_per_image)
    fp = np.c_[rng.uniform(0, 1000, (len(fp_image), 2)), rng.uniform(4, 80, (len(fp_image), 2))]
    image = np.r_[image, fp_image]
    order = np.argsort(image, kind='stable')
    rows = np.r_[boxes, fp][order]
    scores = np.r_[rng.uniform(0.3, 1, len(boxes)), rng.uniform(0, 0.7, len(fp))][order]
    n = len(order)
    return W.Predictions('synthetic', image[order], rows, np.round(scores, 3), np.arange(n) + 3,
                         np.ones(n, bool), ['synthetic'] * gt.num_images,
                         np.zeros(gt.num_images, bool), [])


def test_real_perfect_predictions(real_gt):
    preds = _predictions_from_gt(real_gt, np.random.default_rng(0), 0.0, 0)
    for mode in W.MODES:
        res = W.evaluate(preds, real_gt, mode)
        assert min(aps(res)) > 0.99, (mode, aps(res))


def test_real_vectorised_equals_reference_on_events(real_gt):
    gt = real_gt.subset(['27--Spa', '19--Couple', '30--Surgeons', '42--Car_Racing', '34--Baseball',
                         '45--Balloonist'])
    preds = _predictions_from_gt(gt, np.random.default_rng(1), 0.08, 15)
    for mode in W.MODES:
        fast, ref = W.evaluate(preds, gt, mode), evaluate_reference(preds, gt, mode)
        assert aps(fast) == pytest.approx([ref[s] for s in W.SETTINGS], abs=1e-12)
        assert 0.05 < fast['hard'] < 0.99


# ----------------------------------------------------------------------------- shared prediction sets
# The kinds of prediction set on which the python-port reading was checked against the port itself
# (half-pixel boxes, logits, crowds, unsorted files, noisy boxes, 3-decimal scores): written as files
# on real val events, both modes pinned to the per-box reference. For the port, reading as float32
# instead (what this code did before) must change the result where scores sit on the thresholds.

PREDICTION_SETS = ('half_pixel', 'logits', 'crowd', 'unsorted', 'noisy', 'three_decimals')
SET_EVENTS = {'crowd': ['0--Parade', '2--Demonstration']}
DEFAULT_EVENTS = ['27--Spa', '19--Couple', '30--Surgeons', '34--Baseball', '45--Balloonist']


def _prediction_set(gt, kind, rng):
    """Rows [x, y, w, h, score] per image (in file order) for one kind of prediction set."""
    counts = np.diff(gt.offsets)
    image = np.repeat(np.arange(gt.num_images), counts)
    keep = rng.random(len(image)) < 0.85
    boxes = gt.boxes.astype(np.float64)[keep]
    image = image[keep]
    side = np.maximum(boxes[:, 2:3], 1)
    boxes = boxes + rng.normal(0, 0.06, boxes.shape) * side
    fp_image = rng.integers(0, gt.num_images, 8 * gt.num_images)
    fp = np.c_[rng.uniform(0, 1000, (len(fp_image), 2)), rng.uniform(3, 90, (len(fp_image), 2))]
    boxes, image = np.r_[boxes, fp], np.r_[image, fp_image]
    tp = np.r_[np.ones(keep.sum(), bool), np.zeros(len(fp), bool)]
    scores = np.where(tp, rng.beta(5, 2, len(tp)), rng.beta(2, 5, len(tp)))
    if kind == 'half_pixel':
        boxes = np.round(boxes * 2) / 2
    elif kind == 'logits':
        scores = np.log(scores / (1 - scores)) * 3
    elif kind == 'three_decimals':  # printed as 0.000 .. 1.000: the normalised score is the score
        scores = np.round(scores, 3)
        scores[:2] = 0.0, 1.0
    elif kind == 'noisy':
        boxes = boxes + rng.normal(0, 1e-4, boxes.shape)
    boxes[:, 2:] = np.maximum(boxes[:, 2:], 0.5)
    if kind != 'unsorted':  # detector output: highest score first in each file
        order = np.lexsort((-scores, image))
    else:
        order = np.lexsort((rng.random(len(image)), image))
    return image[order], boxes[order], scores[order]


def _write_set(gt, folder, image, boxes, scores):
    rows = np.c_[boxes, scores]
    split = np.searchsorted(image, np.arange(gt.num_images + 1))
    for i in range(gt.num_images):
        event = gt.events[gt.image_event[i]]
        write_raw(folder, event, gt.names[i], box_file(gt.names[i], rows[split[i]:split[i + 1]]))


def _as_float32(preds):
    return W.Predictions(preds.pred_dir, preds.image, preds.boxes.astype(np.float32).astype(np.float64),
                         preds.scores.astype(np.float32).astype(np.float64), preds.lines, preds.in_count,
                         preds.files, preds.truncated, preds.issues)


@pytest.mark.parametrize('kind', PREDICTION_SETS)
def test_shared_prediction_sets_both_modes(real_gt, tmp_path, kind):
    gt = real_gt.subset(SET_EVENTS.get(kind, DEFAULT_EVENTS))
    rng = np.random.default_rng(PREDICTION_SETS.index(kind))
    _write_set(gt, str(tmp_path), *_prediction_set(gt, kind, rng))
    with warnings.catch_warnings():
        warnings.simplefilter('error', W.WiderEvalWarning)
        preds = W.load_predictions(str(tmp_path), gt)
        result = {mode: W.evaluate(preds, gt, mode) for mode in W.MODES}
    for mode in W.MODES:
        ref = evaluate_reference(preds, gt, mode)
        assert aps(result[mode]) == pytest.approx([ref[s] for s in W.SETTINGS], abs=1e-12), mode
        assert 0.2 < result[mode]['hard'] < 0.95
    if kind == 'unsorted':  # official sorts, the port walks the file order
        assert abs(result['official']['hard'] - result['python-port']['hard']) > 1e-3
    if kind == 'three_decimals':
        # e.g. 0.3 is below t_700 = 1 - 0.7 in float64, above it in float32: the port's curve
        # (float64) differs from a float32 reading's
        f32 = W.evaluate(_as_float32(preds), gt, 'python-port')
        assert max(abs(f32[s] - result['python-port'][s]) for s in W.SETTINGS) > 1e-6
