"""The evaluation path against an oracle (``tests/oracle_eval.py``): a detector
that returns exactly the ground truth must come out of the dataset, the
predictor (every protocol, multi-scale windows, the flipped pass, box voting),
the prediction files and the WIDER FACE metric as exactly the ground truth,
with AP 1; and the same through ``tools/eval.py``."""
import copy
import functools
import importlib.util
import math

import numpy as np
import pytest

from hambox_eval_helpers import DEMO_CONFIG, REPO_ROOT, workdir
from oracle_eval import FACES, eval_overrides, gt_rows, write_dataset
from ppdet_hambox.core.workspace import build_component, create, load_config
from ppdet_hambox.data import read_image
from ppdet_hambox.evaluation.evaluator import run_evaluation
from ppdet_hambox.evaluation.predictor import Predictor
from ppdet_hambox.evaluation.protocols import PROTOCOLS, ScalePass
from ppdet_hambox.metrics import widerface

BOX_TOL = 0.02       # pixels: float32 encode/decode round trip, nothing more
SCORE_TOL = 1e-5


@functools.lru_cache(maxsize=None)
def dataset_root():
    return write_dataset(workdir() / 'oracle')


def oracle_cfg(**extra):
    overrides = eval_overrides(dataset_root())
    overrides['save_dir'] = str(workdir() / 'oracle_out')
    for key, value in extra.items():
        overrides[key] = dict(overrides.get(key, {}), **value) if isinstance(value, dict) else value
    return copy.deepcopy(load_config(str(DEMO_CONFIG), overrides))


def oracle_model(cfg):
    model = create(cfg['architecture'], cfg)
    model.eval()
    return model


def by_score(rows):
    rows = np.asarray(rows, np.float64).reshape(-1, 5)
    return rows[np.argsort(-rows[:, 4], kind='stable')]


def assert_ground_truth(dets, boxes, scores, what):
    want = by_score(np.concatenate([boxes, scores[:, None]], axis=1))
    got = by_score(dets)
    assert got.shape == want.shape, '{}: {} detections, want {}'.format(what, len(got), len(want))
    np.testing.assert_allclose(got[:, :4], want[:, :4], atol=BOX_TOL, err_msg=what)
    np.testing.assert_allclose(got[:, 4], want[:, 4], atol=SCORE_TOL, err_msg=what)


def test_dataset_records_are_the_table():
    """The dataset reads back the faces this test wrote (x1 y1 x2 y2)."""
    cfg = oracle_cfg()
    dataset = build_component(cfg['EvalDataset'], cfg, 'EvalDataset')
    assert len(dataset) == len(FACES)
    for index, (event, name, boxes, _) in enumerate(gt_rows()):
        record = dataset[index]
        assert (record['event'], record['name']) == (event, name)
        np.testing.assert_array_equal(record['gt_bbox'], boxes.astype(np.float32))


@pytest.mark.parametrize('protocol', PROTOCOLS)
def test_predictor_returns_the_ground_truth(protocol):
    """Every protocol, every image: the detections are the faces, same scores."""
    cfg = oracle_cfg()
    model = oracle_model(cfg)
    predictor = Predictor(model, cfg, protocol)
    dataset = build_component(cfg['EvalDataset'], cfg, 'EvalDataset')
    for index, (event, name, boxes, scores) in enumerate(gt_rows()):
        image = read_image(dataset[index]['im_file'])
        assert_ground_truth(predictor.detect(image), boxes, scores, '{} {}'.format(protocol, name))
    if protocol == 'multiscale':
        assert any(model.flips_seen) and not all(model.flips_seen)


def test_flipped_pass_equals_plain_pass():
    """The mirrored pass, mirrored back, is the plain pass (and both are the faces)."""
    cfg = oracle_cfg()
    predictor = Predictor(oracle_model(cfg), cfg, 'multiscale')
    dataset = build_component(cfg['EvalDataset'], cfg, 'EvalDataset')
    for index, (_, name, boxes, scores) in enumerate(gt_rows()):
        image = read_image(dataset[index]['im_file'])
        for scale in (1.0, 0.75, 1.5):
            plain = predictor.run_pass(image, ScalePass(scale))
            flipped = predictor.run_pass(image, ScalePass(scale, flip=True))
            assert predictor.model.flips_seen[-2:] == [False, True]
            np.testing.assert_allclose(by_score(flipped), by_score(plain), atol=BOX_TOL, err_msg=name)
            assert_ground_truth(flipped, boxes, scores, '{} flipped at {}'.format(name, scale))


