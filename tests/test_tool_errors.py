"""Every tool reports bad user input as one ``error:`` line naming the file,
key or flag, with exit status 2 and no traceback (issue 9, item 4)."""
import importlib.util
import os
import subprocess
import sys

import paddle
import pytest

from hambox_eval_helpers import DEMO_CONFIG, DEPLOY_INFER, REPO_ROOT, demo_dataset, exported_model_dir, tiny_model
from ppdet_hambox.core.errors import EXIT_USER_ERROR, run_tool


def load_script(path):
    spec = importlib.util.spec_from_file_location('tool_' + path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_tool(name):
    return load_script(REPO_ROOT / 'tools' / (name + '.py') if name != 'deploy' else DEPLOY_INFER)


def fails(capsys, name, argv):
    """Run tool ``name`` through its run_tool / run_cli; the one stderr error line."""
    tool = load_tool(name)
    runner = tool.run_cli if name == 'deploy' else run_tool
    capsys.readouterr()
    assert runner(tool.main, argv) == EXIT_USER_ERROR
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith('error: ')]
    assert len(errors) == 1
    return errors[0]


@pytest.fixture(scope='module')
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp('weights') / 'tiny.pdparams'
    paddle.save(tiny_model().state_dict(), str(path))
    return path


@pytest.fixture(scope='module')
def half_weights(tmp_path_factory):
    """The tiny model's weights with every second tensor dropped."""
    state = tiny_model().state_dict()
    path = tmp_path_factory.mktemp('weights') / 'half.pdparams'
    paddle.save({k: v for i, (k, v) in enumerate(sorted(state.items())) if i % 2}, str(path))
    return path


def demo_opts(*extra):
    return ['-c', str(DEMO_CONFIG), '-o', 'EvalDataset.dataset_dir={}'.format(demo_dataset()),
            'TestProtocol.vga_size=[320,240]'] + list(extra)


def test_eval_tool_errors(capsys, tmp_path, weights, half_weights):
    line = fails(capsys, 'eval', ['-c', str(tmp_path / 'nope.yml')])
    assert 'config file not found' in line and 'nope.yml' in line
    line = fails(capsys, 'eval', demo_opts('weights={}'.format(tmp_path / 'missing.pdparams')))
    assert 'weights file not found' in line and 'missing' in line
    line = fails(capsys, 'eval', demo_opts('metricc=widerface'))
    assert "'metricc'" in line
    line = fails(capsys, 'eval', demo_opts('weights={}'.format(weights), 'metric=fddb',
                                           'FDDBEval.folds_dir={}'.format(tmp_path / 'no_folds')))
    assert line.startswith('error: FDDBEval') and 'no_folds' in line
    line = fails(capsys, 'eval', demo_opts('weights={}'.format(half_weights)))
    assert 'half.pdparams does not fit' in line and '--allow_partial_weights' in line
    assert 'missing from the file' in line


def test_partial_weights_are_summarised_not_warned_per_tensor(half_weights, recwarn):
    from ppdet_hambox.utils.cli import build_model
    from hambox_eval_helpers import demo_cfg
    build_model(demo_cfg(), str(half_weights), allow_partial=True)
    assert not [w for w in recwarn if 'Skip loading' in str(w.message)]


def test_infer_and_export_tool_errors(capsys, tmp_path, weights):
    line = fails(capsys, 'infer', demo_opts('weights={}'.format(weights), '--infer_img', str(tmp_path / 'x.jpg')))
    assert line == 'error: --infer_img {}: no such file'.format(tmp_path / 'x.jpg')
    line = fails(capsys, 'infer', demo_opts('weights={}'.format(weights), '--infer_dir', str(tmp_path / 'none')))
    assert '--infer_dir' in line and 'no such folder' in line
    line = fails(capsys, 'infer', demo_opts('weights={}'.format(tmp_path / 'w.pdparams'),
                                            '--infer_img', str(DEMO_CONFIG)))
    assert 'weights file not found' in line
    line = fails(capsys, 'export', demo_opts('weights={}'.format(tmp_path / 'w.pdparams')))
    assert 'weights file not found' in line
    line = fails(capsys, 'export', demo_opts('HAMBoxHead.feat_channel=3'))
    assert 'feat_channel' in line


def test_train_tool_missing_dataset(capsys, tmp_path):
    line = fails(capsys, 'train', ['-c', str(DEMO_CONFIG), '-o', 'save_dir={}'.format(tmp_path),
                                   'TrainDataset.dataset_dir={}'.format(tmp_path / 'nowhere')])
    assert str(tmp_path / 'nowhere') in line and 'wider_face_train_bbx_gt.txt' in line


def test_train_tool_checks_eval_setup_before_training(capsys, tmp_path):
    data = demo_dataset()
    line = fails(capsys, 'train', ['-c', str(DEMO_CONFIG), '--eval', '-o', 'save_dir={}'.format(tmp_path),
                                   'TrainDataset.dataset_dir={}'.format(data),
                                   'EvalDataset.dataset_dir={}'.format(data), 'metric=coc'])
    assert line.startswith("error: -o override: metric 'coc' has no evaluation")
    assert not list(tmp_path.rglob('*.pdckpt')) and not list(tmp_path.rglob('train_log.jsonl'))


