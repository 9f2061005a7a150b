"""tools/plot_mining.py: reading trainer logs and plotting Fig. 3 curves."""
import importlib.util
import json

import numpy as np
import pytest

from ppdet_hambox.analysis.mining_log import MiningLogError, logged_kinds, read_mining_log, smooth, summarize
from ppdet_hambox.jobs.ablation import _mining_summary


def _tool(repo_root):
    spec = importlib.util.spec_from_file_location('plot_mining_tool', repo_root / 'tools' / 'plot_mining.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


IMAGES = 80  # per log window


def _record(i, num, iou, kind='compensated', anchors=None):
    """A trainer log record: ``num`` anchors per image over IMAGES images,
    their mean IoU ``iou`` over ``num * IMAGES`` anchors (unless given)."""
    anchors = num * IMAGES if anchors is None else anchors
    return {'type': 'train', 'iter': 10 * (i + 1), 'lr': 0.01, 'loss': 1.0, 'num_pos': 20.0,
            'num_' + kind: num, kind + '_iou': iou, 'num_ignored': 0.5,
            'counts': {'num_pos': IMAGES, 'num_' + kind: IMAGES, kind + '_iou': anchors, 'num_ignored': IMAGES}}


def _write_log(path, nums, ious, extra_lines=(), kind='compensated'):
    lines = [json.dumps({'type': 'epoch', 'epoch': 0, 'iter': 0, 'skipped': 0})]
    for i, (n, q) in enumerate(zip(nums, ious)):
        lines.append(json.dumps(_record(i, n, q, kind)))
    lines.append(json.dumps({'type': 'eval', 'iter': 10 * len(nums), 'hard': 0.1}))
    path.write_text('\n'.join(lines + list(extra_lines)) + '\n', encoding='utf-8')
    return path


def test_read_log_keeps_train_records_in_order(tmp_path):
    path = _write_log(tmp_path / 'train_log.jsonl', [0.0, 1.0, 2.0], [0.0, 0.8, 0.9],
                      extra_lines=['{"type": "train", "iter": 5, "num_comp'])  # cut short by a crash
    data = read_mining_log(path)
    assert data['iter'].tolist() == [10, 20, 30]
    assert data['num'].tolist() == [0.0, 1.0, 2.0]
    assert data['iou'].tolist() == [0.0, 0.8, 0.9]
    assert data['anchors'].tolist() == [0.0, 80.0, 160.0] and data['images'].tolist() == [80.0] * 3
    assert logged_kinds(path) == ['compensated']


def test_bad_logs_name_file_and_line(tmp_path):
    bad = tmp_path / 'bad.jsonl'
    bad.write_text(json.dumps(_record(0, 0.0, 0.0)) + '\nnot json\n{}\n')
    with pytest.raises(MiningLogError, match=r'bad.jsonl:2: not a JSON object'):
        read_mining_log(bad)
    missing = tmp_path / 'missing.jsonl'
    missing.write_text('{"type": "train", "iter": 1, "loss": 0.5}\n')
    with pytest.raises(MiningLogError, match=r'missing.jsonl:1: train record without num_compensated, '
                                             r'compensated_iou, counts.num_compensated'):
        read_mining_log(missing)
    with pytest.raises(MiningLogError, match='no such log file'):
        read_mining_log(tmp_path / 'absent.jsonl')


def test_smooth_is_a_trailing_mean():
    np.testing.assert_allclose(smooth([1, 2, 3, 4], 2), [1.0, 1.5, 2.5, 3.5])
    np.testing.assert_allclose(smooth([1, 2, 3], 1), [1, 2, 3])


def test_tool_plots_two_runs_and_summarizes(tmp_path, repo_root):
    (tmp_path / 'hambox').mkdir()
    (tmp_path / 'dms').mkdir()
    hambox = _write_log(tmp_path / 'hambox' / 'train_log.jsonl', [0.0, 0.0, 0.5, 1.5, 2.0, 2.5, 3.0, 3.0],
                        [0, 0, 0.81, 0.85, 0.86, 0.88, 0.9, 0.9])
    dms = _write_log(tmp_path / 'dms' / 'train_log.jsonl', [0.0] * 6 + [0.5, 0.5], [0.0] * 6 + [0.3, 0.4],
                     kind='second_step')
    out = tmp_path / 'fig' / 'mining.png'
    report = _tool(repo_root).main(['--log', str(hambox), '--log', str(dms), '--out', str(out),
                                    '--json', str(tmp_path / 'm.json')])
    assert out.stat().st_size > 10_000
    assert set(report) == {'hambox', 'dms'}
    assert (report['hambox']['kind'], report['dms']['kind']) == ('compensated', 'second_step')
    assert report['hambox']['ever_mined'] and report['dms']['ever_mined']
    assert report['hambox']['num_last_quarter'] == pytest.approx(3.0)
    assert report['hambox']['iou_last_quarter'] == pytest.approx(0.9)
    assert report['dms']['iou_last_quarter'] == pytest.approx(0.35)
    curves = json.loads((tmp_path / 'm.json').read_text())['curves']
    assert curves['hambox']['iter'][-1] == 80 and curves['dms (second step)']['iou'][-1] == pytest.approx(0.4)


def test_iou_means_over_windows_are_weighted_by_anchor_counts(tmp_path):
    """Compensated anchors are above T = 0.8 by construction, so any mean of
    their IoU is too: windows without anchors (IoU logged as 0) and windows
    with few anchors must not pull it down. An unweighted mean of the
    window means gave 0.68 for such anchors in the ablation summary."""
    values = [(0.0, 0.0, 0), (0.01, 0.86, 1), (0.0, 0.0, 0), (0.05, 0.82, 4),
              (0.0, 0.0, 0), (0.02, 0.9, 2), (0.05, 0.84, 4), (0.0, 0.0, 0)]
    path = tmp_path / 'train_log.jsonl'
    path.write_text(''.join(json.dumps(_record(i, n, q, anchors=a)) + '\n' for i, (n, q, a) in enumerate(values)))
    summary = _mining_summary(str(path))   # the ablation's: last quarter = the last two windows
    assert summary['compensated_iou_last_quarter'] == pytest.approx(0.84)
    assert summary['compensated_num_last_quarter'] == pytest.approx(0.025)
    assert summary['ignored_num_last_quarter'] == pytest.approx(0.5)
    whole = summarize(read_mining_log(path))
    exact = (0.86 * 1 + 0.82 * 4 + 0.9 * 2 + 0.84 * 4) / 11
    assert whole['iou_whole_run'] == pytest.approx(exact) and whole['iou_whole_run'] > 0.8