def test_multiscale_windows_keep_the_right_faces():
    """Each multi-scale pass keeps exactly the faces inside its size window
    (longer side in original pixels): shrunk passes the big ones, enlarged
    passes the small ones, the 1.0 passes all."""
    cfg = oracle_cfg()
    predictor = Predictor(oracle_model(cfg), cfg, 'multiscale')
    settings = predictor.settings
    dataset = build_component(cfg['EvalDataset'], cfg, 'EvalDataset')
    seen_windows = set()
    for index, (_, name, boxes, scores) in enumerate(gt_rows()):
        image = read_image(dataset[index]['im_file'])
        passes = settings.passes('multiscale', *image.shape[:2])
        assert sorted((p.scale, p.flip) for p in passes) == sorted(
            [(s, False) for s in settings.ms_scales] + [(s, True) for s in settings.ms_flip_scales])
        side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        for scale_pass in passes:
            keep = (side >= scale_pass.min_face) & (side <= scale_pass.max_face)
            expected_window = ((settings.ms_small_scale_min_face, math.inf) if scale_pass.scale < 1 else
                               (0.0, settings.ms_large_scale_max_face) if scale_pass.scale > 1 else (0.0, math.inf))
            assert (scale_pass.min_face, scale_pass.max_face) == expected_window
            seen_windows.add(expected_window)
            assert_ground_truth(predictor.run_pass(image, scale_pass), boxes[keep], scores[keep],
                                '{} pass {}'.format(name, scale_pass))
    assert len(seen_windows) == 3


def test_multiscale_without_the_full_pass_loses_the_faces_outside_every_window():
    """Only a shrunk pass: the faces under its minimum size are gone from the merge."""
    cfg = oracle_cfg(TestProtocol={'ms_scales': [0.5], 'ms_flip_scales': []})
    predictor = Predictor(oracle_model(cfg), cfg, 'multiscale')
    dataset = build_component(cfg['EvalDataset'], cfg, 'EvalDataset')
    min_face = predictor.settings.ms_small_scale_min_face
    lost = 0
    for index, (_, name, boxes, scores) in enumerate(gt_rows()):
        side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        keep = side >= min_face
        lost += int((~keep).sum())
        assert_ground_truth(predictor.detect(read_image(dataset[index]['im_file'])),
                            boxes[keep], scores[keep], name)
    assert lost >= 3


def test_only_multiscale_votes():
    """A single-pass protocol returns the post-process output as it is (two
    faces overlapping by IoU 0.35 stay two); multi-scale votes them into one
    (IoU above vote_iou), even from a single pass."""
    settings = create('TestProtocol', oracle_cfg())
    assert settings.vote_iou < 0.35
    dets = np.array([[0, 0, 10, 10, 0.9], [4.8, 0, 14.8, 10, 0.8]], np.float32)
    for protocol in ('vga', 'original'):
        np.testing.assert_array_equal(settings.merge(protocol, [dets]), dets)
    merged = settings.merge('multiscale', [dets])
    assert len(merged) == 1 and merged[0, 4] == pytest.approx(0.9)


@pytest.mark.parametrize('key,value', [('ms_scales', [1.0, 0.0]), ('ms_score_threshold', 1.0),
                                       ('ms_score_threshold', -0.01), ('vga_size', [640, 0])])
def test_protocol_refuses_boundary_values(key, value):
    """A zero scale, a cut that keeps nothing or a negative one, a zero VGA side:
    refused with the key named (the boundary itself, not only far beyond it)."""
    with pytest.raises(Exception, match=key):
        create('TestProtocol', oracle_cfg(), **{key: value})
    assert create('TestProtocol', oracle_cfg(), ms_score_threshold=0.0).ms_score_threshold == 0.0


