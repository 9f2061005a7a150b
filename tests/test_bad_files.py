"""Never lose work or files, never stop for one bad file (issue 9): prediction
folders, unreadable images, --eval checked before training, checkpoints
before evaluation, weights, sub-folders, the mining plot, the small fixes."""
import json
import logging
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import paddle
import pytest
from PIL import Image

from hambox_eval_helpers import (DEMO_CONFIG, REPO_ROOT, demo_cfg, demo_dataset, exported_model_dir, tiny_model,
                                 val_images)
from ppdet_hambox.core.errors import ConfigError, UserError, run_tool
from ppdet_hambox.core.workspace import load_config
from ppdet_hambox.evaluation import evaluator
from ppdet_hambox.evaluation.prediction_folder import MANIFEST_NAME, PredictionFolder
from ppdet_hambox.metrics.widerface import INCOMPLETE_MARKER
from ppdet_hambox.engine.trainer import Trainer
from ppdet_hambox.utils.checkpoint import list_checkpoints, read_checkpoint
from ppdet_hambox.utils.weights import MAX_UNFIT_FRACTION, WeightsError, load_weights
from test_tool_errors import load_tool
from test_trainer import run as train_toy


class Lines(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture
def log_lines():
    """Messages of the package logger (it does not propagate to pytest's)."""
    handler = Lines()
    logger = logging.getLogger('ppdet_hambox')
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


@pytest.fixture
def broken_dataset(tmp_path):
    """A copy of the demo dataset whose second val image is corrupt."""
    root = tmp_path / 'demo'
    shutil.copytree(demo_dataset(), root)
    images = sorted((root / 'WIDER_val' / 'images').rglob('*.jpg'))
    images[1].write_bytes(b'not a jpeg')
    return root, images[1]


# ----------------------------------------------------------------------------- 1. user files are never deleted

def test_output_eval_holding_other_files_is_refused_and_untouched(tmp_path, capsys):
    user_file = tmp_path / 'wider_face_split' / 'wider_face_val_bbx_gt.txt'
    user_file.parent.mkdir()
    user_file.write_text('0--Parade/x.jpg\n0\n')
    event_file = tmp_path / '0--Parade' / 'notes.txt'
    event_file.parent.mkdir()
    event_file.write_text('mine')
    tool = load_tool('eval')
    code = run_tool(tool.main, ['-c', str(DEMO_CONFIG), '-o', 'EvalDataset.dataset_dir={}'.format(demo_dataset()),
                                '--output_eval', str(tmp_path)])
    assert code == 2
    assert 'did not write' in capsys.readouterr().err
    assert user_file.read_text() == '0--Parade/x.jpg\n0\n' and event_file.read_text() == 'mine'


def test_prediction_folder_replaces_only_its_own_files(tmp_path):
    folder = PredictionFolder(str(tmp_path / 'pred'))
    (tmp_path / 'pred' / 'ev').mkdir()
    for name in ('a.txt', 'b.txt'):
        (tmp_path / 'pred' / 'ev' / name).write_text('x')
        folder.record(os.path.join('ev', name))
    new = PredictionFolder(str(tmp_path / 'pred'))  # a new evaluation: our old files go
    assert sorted(os.listdir(tmp_path / 'pred')) == sorted([MANIFEST_NAME, INCOMPLETE_MARKER])  # until complete
    new.complete()
    assert os.listdir(tmp_path / 'pred') == [MANIFEST_NAME]
    (tmp_path / 'pred' / '.DS_Store').write_text('finder')   # hidden: neither refused nor removed
    PredictionFolder(str(tmp_path / 'pred'))
    assert (tmp_path / 'pred' / '.DS_Store').read_text() == 'finder'
    (tmp_path / 'pred' / 'mine.txt').write_text('keep')
    with pytest.raises(UserError, match='mine.txt'):
        PredictionFolder(str(tmp_path / 'pred'))
    assert (tmp_path / 'pred' / 'mine.txt').read_text() == 'keep'


# ----------------------------------------------------------------------------- 3. one bad image never stops a run

def test_evaluation_scores_an_unreadable_image_without_detections(broken_dataset, tmp_path, log_lines):
    root, bad = broken_dataset
    cfg = demo_cfg(EvalDataset={'dataset_dir': str(root)})
    result = evaluator.run_evaluation(tiny_model(), cfg, protocol='vga', output_dir=str(tmp_path / 'pred'))
    assert result['num_images'] == 3 and result['num_skipped'] == 1
    assert 0.0 <= result['python_port']['hard'] <= 1.0  # the port mode did not stop on it either
    event = bad.parent.name
    assert (tmp_path / 'pred' / event / (bad.stem + '.txt')).read_text().splitlines()[1] == '0'
    assert any(str(bad) in line and 'cannot decode' in line for line in log_lines)
    summary = [line for line in log_lines if '3 images, 1 skipped' in line]
    assert summary and str(bad) in summary[0] and 'without detections' in summary[0]


def test_evaluation_reports_progress_from_the_first_image(tmp_path, log_lines):
    evaluator.run_evaluation(tiny_model(), demo_cfg(), protocol='vga', output_dir=str(tmp_path / 'p'))
    first = [line for line in log_lines if line.startswith('eval [vga] 1/3 images')]
    assert first and 'eta' in first[0]


def test_eval_tool_prints_the_result_table_once(tmp_path, capsys, log_lines):
    tool = load_tool('eval')
    tool.main(['-c', str(DEMO_CONFIG), '-o', 'EvalDataset.dataset_dir={}'.format(demo_dataset()),
               'TestProtocol.vga_size=[320,240]', '--protocol', 'vga', '--output_eval', str(tmp_path / 'p')])
    text = capsys.readouterr().out + '\n'.join(log_lines)
    assert sum(line.startswith('python-port ') for line in text.splitlines()) == 1


def _nested_images(tmp_path, corrupt=True):
    """val images in two sub-folder levels, plus a corrupt one."""
    root = tmp_path / 'images'
    for i, path in enumerate(val_images()):
        target = root / ('a' if i % 2 else 'b') / 'deeper' / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    if corrupt:
        (root / 'a' / 'broken.jpg').write_bytes(b'')
    return root


@pytest.fixture(scope='module')
def bomb(tmp_path_factory):
    """A 1-bit PNG of a few kB declaring 8000 x 8000 = 64 M pixels (over the 40 M default)."""
    path = tmp_path_factory.mktemp('bomb') / 'bomb.png'
    Image.new('1', (8000, 8000)).save(path)
    assert path.stat().st_size < 100_000
    return path


def test_infer_tools_skip_an_image_over_max_pixels_from_its_header(tmp_path, bomb, log_lines, capsys):
    root = _nested_images(tmp_path, corrupt=False)
    shutil.copy(bomb, root / 'a' / 'bomb.png')
    weights = tmp_path / 'tiny.pdparams'
    paddle.save(tiny_model().state_dict(), str(weights))
    code = run_tool(load_tool('infer').main, ['-c', str(DEMO_CONFIG), '-o', 'weights={}'.format(weights),
                                              'TestProtocol.vga_size=[320,240]', '--infer_dir', str(root),
                                              '--output_dir', str(tmp_path / 'out'), '--protocol', 'vga'])
    assert code == 1
    assert any('bomb.png' in line and '64000000 pixels is over the limit of 40000000' in line for line in log_lines)
    assert any('{} images, 1 skipped'.format(len(val_images()) + 1) in line for line in log_lines)
    assert not (tmp_path / 'out' / 'a' / 'bomb.png').exists()
    deploy = load_tool('deploy')
    capsys.readouterr()
    code = deploy.run_cli(deploy.main, ['--model_dir', str(exported_model_dir()), '--image_dir', str(root),
                                        '--output_dir', str(tmp_path / 'deploy')])
    err = capsys.readouterr().err
    assert code == 1
    assert 'warning: skipped {}: image of 8000x8000 = 64000000 pixels is over the limit'.format(
        root / 'a' / 'bomb.png') in err
    assert '{} images, 1 skipped: {}'.format(len(val_images()) + 1, root / 'a' / 'bomb.png') in err
    small = val_images()[0]
    code = deploy.run_cli(deploy.main, ['--model_dir', str(exported_model_dir()), '--image_file', str(small),
                                        '--output_dir', str(tmp_path / 'deploy'), '--max_pixels', '1K'])
    assert code == 1 and 'over the limit of 1000 pixels' in capsys.readouterr().err


def test_infer_tool_recurses_keeps_layout_and_skips_a_bad_image(tmp_path, log_lines):
    weights = tmp_path / 'tiny.pdparams'
    paddle.save(tiny_model().state_dict(), str(weights))
    root = _nested_images(tmp_path)
    tool = load_tool('infer')
    code = run_tool(tool.main, ['-c', str(DEMO_CONFIG), '-o', 'weights={}'.format(weights),
                                'TestProtocol.vga_size=[320,240]', '--infer_dir', str(root),
                                '--output_dir', str(tmp_path / 'out'), '--protocol', 'vga'])
    assert code == 1, 'a skipped image makes the exit status 1'
    written = sorted(p.relative_to(tmp_path / 'out') for p in (tmp_path / 'out').rglob('*.jpg'))
    expected = sorted(p.relative_to(root) for p in root.rglob('*.jpg') if p.name != 'broken.jpg')
    assert written == expected and len(written) == len(val_images())
    assert any('broken.jpg' in line and 'no such file' not in line for line in log_lines if 'skipped' in line)
    assert any('{} images, 1 skipped'.format(len(val_images()) + 1) in line for line in log_lines)


def test_deploy_recurses_keeps_layout_and_skips_a_bad_image(tmp_path, capsys):
    root = _nested_images(tmp_path)
    deploy = load_tool('deploy')
    code = deploy.run_cli(deploy.main, ['--model_dir', str(exported_model_dir()), '--image_dir', str(root),
                                        '--output_dir', str(tmp_path / 'out'), '--threshold', '0.3'])
    assert code == 1
    written = sorted(p.relative_to(tmp_path / 'out') for p in (tmp_path / 'out').rglob('*.jpg'))
    assert written == sorted(p.relative_to(root) for p in root.rglob('*.jpg') if p.name != 'broken.jpg')
    err = capsys.readouterr().err
    assert 'warning: skipped {}'.format(root / 'a' / 'broken.jpg') in err
    assert '{} images, 1 skipped: {}'.format(len(val_images()) + 1, root / 'a' / 'broken.jpg') in err


# ----------------------------------------------------------------------------- 2. --eval checked before iteration 1

LFS_POINTER = 'version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize 52311\n'.format('0' * 64)


@pytest.mark.parametrize('case', ['image_dir_typo', 'lfs_pointers'])
def test_training_on_unreadable_images_stops_at_once_with_one_line(tmp_path, case):
    root = tmp_path / 'demo'
    shutil.copytree(demo_dataset(), root)
    overrides = ['TrainDataset.dataset_dir={}'.format(root), 'save_dir={}'.format(tmp_path / 'out')]
    if case == 'image_dir_typo':
        overrides.append('TrainDataset.image_dir=WIDER_trian/images')
    else:
        for path in (root / 'WIDER_train').rglob('*.jpg'):
            path.write_text(LFS_POINTER)
    start = time.monotonic()
    result = subprocess.run([sys.executable, str(REPO_ROOT / 'tools' / 'train.py'), '-c', str(DEMO_CONFIG),
                             '-o', *overrides], capture_output=True, text=True, timeout=300)
    assert time.monotonic() - start < 120
    assert result.returncode == 2, result.stderr[-2000:]
    assert 'Traceback' not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith('error: ')]
    assert len(errors) == 1
    if case == 'image_dir_typo':
        assert 'TrainDataset.image_dir: no folder {}'.format(root / 'WIDER_trian' / 'images') in errors[0]
    else:
        first = sorted((root / 'WIDER_train' / 'images').rglob('*.jpg'))[0]
        assert 'images in {}'.format(root / 'WIDER_train' / 'images') in errors[0]
        assert '{} (a Git LFS pointer, not the image'.format(first) in errors[0]
    assert not list((tmp_path / 'out').rglob('*.pdckpt'))


