"""Evaluating the exported model (Paddle Inference, oneDNN on) gives dygraph's
AP under every protocol; tools/eval.py --model_dir runs it; precisions the
machine cannot run are refused with one line."""
import importlib.util
import json

import numpy as np
import pytest

from hambox_eval_helpers import DEMO_CONFIG, REPO_ROOT, demo_cfg, demo_dataset, exported_model_dir, tiny_model, workdir
from ppdet_hambox.core.errors import UserError
from ppdet_hambox.core.workspace import create
from ppdet_hambox.evaluation.evaluator import run_evaluation
from ppdet_hambox.export.exported_model import ExportedPredictor
from test_precision import export_with_cut

SETTINGS = ('easy', 'medium', 'hard')


def low_cut_export():
    """The tiny model exported with the multiscale passes' score cut baked in."""
    out = workdir() / 'export_low_cut'
    if not (out / 'model.json').is_file():
        cut = create('TestProtocol', demo_cfg()).ms_score_threshold
        export_with_cut(out, cut)
    return out


def pseudo_ground_truth_cfg(folder, protocol):
    """The demo config whose val ground truth is every other detection
    (score >= 0.2) of the dygraph tiny model under ``protocol``, rounded to whole pixels: the
    untrained model then has an AP well inside (0, 1), with false positives
    ranked among true ones, so a changed score or box moves it."""
    import cv2
    from ppdet_hambox.core.workspace import build_component
    from ppdet_hambox.evaluation.predictor import Predictor
    from widerface_testdata import write_ground_truth
    cfg = demo_cfg()
    predictor = Predictor(tiny_model(), cfg, protocol)
    images = []
    for record in build_component(cfg['EvalDataset'], cfg, 'EvalDataset'):
        dets = predictor.detect(cv2.imread(record['im_file']))
        faces = dets[dets[:, 4] >= 0.2][::2, :4]
        images.append((record['event'], record['name'],
                       np.round(np.concatenate([faces[:, :2], faces[:, 2:] - faces[:, :2]], axis=1))))
    assert sum(len(b) for _, _, b in images) >= 3
    return demo_cfg(wider_gt_dir=write_ground_truth(str(folder), images))


@pytest.mark.parametrize('protocol', ['vga', 'original', 'multiscale'])
def test_exported_fp32_ap_equals_dygraph(protocol, tmp_path):
    cfg = pseudo_ground_truth_cfg(tmp_path / 'gt', protocol)
    model_dir = low_cut_export() if protocol == 'multiscale' else exported_model_dir()
    dygraph = run_evaluation(tiny_model(), cfg, protocol=protocol, output_dir=str(tmp_path / 'dygraph'))
    predictor = ExportedPredictor(str(model_dir), cfg, protocol)
    exported = run_evaluation(None, cfg, protocol=protocol, output_dir=str(tmp_path / 'exported'),
                              predictor=predictor)
    assert exported['protocol'] == protocol and exported['num_images'] == dygraph['num_images'] > 0
    assert 0.1 < dygraph['hard'] < 0.95, dygraph
    for setting in SETTINGS:
        assert abs(exported[setting] - dygraph[setting]) <= 0.002, (setting, exported, dygraph)
        assert abs(exported['python_port'][setting] - dygraph['python_port'][setting]) <= 0.002


def test_exported_predictor_detections_match_dygraph_boxes():
    import cv2
    from hambox_eval_helpers import val_images
    from ppdet_hambox.evaluation.predictor import Predictor
    cfg = demo_cfg()
    ours, theirs = ExportedPredictor(str(exported_model_dir()), cfg, 'vga'), Predictor(tiny_model(), cfg, 'vga')
    counts = []
    for path in val_images():
        image = cv2.imread(str(path))
        got, expected = ours.detect(image), theirs.detect(image)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=2e-3)
        counts.append(len(got))
    assert max(counts) > 0


def test_eval_tool_model_dir(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location('eval_tool', REPO_ROOT / 'tools' / 'eval.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tiny_model()
    common = ['-c', str(DEMO_CONFIG), '-o', 'EvalDataset.dataset_dir={}'.format(demo_dataset()),
              'TestProtocol.vga_size=[320,240]', '--protocol', 'vga']
    result = tool.main(common + ['--model_dir', str(exported_model_dir()), '--output_eval', str(tmp_path / 'p')])
    printed = capsys.readouterr().out.strip().splitlines()
    assert json.loads(printed[-1])['model_dir'] == str(exported_model_dir())
    assert result['precision'] == 'fp32' and result['protocol'] == 'vga'
    with pytest.raises(UserError, match='--model_dir .*: no (infer_cfg.yml|model.json)'):
        tool.main(common + ['--model_dir', str(tmp_path), '--output_eval', str(tmp_path / 'q')])


def test_unavailable_precisions_are_one_line_errors(monkeypatch):
    from paddle.base import core
    monkeypatch.setattr(core, 'supports_bfloat16', lambda: False)
    with pytest.raises(UserError, match='bf16: this CPU has no native bfloat16') as err:
        ExportedPredictor(str(exported_model_dir()), demo_cfg(), 'vga', precision='bf16', device='cpu')
    assert '\n' not in str(err.value)
    with pytest.raises(UserError, match='fp16 runs on a GPU'):
        ExportedPredictor(str(exported_model_dir()), demo_cfg(), 'vga', precision='fp16', device='cpu')
    with pytest.raises(UserError, match='--precision must be one of'):
        ExportedPredictor(str(exported_model_dir()), demo_cfg(), 'vga', precision='int4', device='cpu')


def test_export_cut_above_a_pass_cut_is_said_once(caplog):
    import cv2
    from hambox_eval_helpers import val_images
    predictor = ExportedPredictor(str(exported_model_dir()), demo_cfg(), 'multiscale')
    with caplog.at_level('WARNING', logger='ppdet_hambox.export.exported_model'):
        for path in val_images()[:2]:
            predictor.detect(cv2.imread(str(path)))
    warnings = [r for r in caplog.records if 'HAMBoxPostProcess.score_threshold' in r.getMessage()]
    assert len(warnings) == 1
