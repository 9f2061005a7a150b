"""Test protocols, box voting and run_evaluation on the demo dataset."""
import json
import math
import zipfile

import cv2
import numpy as np
import pytest

from hambox_eval_helpers import demo_cfg, tiny_model
from ppdet_hambox.core.errors import ConfigError
from ppdet_hambox.core.workspace import build_component
from ppdet_hambox.evaluation.evaluator import run_evaluation, wider_gt_dir, zip_predictions
from ppdet_hambox.evaluation.predictor import Predictor
from ppdet_hambox.evaluation import protocols
from ppdet_hambox.metrics.widerface import INCOMPLETE_MARKER
from ppdet_hambox.evaluation.protocols import box_voting, flip_boxes, iou_matrix


def reference_voting(dets, iou_threshold, min_count):
    """Greedy per-cluster loop (the SFD/PyramidBox procedure), for comparison."""
    dets = dets[np.argsort(-dets[:, 4], kind='stable')]
    out = []
    while len(dets):
        iou = iou_matrix(dets[:1, :4], dets[:, :4])[0]
        member = iou > iou_threshold
        member[0] = True
        cluster, dets = dets[member], dets[~member]
        if len(cluster) < min_count:
            continue
        w = cluster[:, 4:5].astype(np.float64)
        out.append(np.concatenate([(cluster[:, :4] * w).sum(0) / w.sum(), [cluster[:, 4].max()]]))
    return np.array(out, np.float32).reshape(-1, 5)


def test_box_voting_hand_case():
    dets = np.array([
        [0, 0, 10, 10, 0.9],      # heads cluster A
        [1, 1, 11, 11, 0.6],      # IoU 0.68 with A
        [6, 0, 16, 10, 0.8],      # IoU 0.25 with A: heads cluster B
        [3, 0, 13, 10, 0.7],      # IoU 0.54 with both A and B: joins A (the higher-scored head)
        [50, 50, 60, 60, 0.5],    # alone
    ], np.float32)
    merged = box_voting(dets, iou_threshold=0.3)
    a_w = np.array([0.9, 0.6, 0.7])
    a_box = (dets[[0, 1, 3], :4] * a_w[:, None]).sum(0) / a_w.sum()
    expected = np.array([list(a_box) + [0.9], [6, 0, 16, 10, 0.8], [50, 50, 60, 60, 0.5]], np.float32)
    np.testing.assert_allclose(merged, expected, atol=1e-5)
    assert len(box_voting(dets, 0.3, min_count=2)) == 1
    assert len(box_voting(dets, 0.3, top_k=2)) == 2
    np.testing.assert_allclose(box_voting(dets, 0.3, score_threshold=0.75)[:, 4], [0.9, 0.8])
    assert box_voting(np.zeros((0, 5)), 0.3).shape == (0, 5)


def test_box_voting_matches_greedy_loop():
    rng = np.random.default_rng(0)
    centres = rng.uniform(0, 200, (30, 2))
    jitter = rng.normal(0, 3, (400, 2))
    which = rng.integers(0, 30, 400)
    size = rng.uniform(8, 30, (400, 1))
    xy = centres[which] + jitter
    dets = np.concatenate([xy - size / 2, xy + size / 2, rng.uniform(0.01, 1, (400, 1))], 1).astype(np.float32)
    for iou_threshold, min_count in ((0.3, 1), (0.5, 2)):
        ours = box_voting(dets, iou_threshold, min_count, top_k=1000)
        ref = reference_voting(dets, iou_threshold, min_count)
        assert len(ours) == len(ref)
        np.testing.assert_allclose(ours, ref, atol=1e-3)


def test_protocol_scales():
    p = protocols.TestProtocol(vga_size=[640, 480], original_max_side=1600, ms_max_pixels=2800000,
                     ms_scales=[0.5, 1.0, 1.5, 2.0], ms_flip_scales=[1.0])
    assert p.passes('vga', 768, 1024)[0].scale == pytest.approx(0.625)   # landscape -> 640x480
    assert p.passes('vga', 1024, 768)[0].scale == pytest.approx(0.625)   # portrait -> 480x640
    assert p.passes('vga', 100, 200)[0].scale == pytest.approx(3.2)      # small: enlarged to 640x320
    assert p.passes('vga', 600, 640)[0].scale == pytest.approx(0.8)      # near-square: short side binds
    assert p.passes('original', 700, 1024)[0].scale == 1.0
    assert p.passes('original', 2000, 3200)[0].scale == pytest.approx(0.5)
    passes = p.passes('multiscale', 768, 1024)
    s_max = math.sqrt(2800000 / (768 * 1024))
    got = sorted((round(q.scale, 4), q.flip, q.min_face, q.max_face) for q in passes)
    assert got == sorted([(0.5, False, 30.0, math.inf), (1.0, False, 0.0, math.inf),
                          (1.5, False, 0.0, 100.0), (round(s_max, 4), False, 0.0, 100.0),
                          (1.0, True, 0.0, math.inf)])
    big = p.passes('multiscale', 3000, 2000)      # s_max < 1: 1.0, 1.5, 2.0 collapse to one pass
    assert sorted((round(q.scale, 4), q.flip, q.max_face) for q in big) == sorted(
        [(0.5, False, math.inf), (round(math.sqrt(2800000 / 6e6), 4), False, math.inf),
         (round(math.sqrt(2800000 / 6e6), 4), True, math.inf)])
    with pytest.raises(ValueError, match='unknown test protocol'):
        p.passes('tiled', 10, 10)