@pytest.fixture
def toy_config(tmp_path, repo_root):
    from test_trainer import CONFIG
    import textwrap
    path = tmp_path / 'toy.yml'
    path.write_text(textwrap.dedent(CONFIG.format(runtime=repo_root / 'configs' / 'runtime.yml')))
    return str(path)


def _toy_trainer(config, save_dir, overrides):
    cfg = load_config(config, ['save_dir={}'.format(save_dir)] + overrides)
    return Trainer(cfg)


@pytest.mark.parametrize('overrides, message', [
    (['metric=coc'], "-o override: metric 'coc' has no evaluation"),
    (['eval_protocol=vgaa'], "-o override: eval_protocol 'vgaa' is not a test protocol"),
    (['wider_gt_dir=EMPTY'], 'no wider_face_val.mat, wider_easy_val.mat'),
    (['EvalDataset.anno_path=missing_gt.txt'], 'missing_gt.txt: cannot read'),
    (['best_metric=hardd'], "best_metric 'hardd' is not a score of metric widerface"),
])
def test_eval_setup_fails_before_the_first_iteration(toy_config, tmp_path, overrides, message):
    overrides = [o.replace('EMPTY', str(tmp_path)) for o in overrides]
    trainer = _toy_trainer(toy_config, tmp_path / 'out', ['EvalDataset.name=WIDERFaceDataset',
                                                          'EvalDataset.dataset_dir={}'.format(demo_dataset()),
                                                          'EvalDataset.image_dir=WIDER_val/images',
                                                          'EvalDataset.anno_path=wider_face_split/'
                                                          'wider_face_val_bbx_gt.txt'] + overrides)
    with pytest.raises(UserError) as info:
        trainer.train(validate=True)
    assert message in str(info.value)
    assert trainer.raw_model.calls == 0, 'no iteration may run before the check'


