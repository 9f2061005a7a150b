"""Every output safe, every failure loud.

- Files the project did not write are never replaced: the infer tools with
  ``--output_dir`` equal to the image folder, a foreign ``bbox.json``, a
  training run into a folder holding another run.
- Write failures are injected into the writer modules' two low-level calls
  (``_write``, ``_replace`` in ``utils/safe_write.py`` and
  ``deploy/python/deploy_io.py``), as a full disk would fail them: every
  tool that writes ends with one ``error:`` line naming a path and exit
  status 2, never a success line, and leaves no partial file under a real
  name (an export appears whole or not at all).
- Damaged export folders (malformed ``infer_cfg.yml``, truncated params) are
  one line for every reader.
"""
import errno
import importlib.util
import os
import shutil

import paddle
import pytest

from hambox_eval_helpers import DEMO_CONFIG, DEPLOY_INFER, demo_dataset, exported_model_dir, tiny_model, val_images
from ppdet_hambox.core.errors import EXIT_USER_ERROR, run_tool
from ppdet_hambox.utils import safe_write
from ppdet_hambox.utils.checkpoint import list_checkpoints, save_checkpoint


def load_script(path):
    spec = importlib.util.spec_from_file_location('wf_' + path.parent.name + '_' + path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TOOLS = DEMO_CONFIG.parents[2] / 'tools'


def tool(name):
    return load_script(TOOLS / (name + '.py'))


def one_error(capsys):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith('error: ') and 'Traceback' not in err, err
    return lines[0]


@pytest.fixture(autouse=True)
def fresh_console_log():
    """The package logger writes to the stdout of the test that set it up;
    drop that handler so each test's tools log to its own captured stdout."""
    import logging
    from ppdet_hambox.utils.logger import LOGGER_NAME
    logger = logging.getLogger(LOGGER_NAME)
    for handler in [h for h in logger.handlers if getattr(h, '_hambox_console', False)]:
        logger.removeHandler(handler)
    yield


def full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture(scope='module')
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp('wf_weights') / 'tiny.pdparams'
    paddle.save(tiny_model().state_dict(), str(path))
    return str(path)


def infer_argv(weights, *extra):
    return ['-c', str(DEMO_CONFIG), '-o', 'weights={}'.format(weights),
            'EvalDataset.dataset_dir={}'.format(demo_dataset()), 'TestProtocol.vga_size=[320,240]'] + list(extra)


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / 'photos'
    folder.mkdir()
    for path in val_images()[:2]:
        shutil.copy(str(path), str(folder / path.name))
    return folder


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# ----------------------------------------------------------------------------- your files

def test_infer_into_the_image_folder_is_refused_and_changes_nothing(weights, photos, capsys):
    before = snapshot(photos)
    code = run_tool(tool('infer').main, infer_argv(weights, '--infer_dir', str(photos), '--output_dir', str(photos)))
    assert code == EXIT_USER_ERROR
    line = one_error(capsys)
    assert 'was not written by this project' in line and str(photos) in line
    assert snapshot(photos) == before


def test_deploy_infer_into_the_image_folder_is_refused_and_changes_nothing(photos, capsys):
    deploy = load_script(DEPLOY_INFER)
    before = snapshot(photos)
    code = deploy.run_cli(deploy.main, ['--model_dir', str(exported_model_dir()), '--image_dir', str(photos),
                                        '--output_dir', str(photos)])
    assert code == EXIT_USER_ERROR
    assert 'was not written by this project' in one_error(capsys)
    assert snapshot(photos) == before


def test_a_foreign_bbox_json_is_kept_and_our_own_files_are_replaced(weights, photos, tmp_path, capsys):
    out = tmp_path / 'drawn'
    out.mkdir()
    (out / 'bbox.json').write_text('my own notes')
    argv = infer_argv(weights, '--infer_dir', str(photos), '--output_dir', str(out), '--save_json')
    assert run_tool(tool('infer').main, argv) == EXIT_USER_ERROR
    assert 'bbox.json' in one_error(capsys)
    assert (out / 'bbox.json').read_text() == 'my own notes'
    (out / 'bbox.json').unlink()
    assert run_tool(tool('infer').main, argv) == 0
    assert run_tool(tool('infer').main, argv) == 0, 'a second run replaces the files the first one wrote'
    capsys.readouterr()


def test_training_into_a_folder_holding_another_run_is_refused(tmp_path, capsys):
    data = demo_dataset()
    save_dir = tmp_path / 'out'
    run_dir = save_dir / 'hambox_demo'
    run_dir.mkdir(parents=True)
    net = paddle.nn.Linear(2, 2)
    opt = paddle.optimizer.SGD(parameters=net.parameters())
    sched = paddle.optimizer.lr.StepDecay(0.1, 1)
    for iteration in (10, 20, 22):
        save_checkpoint(str(run_dir), iteration, net, opt, sched)
    (run_dir / 'model_final.pdparams').write_bytes(b'an earlier run')
    before = snapshot(run_dir)
    argv = ['-c', str(DEMO_CONFIG), '-o', 'save_dir={}'.format(save_dir), 'max_iters=2',
            'TrainDataset.dataset_dir={}'.format(data), 'TrainReader.num_workers=0']
    assert run_tool(tool('train').main, argv) == EXIT_USER_ERROR
    line = one_error(capsys)
    assert 'holds another training run' in line and '-r {}'.format(run_dir) in line and 'save_dir=' in line
    after = snapshot(run_dir)
    after.pop('train.log', None)  # the log of this attempt (appended)
    before.pop('train.log', None)
    assert after == before


def test_a_run_without_checkpoints_is_refused_without_suggesting_resume(tmp_path, capsys):
    run_dir = tmp_path / 'out' / 'hambox_demo'
    run_dir.mkdir(parents=True)
    (run_dir / 'train_log.jsonl').write_text('{"type": "train", "iter": 5}\n')
    argv = ['-c', str(DEMO_CONFIG), '-o', 'save_dir={}'.format(tmp_path / 'out'), 'max_iters=2',
            'TrainDataset.dataset_dir={}'.format(demo_dataset()), 'TrainReader.num_workers=0']
    assert run_tool(tool('train').main, argv) == EXIT_USER_ERROR
    line = one_error(capsys)
    assert 'train_log.jsonl' in line and 'no checkpoint to continue from' in line and ' -r ' not in line
    assert (run_dir / 'train_log.jsonl').read_text() == '{"type": "train", "iter": 5}\n'


def test_rotation_removes_only_this_runs_checkpoints(tmp_path):
    from ppdet_hambox.utils.checkpoint import prune_checkpoints
    net = paddle.nn.Linear(2, 2)
    opt = paddle.optimizer.SGD(parameters=net.parameters())
    sched = paddle.optimizer.lr.StepDecay(0.1, 1)
    theirs = [save_checkpoint(str(tmp_path), it, net, opt, sched) for it in (10, 20, 22)]
    ours = [save_checkpoint(str(tmp_path), it, net, opt, sched) for it in (2, 4, 6)]
    removed = prune_checkpoints(str(tmp_path), 1, own=ours)
    assert removed == ours[:2]
    assert [it for it, _ in list_checkpoints(str(tmp_path))] == [6, 10, 20, 22]
    assert all(os.path.isfile(p) for p in theirs)


# ----------------------------------------------------------------------------- a full disk

def test_infer_on_a_full_disk_is_one_line_and_no_success(weights, photos, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(safe_write, '_write', full_disk)
    out = tmp_path / 'drawn'
    code = run_tool(tool('infer').main, infer_argv(weights, '--infer_dir', str(photos), '--output_dir', str(out)))
    captured = capsys.readouterr()
    assert code == EXIT_USER_ERROR
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith('error: cannot write ') and 'No space left' in lines[0]
    assert str(out) in lines[0]
    assert 'skipped' not in captured.out and not list(out.glob('*.jpg')) and not list(out.glob('.*.tmp*'))


def test_deploy_infer_on_a_full_disk_is_one_line(photos, tmp_path, capsys, monkeypatch):
    deploy = load_script(DEPLOY_INFER)
    import deploy_io
    monkeypatch.setattr(deploy_io, '_write', full_disk)
    out = tmp_path / 'drawn'
    code = deploy.run_cli(deploy.main, ['--model_dir', str(exported_model_dir()), '--image_dir', str(photos),
                                        '--output_dir', str(out), '--save_json'])
    assert code == EXIT_USER_ERROR
    line = one_error(capsys)
    assert line.startswith('error: cannot write ') and str(out) in line
    assert not [p for p in out.iterdir() if not p.name.startswith('.')]


@pytest.mark.parametrize('fault', ['_write', '_replace'])
def test_export_on_a_full_disk_leaves_no_export(weights, tmp_path, capsys, monkeypatch, fault):
    monkeypatch.setattr(safe_write, fault, full_disk)
    out = tmp_path / 'exports'
    code = run_tool(tool('export').main, infer_argv(weights, '--output_dir', str(out)))
    assert code == EXIT_USER_ERROR
    line = one_error(capsys)
    assert line.startswith('error: cannot write ') and str(out) in line
    assert not out.exists() or not list(out.iterdir()), 'a partial export was left: {}'.format(
        list(out.rglob('*')))


def test_a_failed_re_export_keeps_the_previous_export(weights, tmp_path, capsys, monkeypatch):
    out = tmp_path / 'exports'
    assert run_tool(tool('export').main, infer_argv(weights, '--output_dir', str(out))) == 0
    model_dir = out / 'hambox_demo'
    mask = os.umask(0)
    os.umask(mask)
    assert model_dir.stat().st_mode & 0o777 == 0o777 & ~mask, 'the export folder has the mode os.makedirs gives'
    before = snapshot(model_dir)
    monkeypatch.setattr(safe_write, '_replace', full_disk)
    capsys.readouterr()
    assert run_tool(tool('export').main, infer_argv(weights, '--output_dir', str(out))) == EXIT_USER_ERROR
    one_error(capsys)
    assert snapshot(model_dir) == before
    assert sorted(p.name for p in out.iterdir()) == ['hambox_demo']


def test_training_on_a_full_disk_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(safe_write, '_replace', full_disk)
    argv = ['-c', str(DEMO_CONFIG), '-o', 'save_dir={}'.format(tmp_path / 'out'), 'max_iters=1',
            'TrainDataset.dataset_dir={}'.format(demo_dataset()), 'TrainReader.num_workers=0',
            'TrainReader.batch_size=1']
    assert run_tool(tool('train').main, argv) == EXIT_USER_ERROR
    line = one_error(capsys)
    assert line.startswith('error: cannot write ') and 'iter_0000001.pdckpt' in line
    assert not list_checkpoints(str(tmp_path / 'out' / 'hambox_demo'))


@pytest.mark.parametrize('make', ['read_only', 'a_file'])
def test_json_writers_refuse_unwritable_places_in_one_line(tmp_path, make):
    from ppdet_hambox.utils.json_io import write_json
    if make == 'read_only':
        if os.geteuid() == 0:
            pytest.skip('root writes into read-only folders')
        folder = tmp_path / 'ro'
        folder.mkdir()
        folder.chmod(0o500)
        target = folder / 'x.json'
    else:
        (tmp_path / 'a_file').write_text('x')
        target = tmp_path / 'a_file' / 'x.json'
    with pytest.raises(safe_write.WriteError, match='cannot write|is a file'):
        write_json(str(target), {'a': 1})


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / 'result.json'
    safe_write.write_json(str(target), {'v': 1})
    monkeypatch.setattr(safe_write, '_write', full_disk)
    with pytest.raises(safe_write.WriteError, match='result.json: No space left'):
        safe_write.write_json(str(target), {'v': 2})
    assert target.read_text().strip().replace(' ', '').replace('\n', '') == '{"v":1}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['.ppdet_hambox_files', 'result.json']


def test_an_image_opencv_cannot_encode_is_an_error(tmp_path):
    import numpy as np
    with pytest.raises(safe_write.WriteError, match='cannot write .*x.nope'):
        safe_write.write_image(str(tmp_path / 'x.nope'), np.zeros((4, 4, 3), np.uint8))


# ----------------------------------------------------------------------------- damaged exports

def damaged_export(tmp_path, how):
    folder = tmp_path / 'damaged'
    shutil.copytree(str(exported_model_dir()), str(folder))
    if how == 'yaml':
        (folder / 'infer_cfg.yml').write_text('Preprocess: [unclosed\n')
    elif how == 'not_a_mapping':
        (folder / 'infer_cfg.yml').write_text('- just a list\n')
    elif how == 'empty_params':
        (folder / 'model.pdiparams').write_bytes(b'')
    elif how == 'truncated_params':
        data = (folder / 'model.pdiparams').read_bytes()
        (folder / 'model.pdiparams').write_bytes(data[:len(data) // 3])
    return folder


@pytest.mark.parametrize('how', ['yaml', 'not_a_mapping', 'empty_params', 'truncated_params'])
def test_damaged_exports_are_one_line_for_deploy_infer(tmp_path, capsys, how):
    deploy = load_script(DEPLOY_INFER)
    folder = damaged_export(tmp_path, how)
    code = deploy.run_cli(deploy.main, ['--model_dir', str(folder), '--image_file', str(val_images()[0]),
                                        '--output_dir', str(tmp_path / 'o')])
    assert code == EXIT_USER_ERROR
    assert str(folder) in one_error(capsys)


@pytest.mark.parametrize('how', ['yaml', 'not_a_mapping', 'empty_params', 'truncated_params'])
def test_damaged_exports_are_one_line_for_exported_evaluation(tmp_path, how):
    from hambox_eval_helpers import demo_cfg
    from ppdet_hambox.core.errors import UserError
    from ppdet_hambox.export.exported_model import ExportedPredictor
    folder = damaged_export(tmp_path, how)
    with pytest.raises(UserError, match=str(folder)):
        ExportedPredictor(str(folder), demo_cfg(), 'vga')


def test_an_interrupted_prediction_folder_is_not_scored(tmp_path):
    from ppdet_hambox.evaluation.prediction_folder import PredictionFolder
    from ppdet_hambox.metrics import widerface
    gt = widerface.load_ground_truth(str(demo_dataset() / 'eval_tools' / 'ground_truth'))
    folder = PredictionFolder(str(tmp_path / 'pred'))  # an evaluation starts, and is stopped here
    with pytest.raises(ValueError, match='did not finish'):
        widerface.load_predictions(str(tmp_path / 'pred'), gt)
    folder.complete()
    widerface.load_predictions(str(tmp_path / 'pred'), gt)  # complete (every image without detections)


def test_a_figure_name_matplotlib_cannot_write_is_one_error_and_no_file(tmp_path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig = plt.figure()
    with pytest.raises(safe_write.WriteError, match=r'plot\.xyz: not a figure format \(name it .*\.png'):
        safe_write.save_figure(fig, str(tmp_path / 'plot.xyz'))
    assert not list(tmp_path.iterdir())
    safe_write.save_figure(fig, str(tmp_path / 'plot.PNG'))
    plt.close(fig)
    assert (tmp_path / 'plot.PNG').read_bytes().startswith(b'\x89PNG')


def test_a_log_file_on_a_full_disk_is_one_error_naming_it(tmp_path, monkeypatch):
    """logging prints a traceback for a failed write and goes on; the run's log
    file instead stops the run with a WriteError naming the file."""
    import logging

    from ppdet_hambox.utils.logger import setup_logger

    path = tmp_path / 'train.log'
    logger = setup_logger(str(path))
    handler = next(h for h in logger.handlers if isinstance(h, logging.FileHandler))

    def full(*args):
        raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr(handler.stream, 'write', full)
    try:
        with pytest.raises(safe_write.WriteError, match='cannot write .*train.log: No space left on device'):
            logger.info('a line that does not fit')
    finally:
        logger.removeHandler(handler)
        handler.close()
