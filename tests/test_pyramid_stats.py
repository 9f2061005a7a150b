"""tools/pyramid_stats.py: per-level statistics of the neck outputs, and a
few training steps of the config's own schedule, on a tiny demo set."""
import importlib.util
import json

import pytest

from hambox_eval_helpers import DEMO_CONFIG, REPO_ROOT, demo_dataset


def load_tool():
    spec = importlib.util.spec_from_file_location('pyramid_stats_tool', REPO_ROOT / 'tools' / 'pyramid_stats.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(tmp_path, extra, iters):
    out = tmp_path / 'stats.json'
    opts = ['TrainDataset.dataset_dir={}'.format(demo_dataset()), 'TrainReader.batch_size=1',
            'TrainReader.num_workers=0', 'save_dir={}'.format(tmp_path / 'out')] + extra
    status = load_tool().main(['-c', str(DEMO_CONFIG), '-o'] + opts + ['--iters', str(iters), '--json', str(out)])
    return status, json.loads(out.read_text())


def test_levels_steps_and_finiteness(tmp_path, capsys):
    status, result = run(tmp_path, ['LFPN.l2_norm_scales=null'], 2)
    assert status == 0 and result['finite'] and result['failure'] is None
    levels = result['init']['levels']
    assert [lv['name'] for lv in levels] == ['P2', 'P3', 'P4', 'P5', 'P6', 'P7']
    assert levels[0]['shape'] == [32, 64, 64] and levels[5]['shape'] == [32, 2, 2]
    assert all(lv['std'] > 0 and lv['max_abs'] >= lv['std'] and lv['max_abs_logit'] > 0 for lv in levels)
    assert {'loss', 'loss_cls', 'loss_box'} <= set(result['init']['losses'])
    assert [s['iter'] for s in result['steps']] == [1, 2]
    assert len(result['after']['levels']) == 6
    printed = capsys.readouterr().out
    assert 'P2' in printed and '2 steps: finite' in printed


def test_l2_norm_fixes_the_fused_levels_magnitude(tmp_path):
    # with the norm, every location of P2..P4 has channel norm = its scale: mean^2 + var = scale^2 / C
    _, result = run(tmp_path, ['LFPN.l2_norm_scales=[10.0,8.0,5.0]'], 0)
    levels = result['init']['levels']
    for level, scale in zip(levels[:3], (10.0, 8.0, 5.0)):
        assert level['mean'] ** 2 + level['std'] ** 2 == pytest.approx(scale ** 2 / 32, rel=0.02)
    assert result['steps'] == [] and result['after'] is None


def test_bad_iters_is_a_user_error(capsys):
    assert load_tool().run_tool(load_tool().main, ['-c', str(DEMO_CONFIG), '--iters', '-1']) == 2
    assert '--iters' in capsys.readouterr().err