def test_an_evaluation_folder_of_other_files_fails_before_the_first_iteration(toy_config, tmp_path,
                                                                            monkeypatch):
    """A folder a snapshot evaluation will write to (eval_iter_N, N after the
    start) holding files not written by this project: refused at start."""
    monkeypatch.setattr(evaluator, 'check_evaluation', lambda cfg, protocol=None: 'widerface')
    stray = tmp_path / 'out' / 'toy' / 'eval_iter_3' / '0--Parade' / 'notes.txt'
    stray.parent.mkdir(parents=True)
    stray.write_text('mine')
    trainer = _toy_trainer(toy_config, tmp_path / 'out', ['EvalDataset={name: TtToyFaces}'])
    with pytest.raises(UserError, match=r'evaluation folder .*eval_iter_3 holds 1 file\(s\)'):
        trainer.train(validate=True)
    assert trainer.raw_model.calls == 0
    assert stray.read_text() == 'mine'


def test_train_then_evaluate_checks_its_prediction_folder_before_training(toy_config, tmp_path):
    from ppdet_hambox.jobs.train_eval import train_then_evaluate
    stray = tmp_path / 'pred' / 'notes.txt'
    stray.parent.mkdir()
    stray.write_text('mine')
    cfg = load_config(toy_config, ['save_dir={}'.format(tmp_path / 'out')])
    with pytest.raises(UserError, match='prediction folder .*pred holds 1 file'):
        train_then_evaluate(cfg, str(tmp_path / 'pred'))
    assert not (tmp_path / 'out').exists() or not list_checkpoints(str(tmp_path / 'out' / 'toy'))
    assert stray.read_text() == 'mine'


