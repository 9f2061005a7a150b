"""A tool's stderr carries the project's messages, not Paddle's internal logging:
no glog lines (``I1208 02:34:57.86 19002 file.cc:50] ...``), no PIR pass banners
and no ccache warning, unless HAMBOX_PADDLE_LOG=1 asks for them."""
import os
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

from ppdet_hambox.utils import logger as project_logger

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GLOG_LINE = re.compile(r'^[IWE]\d{4} \d\d:\d\d:\d\d', re.MULTILINE)


def paddle_noise(stderr):
    """The lines of ``stderr`` that are Paddle's own logging."""
    return [line for line in stderr.splitlines()
            if GLOG_LINE.match(line) or 'Running PIR pass' in line or 'ccache' in line]


def clean_env(**extra):
    """This process's environment without any logging setting of its own."""
    env = {k: v for k, v in os.environ.items()
           if k not in ('HAMBOX_PADDLE_LOG', 'GLOG_minloglevel', 'GLOG_v', 'PYTHONWARNINGS')}
    env['PYTHONPATH'] = REPO_ROOT
    env.update(extra)
    return env


def run(args, cwd, **extra_env):
    result = subprocess.run([sys.executable] + args, capture_output=True, text=True, timeout=300,
                            cwd=str(cwd), env=clean_env(**extra_env))
    assert result.returncode == 0, result.stderr[-2000:]
    return result


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """The demo config exported with its random weights; (export folder, stderr of the export)."""
    root = tmp_path_factory.mktemp('quiet')
    result = run([os.path.join(REPO_ROOT, 'tools', 'export.py'), '-c',
                  os.path.join(REPO_ROOT, 'configs', 'demo', 'hambox_demo.yml'), '--output_dir', str(root / 'out')],
                 root)
    image = root / 'photo.jpg'
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8))
    return root / 'out' / 'hambox_demo', image, result.stderr


def test_export_stderr_has_no_paddle_logging(exported):
    model_dir, _, stderr = exported
    assert (model_dir / 'model.json').is_file()
    assert paddle_noise(stderr) == []


def test_deploy_predictor_is_quiet_by_default_and_verbose_on_request(exported, tmp_path):
    model_dir, image, _ = exported
    command = [os.path.join(REPO_ROOT, 'deploy', 'python', 'infer.py'), '--model_dir', str(model_dir),
               '--image_file', str(image), '--output_dir', str(tmp_path / 'vis')]
    quiet = run(command, tmp_path)
    assert '1 images, 0 skipped' in quiet.stdout
    assert paddle_noise(quiet.stderr) == []
    verbose = run(command, tmp_path, HAMBOX_PADDLE_LOG='1')
    noise = paddle_noise(verbose.stderr)
    assert any('Running PIR pass' in line for line in noise)
    assert any('ccache' in line for line in noise)


def test_settings_reach_child_processes_and_respect_the_user(monkeypatch):
    for name in ('HAMBOX_PADDLE_LOG', 'GLOG_minloglevel', 'PYTHONWARNINGS'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('PYTHONWARNINGS', 'default::DeprecationWarning')
    assert project_logger.quiet_paddle() is True
    assert os.environ['GLOG_minloglevel'] == '2'
    entries = os.environ['PYTHONWARNINGS'].split(',')
    assert entries[0] == 'default::DeprecationWarning'
    assert 'ignore:No ccache found' in entries
    for entry in entries[1:]:   # each a valid -W option: action:message, nothing split apart
        action, message = entry.split(':')
        assert action == 'ignore' and message in project_logger.PADDLE_NOISE
    assert len(entries) == 1 + len(project_logger.PADDLE_NOISE)
    project_logger.quiet_paddle()
    assert os.environ['PYTHONWARNINGS'].split(',') == entries   # not appended twice

    monkeypatch.setenv('GLOG_minloglevel', '0')
    project_logger.quiet_paddle()
    assert os.environ['GLOG_minloglevel'] == '0'                # the user's own choice is kept

    monkeypatch.setenv('HAMBOX_PADDLE_LOG', '1')
    monkeypatch.delenv('GLOG_minloglevel')
    assert project_logger.quiet_paddle() is False
    assert 'GLOG_minloglevel' not in os.environ


def test_exported_predictor_config_follows_the_setting(exported, monkeypatch):
    from ppdet_hambox.export.exported_model import inference_config
    model_dir = str(exported[0])
    monkeypatch.delenv('HAMBOX_PADDLE_LOG', raising=False)
    assert inference_config(model_dir, device='cpu').glog_info_disabled()
    monkeypatch.setenv('HAMBOX_PADDLE_LOG', '1')
    assert not inference_config(model_dir, device='cpu').glog_info_disabled()
