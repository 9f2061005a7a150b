"""tools/ablate.py: row overrides, budget scaling, and a two-row run on a tiny demo set (plumbing only)."""
import importlib.util
import json

import numpy as np
import paddle
import pytest
import yaml

from ppdet_hambox.jobs.ablation import ROWS, budget_overrides, format_table, row_overrides


def test_row_overrides_follow_the_paper_rows():
    assert row_overrides('baseline')['AnchorGenerator'] == {'ratio': 1.0}
    assert row_overrides('nams')['HAMBox']['assigner'] == 'NAMSAssigner'
    assert row_overrides('sms_oam')['HAMBoxLoss'] == {'use_ral': False}
    assert row_overrides('sms_oam_ral')['HAMBoxLoss'] == {'use_ral': True}
    with pytest.raises(ValueError, match='unknown ablation row'):
        row_overrides('zcc')


def test_budget_scales_the_schedule():
    cfg = {'max_iters': 3000, 'log_iter': 20, 'LearningRate': {'schedulers': [
        {'PiecewiseDecay': {'milestones': [2400], 'gamma': 0.1}},
        {'LinearWarmup': {'steps': 200, 'start_factor': 0.1}}]}}
    out = budget_overrides(cfg, 300)
    assert out['max_iters'] == 300 and out['snapshot_iter'] == 300 and out['log_iter'] == 20
    assert out['LearningRate']['schedulers'][0]['PiecewiseDecay'] == {'milestones': [240], 'gamma': 0.1}
    assert out['LearningRate']['schedulers'][1]['LinearWarmup']['steps'] == 150
    assert budget_overrides(cfg, 50)['LearningRate']['schedulers'][1]['LinearWarmup']['steps'] == 25
    assert cfg['LearningRate']['schedulers'][0]['PiecewiseDecay']['milestones'] == [2400]
    assert 'LearningRate' not in budget_overrides(cfg, 300, scale_schedule=False)
    assert budget_overrides(cfg, 5)['log_iter'] == 5


def _fake_row(name, hard):
    label, flags, ratio, assigner, _ = ROWS[name]
    return {'label': label, 'flags': dict(zip(('baseline', 'sms', 'oam', 'ral'), map(bool, flags))),
            'ratio': ratio, 'assigner': assigner, 'easy': 0.5, 'medium': 0.4, 'hard': hard,
            'paper_wider_val': {'easy': 0.9, 'medium': 0.9, 'hard': 0.9}}


def test_markdown_table_has_one_line_per_row():
    table = format_table([_fake_row('baseline', 0.1), _fake_row('sms_oam_ral', None)], markdown=True)
    lines = table.splitlines()
    assert len(lines) == 4 and lines[0].startswith('| row | Baseline | SMS | OAM | RAL')
    assert '| Baseline (ratio 1.00) | x | - | - | - | 1.00 | SMS | 0.5000 | 0.4000 | 0.1000 |' in lines[2]
    assert '| SMS + OAM + RAL | - | x | x | x | 0.68 | HAMBox | 0.5000 | 0.4000 | n/a |' in lines[3]


def test_two_rows_with_a_tiny_budget(tmp_path, repo_root):
    from ppdet_hambox.data.source import demo

    data = tmp_path / 'demo'
    demo.generate(str(data), seed=1, num_train=4, num_val=2, size=(128, 128))
    config = tmp_path / 'tiny.yml'
    config.write_text(yaml.safe_dump({
        '_BASE_': [str(repo_root / 'configs' / 'demo' / 'hambox_demo.yml')],
        'TrainDataset': {'dataset_dir': str(data)},
        'EvalDataset': {'dataset_dir': str(data)},
        'ResNet': {'width_mult': 0.125},
        'LFPN': {'out_channels': 16},
        'HAMBoxHead': {'feat_channels': 16},
        'TrainReader': {'batch_size': 2, 'num_workers': 0},
        'EvalReader': {'num_workers': 0},
        'eval_protocol': 'original',
    }))
    spec = importlib.util.spec_from_file_location('ablate_tool', repo_root / 'tools' / 'ablate.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = tmp_path / 'out'
    rows = tool.main(['-c', str(config), '--rows', 'baseline,sms_oam_ral', '--max-iters', '2',
                      '--seed', '7', '--output-dir', str(out), '--no-generate'])
    assert [r['row'] for r in rows] == ['baseline', 'sms_oam_ral']
    saved = json.loads((out / 'ablation.json').read_text())
    assert [r['assigner'] for r in saved['rows']] == ['SMSAssigner', 'HAMBoxAssigner']
    assert all(r[s] is None or 0.0 <= r[s] <= 1.0 for r in rows for s in ('easy', 'medium', 'hard'))
    assert any(r['hard'] is not None for r in rows)
    assert all(r['seed'] == 7 and r['max_iters'] == 2 and r['mining'] is not None for r in rows)
    assert {'compensated_num_last_quarter', 'compensated_iou_last_quarter', 'ignored_num_last_quarter'} <= set(
        rows[1]['mining'])
    assert (out / 'ablation.md').read_text().count('\n| ') == 3
    # the rows really differ: different anchors and losses give different weights
    first, second = (paddle.load(r['weights']) for r in rows)
    key = next(k for k in first if k.endswith('cls_pred.weight'))
    assert not np.allclose(first[key].numpy(), second[key].numpy())