def test_deploy_errors(capsys, tmp_path):
    line = fails(capsys, 'deploy', ['--model_dir', str(tmp_path / 'none'), '--image_file', 'x.jpg'])
    assert '--model_dir' in line and 'no such folder' in line
    line = fails(capsys, 'deploy', ['--model_dir', str(tmp_path), '--image_file', 'x.jpg'])
    assert 'model.json' in line and 'infer_cfg.yml' in line
    line = fails(capsys, 'deploy', ['--model_dir', str(exported_model_dir()), '--image_dir', str(tmp_path / 'no')])
    assert '--image_dir' in line and 'no such folder' in line
    if not paddle.is_compiled_with_cuda():
        line = fails(capsys, 'deploy', ['--model_dir', str(exported_model_dir()), '--image_file', 'x.jpg',
                                        '--device', 'gpu'])
        assert '--device gpu' in line and 'no CUDA' in line


def test_analysis_and_benchmark_tool_errors(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the demo job makes its output folder first
    line = fails(capsys, 'plot_mining', ['--log', str(tmp_path / 'train_log.jsonl'), '--out', 'x.png'])
    assert 'train_log.jsonl: no such log file' in line
    line = fails(capsys, 'anchor_stats', ['--anno', str(tmp_path / 'gt.txt'), '--designs', 'single'])
    assert 'gt.txt' in line
    line = fails(capsys, 'match_stats', demo_opts('weights={}'.format(tmp_path / 'w.pdparams')))
    assert 'weights file not found' in line
    line = fails(capsys, 'benchmark_data', ['--data-dir', str(tmp_path / 'photos')])
    assert '--data-dir' in line and 'no such folder' in line
    monkeypatch.delenv('HAMBOX_SHARED_DATA', raising=False)
    line = fails(capsys, 'benchmark_eval', [])
    assert '--gt DIR is needed' in line
    line = fails(capsys, 'ablate', ['-c', str(DEMO_CONFIG), '-o', 'max_iter=3', '--no-generate'])
    assert "'max_iter'" in line
    line = fails(capsys, 'demo', ['-c', str(DEMO_CONFIG), '-o', 'max_iter=3'])
    assert "'max_iter'" in line


@pytest.mark.parametrize('command', [
    [sys.executable, str(REPO_ROOT / 'tools' / 'eval.py'), '-c', 'missing_config.yml'],
    [sys.executable, str(DEPLOY_INFER), '--model_dir', 'missing_model_dir', '--image_file', 'x.jpg'],
])
def test_scripts_exit_2_with_one_line_and_no_traceback(command, tmp_path):
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=str(tmp_path),
                            env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
    assert result.returncode == EXIT_USER_ERROR
    assert 'Traceback' not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith('error: ')]
    assert len(errors) == 1 and 'missing_' in errors[0]


TOOL_SCRIPTS = [p for p in sorted(REPO_ROOT.glob('tools/*.py')) + sorted(REPO_ROOT.glob('deploy/python/*.py'))
                if 'def main(' in p.read_text()]  # deploy/python also holds a helper module


@pytest.mark.parametrize('script', TOOL_SCRIPTS, ids=lambda p: '/'.join(p.parts[-2:]))
def test_every_tool_prints_its_help(capsys, script):
    """``-h`` prints the usage and exits 0 (a '%' in a help string once made
    argparse raise a TypeError here for every tool built on base_parser)."""
    with pytest.raises(SystemExit) as stop:
        load_script(script).main(['-h'])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith('usage: ') and '-h, --help' in out


def test_running_out_of_memory_is_one_line_not_a_traceback(capsys):
    """Sizes the machine cannot hold end like a full disk: one line, exit 2 (run_tool and run_cli)."""
    import numpy as np
    deploy_io = load_script(REPO_ROOT / 'deploy' / 'python' / 'deploy_io.py')

    def greedy(argv):
        return np.zeros((1 << 20, 1 << 20), np.float32)  # 4 TiB: numpy refuses before touching memory
    for runner in (run_tool, deploy_io.run_cli):
        assert runner(greedy, []) == EXIT_USER_ERROR
        err = capsys.readouterr().err
        assert err.startswith('error: out of memory') and len(err.splitlines()) == 1 and 'Traceback' not in err


def test_an_error_raised_while_stopping_is_the_stop_line(capsys):
    """SIGTERM to the process group also ends the data workers; Paddle then raises
    a SystemError while the trainer is stopping: one stopped: line and 128 + signum."""
    class Stop(BaseException):
        signum = 15

    def stopping(argv):
        try:
            raise Stop()
        except Stop:
            raise SystemError('(Fatal) DataLoader process (pid 1) exited is killed by signal: Terminated.')
    assert run_tool(stopping, []) == 143
    err = capsys.readouterr().err
    assert err == 'stopped: interrupted by SIGTERM; files being written were left out\n'

    def plain_bug(argv):
        raise SystemError('a bug')
    with pytest.raises(SystemError):
        run_tool(plain_bug, [])