def test_snapshot_checkpoint_is_written_before_its_evaluation(toy_config, tmp_path, monkeypatch):
    def failing_evaluation(model, cfg, protocol=None, output_dir=None):
        raise RuntimeError('evaluation crashed')

    monkeypatch.setattr(evaluator, 'check_evaluation', lambda cfg, protocol=None: 'widerface')
    monkeypatch.setattr(evaluator, 'run_evaluation', failing_evaluation)
    with pytest.raises(RuntimeError, match='evaluation crashed'):
        train_toy(toy_config, tmp_path, ['EvalDataset={name: TtToyFaces}'], validate=True)
    assert [it for it, _ in list_checkpoints(str(tmp_path / 'toy'))] == [3]


def test_resume_takes_the_best_of_the_evaluation_after_the_checkpoint(toy_config, tmp_path, monkeypatch):
    scores = iter([0.3, 0.6, 0.4])

    def scripted_evaluation(model, cfg, protocol=None, output_dir=None):
        hard = next(scores)
        if hard == 0.6:
            time.sleep(1.1)  # the final one: a writer reopened now would get a new (time-stamped) file
        return {'hard': hard}

    monkeypatch.setattr(evaluator, 'check_evaluation', lambda cfg, protocol=None: 'widerface')
    monkeypatch.setattr(evaluator, 'run_evaluation', scripted_evaluation)
    train_toy(toy_config, tmp_path, ['EvalDataset={name: TtToyFaces}', 'max_iters=6', 'use_vdl=true'],
              validate=True)
    out = tmp_path / 'toy'
    vdl_files = os.listdir(out / 'vdl')
    assert len(vdl_files) == 1, 'the final evaluation goes to the same VisualDL record file'
    from visualdl import LogReader
    reader = LogReader(file_path=str(out / 'vdl' / vdl_files[0]))
    assert [(r.id, round(r.value, 4)) for r in reader.get_data('scalar', 'eval/hard')] == [(3, 0.3), (6, 0.6)]
    # checkpoint 6 was written before the evaluation at 6 found the best (0.6);
    # the resumed run must know it, so its evaluation at 9 (0.4) is no new best
    assert read_checkpoint(str(out / 'iter_0000006.pdckpt'))['extra']['callbacks']['EvalCallback']['best'][
        'iter'] == 3
    trainer = _toy_trainer(toy_config, tmp_path, ['EvalDataset={name: TtToyFaces}', 'max_iters=9'])
    trainer.resume(str(out / 'iter_0000006.pdckpt'))
    trainer.train(validate=True)
    best = {'metric': 'hard', 'value': 0.6, 'iter': 6}
    assert json.loads((out / 'best_model.json').read_text()) == best
    assert read_checkpoint(str(out / 'iter_0000009.pdckpt'))['extra']['callbacks']['EvalCallback']['best'] == best