def check_prediction_folder(output_dir):
    """Files: every face, as x y w h of the ground truth, with its score."""
    for event, name, boxes, scores in gt_rows():
        path = '{}/{}/{}.txt'.format(output_dir, event, name)
        rows, _, count, issues = widerface.parse_prediction_file(path, name)
        assert not issues and count == len(boxes), path
        xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
        assert_ground_truth(rows, xywh, scores, path)
        # Independent of the parser: the second line and the raw numbers.
        lines = open(path).read().split('\n')
        assert lines[0] == name and int(lines[1]) == len(boxes)


@pytest.mark.parametrize('protocol', PROTOCOLS)
def test_run_evaluation_gives_ap_one(protocol, tmp_path):
    """Dataset -> predictor -> files -> metric: AP 1 in every setting and mode."""
    cfg = oracle_cfg()
    result = run_evaluation(oracle_model(cfg), cfg, protocol=protocol, output_dir=str(tmp_path))
    assert result['protocol'] == protocol and result['num_images'] == len(FACES)
    for setting in widerface.SETTINGS:
        assert result[setting] == pytest.approx(1.0), (setting, result)
        assert result['python_port'][setting] == pytest.approx(1.0), (setting, result)
    check_prediction_folder(str(tmp_path))


def test_unreadable_image_gets_an_empty_file(tmp_path):
    """An image that cannot be read is an image without detections: its file
    holds no box; the others still hold their faces."""
    root = write_dataset(tmp_path / 'data')
    event, name, _, _ = gt_rows()[1]
    with open('{}/images/{}/{}.jpg'.format(root, event, name), 'wb') as f:
        f.write(b'not an image')
    overrides = eval_overrides(root)
    overrides['save_dir'] = str(tmp_path / 'out')
    cfg = copy.deepcopy(load_config(str(DEMO_CONFIG), overrides))
    out = tmp_path / 'pred'
    run_evaluation(oracle_model(cfg), cfg, protocol='original', output_dir=str(out))
    for index, (event, name, boxes, scores) in enumerate(gt_rows()):
        rows, _, count, _ = widerface.parse_prediction_file('{}/{}/{}.txt'.format(out, event, name), name)
        if index == 1:
            assert count == 0 and rows.shape == (0, 5)
        else:
            xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
            assert_ground_truth(rows, xywh, scores, name)


def test_metric_counts_a_lost_face():
    """The oracle minus one easy face: easy AP drops below 1 (the metric is
    not blind to what the oracle test relies on)."""
    cfg = oracle_cfg()
    out = workdir() / 'oracle_minus_one'
    run_evaluation(oracle_model(cfg), cfg, protocol='original', output_dir=str(out))
    event, name, boxes, scores = gt_rows()[0]
    keep = np.arange(len(boxes)) != int(np.argmax(scores))
    xywh = np.concatenate([boxes[keep, :2], boxes[keep, 2:] - boxes[keep, :2], scores[keep, None]], axis=1)
    widerface.write_predictions(str(out), event, name, xywh)
    result = widerface.evaluate(str(out), '{}/gt'.format(dataset_root()))
    assert result['easy'] < 0.99


def test_files_without_boxes_read_back_empty(tmp_path):
    """An image without detections: written from an empty array (either
    shape), its file reads back as no boxes; so does an empty file."""
    for index, empty in enumerate([np.zeros((0, 5)), np.zeros(0)]):
        path = widerface.write_predictions(str(tmp_path), 'ev', 'img_{}'.format(index), empty)
        rows, lines, count, issues = widerface.parse_prediction_file(path, 'img_{}'.format(index))
        assert rows.shape == (0, 5) and len(lines) == 0 and count == 0 and not issues
    (tmp_path / 'ev' / 'blank.txt').write_text('')
    rows, lines, count, _ = widerface.parse_prediction_file(str(tmp_path / 'ev' / 'blank.txt'), 'blank')
    assert rows.shape == (0, 5) and len(lines) == 0


