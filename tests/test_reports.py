"""The demo report and the ablation rows quote the evaluation they ran: their
numbers equal a separate evaluation of the prediction folder they name, in
each WIDER FACE mode.

Training is replaced by the oracle of ``tests/oracle_eval.py`` with its boxes
moved right by a third of their width: then the official and python-port
modes give different APs, and easy, medium and hard differ too, so a report
that quotes the wrong mode or setting cannot match by chance. Everything
after training (``run_evaluation``, the report) is the real code.
"""
import json
import os
import types

import pytest

from hambox_eval_helpers import DEMO_CONFIG, workdir
from oracle_eval import eval_overrides, write_dataset
from ppdet_hambox.jobs import ablation
from ppdet_hambox.core.workspace import create
from ppdet_hambox.jobs import demo as demo_job
from ppdet_hambox.evaluation.evaluator import run_evaluation
from ppdet_hambox.metrics import widerface

SHIFT = 0.35    # official and python-port disagree at this shift (checked below)


def fake_train_then_evaluate(cfg, eval_dir, protocol=None):
    """``train_then_evaluate`` with the oracle instead of a trained model."""
    model = create(cfg['architecture'], cfg)
    model.eval()
    result = run_evaluation(model, cfg, protocol=protocol, output_dir=eval_dir)
    trainer = types.SimpleNamespace(max_iters=cfg['max_iters'], save_dir=cfg['save_dir'])
    return {'trainer': trainer, 'model': model, 'weights': 'oracle', 'train_seconds': 0.5,
            'eval_seconds': 0.5, 'result': result}


@pytest.fixture(scope='module')
def oracle_root():
    return write_dataset(workdir() / 'oracle_reports')


def overrides(root, **extra):
    out = eval_overrides(root)
    out['OracleDetector'] = dict(out['OracleDetector'], shift=SHIFT)
    out.update(extra)
    return out


def separate_evaluation(pred_dir, root):
    gt = widerface.load_ground_truth(os.path.join(root, 'gt'))
    return {mode: widerface.evaluate(pred_dir, gt, mode=mode) for mode in widerface.MODES}


def assert_discriminating(evaluated):
    official, port = evaluated['official'], evaluated['python-port']
    assert any(official[s] != pytest.approx(port[s]) for s in widerface.SETTINGS), 'modes agree: change SHIFT'
    assert len({round(official[s], 6) for s in widerface.SETTINGS}) == 3, 'settings agree: change SHIFT'


@pytest.mark.parametrize('protocol', ['original', 'multiscale'])
def test_demo_report_quotes_the_evaluation_of_its_predictions(protocol, oracle_root, tmp_path, monkeypatch):
    monkeypatch.setattr(demo_job, 'train_then_evaluate', fake_train_then_evaluate)
    monkeypatch.setattr(demo_job, 'ensure_dataset', lambda *args: {'oracle': True})
    monkeypatch.setattr(demo_job, 'export_model', lambda *args, **kwargs: None)
    monkeypatch.setattr(demo_job, 'run_deploy', lambda *args: [])
    out = tmp_path / 'demo'
    report = demo_job.run_demo(str(DEMO_CONFIG), str(out), overrides(oracle_root, eval_protocol=protocol),
                               photos_dir=None, num_drawn=1)
    with open(out / 'report.json') as f:
        assert json.load(f) == report
    evaluated = separate_evaluation(str(out / 'eval_predictions'), oracle_root)
    assert_discriminating(evaluated)
    assert report['eval_mode'] == 'official' and report['eval_protocol'] == protocol
    for setting in widerface.SETTINGS:
        assert report[setting] == pytest.approx(evaluated['official'][setting], abs=1e-12), setting
        assert report['python_port'][setting] == pytest.approx(evaluated['python-port'][setting], abs=1e-12)


def test_ablation_row_quotes_the_evaluation_of_its_predictions(oracle_root, tmp_path, monkeypatch):
    monkeypatch.setattr(ablation, 'train_then_evaluate', fake_train_then_evaluate)
    row = ablation.run_row(str(DEMO_CONFIG), 'sms_oam_ral', 2, str(tmp_path), overrides=overrides(oracle_root),
                           protocol='vga')
    with open(tmp_path / 'sms_oam_ral' / 'result.json') as f:
        assert json.load(f) == row
    evaluated = separate_evaluation(str(tmp_path / 'sms_oam_ral' / 'eval'), oracle_root)
    assert_discriminating(evaluated)
    assert row['protocol'] == 'vga'
    for setting in widerface.SETTINGS:
        assert row[setting] == pytest.approx(evaluated['official'][setting], abs=1e-12), setting