# ----------------------------------------------------------------------------- 5. weights

def test_train_tool_uses_or_refuses_weights(toy_config, tmp_path, capsys, log_lines):
    tool = load_tool('train')
    first = train_toy(toy_config, tmp_path / 'a', ['max_iters=2'])
    weights = tmp_path / 'a' / 'toy' / 'model_final.pdparams'
    base = ['-c', toy_config, '-o', 'save_dir={}'.format(tmp_path / 'b'), 'max_iters=1',
            'weights={}'.format(weights)]
    code = run_tool(tool.main, base + ['pretrain_weights={}'.format(weights)])
    assert code == 2 and 'pretrain_weights is the key' in capsys.readouterr().err
    code = run_tool(tool.main, base + ['-r', str(tmp_path / 'a' / 'toy')])
    assert code == 2 and '-r resumes a checkpoint' in capsys.readouterr().err
    cfg = load_config(toy_config, ['weights={}'.format(weights)])
    assert tool.initial_weights(cfg, None) == str(weights)
    assert any('used as the initial weights' in line for line in log_lines)
    assert first.iteration == 2


def test_weights_that_mostly_do_not_fit_are_an_error(tmp_path):
    layer = paddle.nn.Sequential(*[paddle.nn.Linear(2, 2) for _ in range(5)])
    state = layer.state_dict()
    path = tmp_path / 'w.pdparams'
    paddle.save({k: v for k, v in state.items() if k.startswith(('0.', '1.'))}, str(path))  # 4 of 10
    with pytest.raises(WeightsError, match=r'6 of its 10 tensors would not be loaded \(6 missing'):
        load_weights(layer, str(path), max_unfit=MAX_UNFIT_FRACTION)
    assert len(load_weights(layer, str(path))['loaded']) == 4  # opted in: loads what fits


