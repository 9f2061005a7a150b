"""tools/plot_mining.py: reading trainer logs and plotting Fig. 3 curves."""
import importlib.util
import json

import numpy as np
import pytest

from ppdet_hambox.analysis.mining_log import MiningLogError, read_mining_log, smooth


def _tool(repo_root):
    spec = importlib.util.spec_from_file_location('plot_mining_tool', repo_root / 'tools' / 'plot_mining.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_log(path, num_com, com_iou, extra_lines=()):
    lines = [json.dumps({'type': 'epoch', 'epoch': 0, 'iter': 0, 'skipped': 0})]
    for i, (n, q) in enumerate(zip(num_com, com_iou)):
        lines.append(json.dumps({'type': 'train', 'iter': 10 * (i + 1), 'lr': 0.01, 'loss': 1.0,
                                 'num_com': n, 'com_iou': q}))
    lines.append(json.dumps({'type': 'eval', 'iter': 10 * len(num_com), 'hard': 0.1}))
    path.write_text('\n'.join(lines + list(extra_lines)) + '\n', encoding='utf-8')
    return path


def test_read_log_keeps_train_records_in_order(tmp_path):
    path = _write_log(tmp_path / 'train_log.jsonl', [0.0, 1.0, 2.0], [0.0, 0.8, 0.9],
                      extra_lines=['{"type": "train", "iter": 5, "num_com'])  # cut short by a crash
    data = read_mining_log(path)
    assert data['iter'].tolist() == [10, 20, 30]
    assert data['num_com'].tolist() == [0.0, 1.0, 2.0]
    assert data['com_iou'].tolist() == [0.0, 0.8, 0.9]


def test_bad_logs_name_file_and_line(tmp_path):
    bad = tmp_path / 'bad.jsonl'
    bad.write_text('{"type": "train", "iter": 1, "num_com": 0, "com_iou": 0}\nnot json\n{}\n')
    with pytest.raises(MiningLogError, match=r'bad.jsonl:2: not a JSON object'):
        read_mining_log(bad)
    missing = tmp_path / 'missing.jsonl'
    missing.write_text('{"type": "train", "iter": 1, "loss": 0.5}\n')
    with pytest.raises(MiningLogError, match=r'missing.jsonl:1: train record without num_com, com_iou'):
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
    dms = _write_log(tmp_path / 'dms' / 'train_log.jsonl', [0.0] * 8, [0.0] * 8)
    out = tmp_path / 'fig' / 'mining.png'
    report = _tool(repo_root).main(['--log', str(hambox), '--log', str(dms), '--out', str(out),
                                    '--json', str(tmp_path / 'm.json')])
    assert out.stat().st_size > 10_000
    assert set(report) == {'hambox', 'dms'}
    assert report['hambox']['ever_compensated'] and not report['dms']['ever_compensated']
    assert report['hambox']['num_com_last_quarter'] == pytest.approx(3.0)
    assert report['hambox']['com_iou_last_quarter'] == pytest.approx(0.9)
    curves = json.loads((tmp_path / 'm.json').read_text())['curves']
    assert curves['hambox']['iter'][-1] == 80


def test_tool_rejects_mismatched_labels(tmp_path, repo_root):
    log = _write_log(tmp_path / 'train_log.jsonl', [1.0], [0.9])
    with pytest.raises(SystemExit):
        _tool(repo_root).main(['--log', str(log), '--label', 'a', '--label', 'b',
                               '--out', str(tmp_path / 'x.png')])