def test_flip_boxes_round_trip():
    boxes = np.array([[10, 5, 30, 25], [0, 0, 100, 50]], np.float32)
    flipped = flip_boxes(boxes, 100)
    np.testing.assert_array_equal(flipped, [[70, 5, 90, 25], [0, 0, 100, 50]])
    np.testing.assert_array_equal(flip_boxes(flipped, 100), boxes)


def _check_prediction_folder(out_dir, cfg):
    dataset = build_component(cfg['EvalDataset'], cfg, 'EvalDataset')
    files = sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob('*.txt'))
    expected = sorted('{}/{}.txt'.format(dataset[i]['event'], dataset[i]['name']) for i in range(len(dataset)))
    assert files == expected
    for rel in files:
        lines = (out_dir / rel).read_text().splitlines()
        assert lines[0] == rel.split('/')[1][:-4]
        rows = np.array([list(map(float, line.split())) for line in lines[2:]]).reshape(-1, 5)
        assert int(lines[1]) == len(rows)
        assert (rows[:, 2:4] > 0).all() and (rows[:, 4] >= 0).all()
    return files


@pytest.mark.parametrize('protocol', ['vga', 'original', 'multiscale'])
def test_three_protocols_on_demo(protocol, tmp_path):
    cfg = demo_cfg()
    model = tiny_model()
    model.train()
    try:
        result = run_evaluation(model, cfg, protocol=protocol, output_dir=str(tmp_path))
        assert model.training, 'run_evaluation must leave the model in the mode it came in'
    finally:
        model.eval()
    assert result['protocol'] == protocol and result['metric'] == 'widerface'
    assert result['mode'] == 'official' and result['output_dir'] == str(tmp_path)
    for res in (result, result['python_port']):
        for setting in ('easy', 'medium', 'hard'):
            assert 0.0 <= res[setting] <= 1.0
    files = _check_prediction_folder(tmp_path, cfg)
    assert result['num_images'] == len(files)
    (tmp_path / '.DS_Store').write_text('finder')
    archive = zip_predictions(str(tmp_path), str(tmp_path.parent / (tmp_path.name + '_{}.zip'.format(protocol))))
    with zipfile.ZipFile(archive) as z:
        names = z.namelist()
    assert sorted(n for n in names if not n.endswith('/')) == files  # no manifest, no hidden file