def _tool(name):
    spec = importlib.util.spec_from_file_location('tool_' + name, str(REPO_ROOT / 'tools' / (name + '.py')))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tools_eval_end_to_end(tmp_path, capsys):
    """``tools/eval.py -c CONFIG -o architecture=OracleDetector ...``: AP 1,
    the files are the ground truth."""
    root = dataset_root()
    opts = ['architecture=OracleDetector', 'OracleDetector.table={}/oracle.json'.format(root),
            'EvalDataset.dataset_dir={}'.format(root), 'EvalDataset.image_dir=images',
            'EvalDataset.anno_path=gt/wider_face_val.mat', 'wider_gt_dir={}/gt'.format(root)]
    out = tmp_path / 'pred'
    result = _tool('eval').main(['-c', str(DEMO_CONFIG), '-o'] + opts +
                                ['--protocol', 'multiscale', '--output_eval', str(out)])
    assert result['protocol'] == 'multiscale'
    assert [result[s] for s in widerface.SETTINGS] == pytest.approx([1.0, 1.0, 1.0])
    check_prediction_folder(str(out))
    assert '1.0000' in capsys.readouterr().out


# ----------------------------------------------------------------------------- the exported model

EXPORT_TOL = 1.5     # pixels: the colour oracle sees resized (interpolated) edges


@functools.lru_cache(maxsize=None)
def exported_oracle_dir():
    from oracle_eval import ColourOracle
    from ppdet_hambox.export.exporter import export_model
    out = workdir() / 'oracle_export'
    export_model(ColourOracle(), oracle_cfg(), str(out), protocol='vga')
    return str(out)


def colour_scores(count):
    from oracle_eval import COLOUR_SCORES
    return np.array(COLOUR_SCORES[:count], np.float64)


def check_exported_files(output_dir):
    """The files hold every face within ``EXPORT_TOL``, scored by its colour."""
    for event, name, boxes, _ in gt_rows():
        rows, _, count, issues = widerface.parse_prediction_file('{}/{}/{}.txt'.format(output_dir, event, name), name)
        assert count == len(boxes) and not issues, name
        xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2], colour_scores(len(boxes))[:, None]], axis=1)
        got, want = by_score(rows), by_score(xywh)
        np.testing.assert_allclose(got[:, :4], want[:, :4], atol=EXPORT_TOL, err_msg=name)
        np.testing.assert_allclose(got[:, 4], want[:, 4], atol=SCORE_TOL, err_msg=name)


@pytest.mark.parametrize('protocol', PROTOCOLS)
def test_exported_model_evaluation_returns_the_ground_truth(protocol, tmp_path):
    """Paddle Inference behind the evaluator (``ExportedPredictor``): every
    protocol writes the faces, and scores AP 1. (Multi-scale at smaller
    scales here: each new input shape costs the predictor a set-up.)"""
    from ppdet_hambox.export.exported_model import ExportedPredictor
    cfg = oracle_cfg(TestProtocol={'ms_scales': [0.5, 1.0, 1.5], 'ms_max_pixels': 250000})
    predictor = ExportedPredictor(exported_oracle_dir(), cfg, protocol, cpu_threads=1, enable_mkldnn=False)
    result = run_evaluation(None, cfg, protocol=protocol, output_dir=str(tmp_path), predictor=predictor)
    assert [result[s] for s in widerface.SETTINGS] == pytest.approx([1.0, 1.0, 1.0])
    assert [result['python_port'][s] for s in widerface.SETTINGS] == pytest.approx([1.0, 1.0, 1.0])
    check_exported_files(str(tmp_path))


def test_tools_eval_model_dir_end_to_end(tmp_path):
    """``tools/eval.py --model_dir``: the exported oracle scores AP 1 and its
    files hold the faces."""
    root = dataset_root()
    opts = ['EvalDataset.dataset_dir={}'.format(root), 'EvalDataset.image_dir=images',
            'EvalDataset.anno_path=gt/wider_face_val.mat', 'wider_gt_dir={}/gt'.format(root)]
    out = tmp_path / 'pred'
    result = _tool('eval').main(['-c', str(DEMO_CONFIG), '-o'] + opts +
                                ['--model_dir', exported_oracle_dir(), '--protocol', 'original',
                                 '--output_eval', str(out)])
    assert result['protocol'] == 'original' and result['model_dir'] == exported_oracle_dir()
    assert [result[s] for s in widerface.SETTINGS] == pytest.approx([1.0, 1.0, 1.0])
    check_exported_files(str(out))