# ----------------------------------------------------------------------------- 7. evidence plots, small fixes

def test_plot_mining_ignores_windows_without_compensated_anchors(tmp_path):
    num = [0.0, 2.0, 0.0, 0.0, 1.0, 0.0, 3.0, 0.0]
    iou = [0.0, 0.84, 0.0, 0.0, 0.86, 0.0, 0.83, 0.0]
    log = tmp_path / 'run' / 'train_log.jsonl'
    log.parent.mkdir()
    log.write_text(''.join(json.dumps({'type': 'train', 'iter': 10 * (i + 1), 'num_compensated': n,
                                       'compensated_iou': q, 'counts': {'num_compensated': 1, 'compensated_iou': n}})
                           + '\n' for i, (n, q) in enumerate(zip(num, iou))))
    report = load_tool('plot_mining').main(['--log', str(log), '--out', str(tmp_path / 'm.png'),
                                            '--smooth', '2', '--json', str(tmp_path / 'm.json')])
    weighted = (2 * 0.84 + 1 * 0.86 + 3 * 0.83) / 6
    assert report['run']['iou_whole_run'] == pytest.approx(weighted)
    assert report['run']['iou_last_quarter'] == pytest.approx(0.83)
    curve = json.loads((tmp_path / 'm.json').read_text())['curves']['run']['iou']
    assert curve[0] is None and curve[3] is None  # gaps, not 0
    assert min(v for v in curve if v is not None) >= 0.83 - 1e-9
    from ppdet_hambox.analysis.plotting import mined_only
    assert np.isnan(mined_only(num, iou)[[0, 2, 3, 5, 7]]).all()


def test_anchor_stats_title_names_the_annotation_file():
    from ppdet_hambox.analysis.plotting import anchor_stats_title
    title = anchor_stats_title({'protocol': 'original', 'annotation': '/d/wider_face_val_bbx_gt.txt',
                                'face_set': {'faces': 12}})
    assert title == 'wider_face_val_bbx_gt.txt (12 faces), protocol: original'


def test_benchmark_data_empty_folder_is_an_error(tmp_path, capsys):
    tool = load_tool('benchmark_data')
    assert run_tool(tool.main, ['--data-dir', str(tmp_path), '--num-samples', '1']) == 2
    assert 'no image' in capsys.readouterr().err


def test_metric_cli_both_modes_keeps_official_numbers_when_a_file_is_missing(tmp_path, capsys, metric_tool):
    from widerface_testdata import box_file, write_ground_truth, write_raw
    gt_dir = write_ground_truth(str(tmp_path / 'gt'), [('ev', 'a', [[0, 0, 10, 10]]), ('ev', 'b', [[5, 5, 20, 20]])])
    write_raw(str(tmp_path / 'pred'), 'ev', 'a', box_file('a', [[0, 0, 10, 10, 0.9], [50, 50, 9, 9, 0.2]]))
    assert metric_tool.main(['widerface', '--pred', str(tmp_path / 'pred'), '--gt', gt_dir, '--mode', 'both']) == 2
    captured = capsys.readouterr()
    assert json.loads(captured.out.strip().splitlines()[-1])['official']['easy'] > 0.4
    assert 'error: python-port mode:' in captured.err


def test_check_evaluation_blames_the_config_file_for_its_own_values(tmp_path):
    cfg = demo_cfg()
    cfg['__origins__'] = {}
    cfg['metric'] = 'coc'
    with pytest.raises(ConfigError, match='hambox_demo.yml: metric'):
        evaluator.check_evaluation(cfg)