def test_eval_tool_prints_protocol_and_zips(tmp_path, capsys):
    import importlib.util
    from hambox_eval_helpers import DEMO_CONFIG, REPO_ROOT, demo_dataset
    spec = importlib.util.spec_from_file_location('eval_tool', REPO_ROOT / 'tools' / 'eval.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tiny_model()      # the same demo dataset and protocol overrides
    out_dir = tmp_path / 'pred'
    result = tool.main(['-c', str(DEMO_CONFIG), '-o', 'EvalDataset.dataset_dir={}'.format(demo_dataset()),
                        'TestProtocol.vga_size=[320,240]', '--protocol', 'vga',
                        '--output_eval', str(out_dir), '--zip'])
    printed = capsys.readouterr().out.strip().splitlines()
    assert any(line.startswith('metric: widerface, protocol: vga') for line in printed)
    assert json.loads(printed[-1])['protocol'] == 'vga'
    assert zipfile.is_zipfile(result['zip'])
    assert any(line.startswith('official') for line in printed)
    assert any(line.startswith('python-port') for line in printed)


def test_bad_metric_and_missing_ground_truth(tmp_path):
    cfg = demo_cfg(metric='imagenet')
    with pytest.raises(ConfigError, match="metric 'imagenet'"):
        run_evaluation(tiny_model(), cfg)
    cfg = demo_cfg(wider_gt_dir=str(tmp_path))
    with pytest.raises(ConfigError, match='no wider_face_val.mat, .* in'):
        wider_gt_dir(cfg)


def _demo_faces(count):
    """(record, image path, gt boxes) of the first ``count`` demo val images with faces."""
    cfg = demo_cfg()
    dataset = build_component(cfg['EvalDataset'], cfg, 'EvalDataset')
    records = [dataset[i] for i in range(len(dataset))]
    return [(r, r['im_file'], r['gt_bbox']) for r in records if len(r['gt_bbox'])][:count]


def test_fddb_box_ap_and_challenge_metrics(tmp_path):
    import shutil
    faces = _demo_faces(2)
    model = tiny_model()
    # FDDB layout: folds listing image paths, images at <image_dir>/<path>.jpg, ellipse faces
    folds, images = tmp_path / 'folds', tmp_path / 'fddb_images'
    folds.mkdir()
    lines, names = [], []
    for index, (_, path, boxes) in enumerate(faces):
        name = '2002/08/11/big/img_{}'.format(index)
        names.append(name)
        (images / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, str(images / name) + '.jpg')
        lines += [name, str(len(boxes))]
        lines += ['{} {} {} {} {} 1'.format((b[3] - b[1]) / 2, (b[2] - b[0]) / 2, math.pi / 2,
                                            (b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for b in boxes]
    (folds / 'FDDB-fold-01-ellipseList.txt').write_text('\n'.join(lines) + '\n')
    (folds / 'FDDB-fold-01.txt').write_text('\n'.join(names) + '\n')
    cfg = demo_cfg(metric='fddb', FDDBEval={'folds_dir': str(folds), 'image_dir': str(images),
                                            'conversion': 'stretch', 'factor': 1.2})
    result = run_evaluation(model, cfg, protocol='vga', output_dir=str(tmp_path / 'fddb_out'))
    assert result['metric'] == 'fddb' and result['protocol'] == 'vga'
    assert result['num_faces'] == sum(len(b) for _, _, b in faces)
    assert 0 <= result['discrete'] <= 1 and 0 <= result['continuous'] <= result['discrete'] + 1e-9
    assert (result['conversion'], result['factor']) == ('stretch', 1.2)
    written = (tmp_path / 'fddb_out' / 'fddb_detections.txt').read_text().splitlines()
    assert [line for line in written if line.startswith('2002/')] == names
    assert not (tmp_path / 'fddb_out' / INCOMPLETE_MARKER).exists()   # a finished folder is marked complete

    # AFW / PASCAL layout: plain ground-truth list, images <image_dir>/<id>.jpg
    gt_lines = []
    for index, (_, path, boxes) in enumerate(faces):
        shutil.copy(path, str(tmp_path / 'face_{}.jpg'.format(index)))
        gt_lines += ['face_{} {} {} {} {}'.format(index, *b) for b in boxes.tolist()]
    (tmp_path / 'gt.txt').write_text('\n'.join(gt_lines) + '\n')
    cfg = demo_cfg(metric='afw', BoxAPEval={'gt_path': str(tmp_path / 'gt.txt'), 'image_dir': str(tmp_path)})
    result = run_evaluation(model, cfg, protocol='vga', output_dir=str(tmp_path / 'afw_out'))
    predictor_dets = sum(len(Predictor(model, cfg, 'vga').detect(cv2.imread(p))) for _, p, _ in faces)
    assert result['metric'] == 'boxap' and result['num_det'] == predictor_dets > 0
    assert result['num_gt'] == len(gt_lines) and 0 <= result['ap'] <= 1
    assert not (tmp_path / 'afw_out' / INCOMPLETE_MARKER).exists()

    cfg = demo_cfg(metric='COCO')
    result = run_evaluation(model, cfg, protocol='vga', output_dir=str(tmp_path / 'coco_out'))
    assert result['metric'] == 'coco' and result['coco']['setting'] == 'hard'
    assert 0 <= result['coco']['ap'] <= result['coco']['ap50'] + 1e-9 <= 1 + 1e-9
    assert 0 <= result['hard'] <= 1


class _NoPrediction:
    """A predictor that must not be reached."""
    protocol = 'vga'

    def detect(self, image):
        raise AssertionError('an image was predicted before the ground truth was checked')


def test_garbage_ground_truth_fails_before_any_prediction(tmp_path):
    import shutil
    from ppdet_hambox.core.errors import ConfigError
    from ppdet_hambox.evaluation.evaluator import check_evaluation
    gt = tmp_path / 'gt'
    shutil.copytree(wider_gt_dir(demo_cfg()), str(gt))
    (gt / 'wider_hard_val.mat').write_bytes(b'not a mat file at all')
    cfg = demo_cfg(wider_gt_dir=str(gt))
    with pytest.raises(ConfigError, match='wider_hard_val.mat'):
        check_evaluation(cfg)
    with pytest.raises(ConfigError, match='wider_hard_val.mat'):
        run_evaluation(None, cfg, protocol='vga', output_dir=str(tmp_path / 'pred'), predictor=_NoPrediction())
    assert not (tmp_path / 'pred').exists()
