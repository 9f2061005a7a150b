"""Ctrl-C as a terminal delivers it, to the whole process group: a training
run with data workers stops with one line on stderr and exit status 130,
keeps its last checkpoint and leaves no worker behind; the evaluation,
inference and export tools stop with one line and 130 too."""
import os
import signal
import subprocess
import sys

import pytest

from ppdet_hambox.utils.checkpoint import list_checkpoints, read_checkpoint
from test_orphans import assert_all_gone, descendants, tiny_config, wait_until  # noqa: F401 (a fixture)

pytestmark = pytest.mark.skipif(not sys.platform.startswith('linux'), reason='process groups and /proc: Linux')


def start_in_group(command, cwd, repo_root):
    """Started as a shell starts a job: in a new process group of its own."""
    return subprocess.Popen(command, cwd=str(cwd), env=dict(os.environ, PYTHONPATH=str(repo_root)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def own_lines(stderr):
    """stderr without the warnings libraries print while importing."""
    return [line for line in stderr.splitlines()
            if line.strip() and 'Warning' not in line and 'warnings.warn(' not in line]


def stop_group(proc):
    os.killpg(proc.pid, signal.SIGINT)
    return proc.communicate(timeout=60)


def test_ctrl_c_to_the_group_stops_training_with_one_line(tiny_config, repo_root, tmp_path):
    command = [sys.executable, str(repo_root / 'tools' / 'train.py'), '-c', tiny_config(2),
               '-o', 'save_dir={}'.format(tmp_path / 'out')]
    proc = start_in_group(command, tmp_path, repo_root)
    out = tmp_path / 'out' / 'tiny_w2'
    workers = []
    try:
        wait_until(lambda: list_checkpoints(str(out)), 120, 'a first checkpoint', proc)
        workers = wait_until(lambda: len(descendants(proc.pid)) >= 2 and descendants(proc.pid),
                             90, 'two data workers', proc)
        _, err = stop_group(proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        assert_all_gone(workers, 10)
    assert proc.returncode == 130, err[-3000:]
    assert 'Traceback' not in err, err[-3000:]
    lines = own_lines(err)
    assert len(lines) == 1 and lines[0].startswith('stopped: training stopped by SIGINT'), err[-3000:]
    found = list_checkpoints(str(out))
    assert found and read_checkpoint(found[-1][1])['iteration'] == found[-1][0]
    assert found[-1][1] in lines[0]
    assert not [name for name in os.listdir(str(out)) if name.endswith('.tmp')]


def test_ctrl_c_to_the_group_stops_inference_with_one_line(repo_root, tmp_path):
    """tools/infer.py (through run_tool, as every tool) stopped in the middle
    of a folder: one line, 130, and only whole drawings left behind."""
    import shutil
    from ppdet_hambox.data.source import demo
    demo.generate(str(tmp_path / 'data'), seed=1, num_train=1, num_val=1, size='160x128')
    image = next((tmp_path / 'data').rglob('*.jpg'))
    images = tmp_path / 'images'
    images.mkdir()
    for index in range(400):
        shutil.copy(str(image), str(images / '{:03d}.jpg'.format(index)))
    output = tmp_path / 'drawn'
    command = [sys.executable, str(repo_root / 'tools' / 'infer.py'),
               '-c', str(repo_root / 'configs' / 'demo' / 'hambox_demo.yml'),
               '--infer_dir', str(images), '--output_dir', str(output)]
    proc = start_in_group(command, tmp_path, repo_root)
    try:
        wait_until(lambda: output.is_dir() and len(list(output.glob('*.jpg'))) >= 3, 120, 'a few drawings', proc)
        _, err = stop_group(proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err[-3000:]
    assert own_lines(err) == ['stopped: interrupted by Ctrl-C (SIGINT); files being written were left out']
    drawn = sorted(output.glob('*.jpg'))
    assert 3 <= len(drawn) < 400
    import cv2
    assert all(cv2.imread(str(path)) is not None for path in drawn)
    assert not [p for p in output.iterdir() if p.name.endswith('.tmp') or '.tmp.' in p.name]


def test_worker_set_up_run_in_a_tool_keeps_ctrl_c():
    """Only DataLoader workers ignore SIGINT; a benchmark that runs the worker
    set-up in its own process keeps Ctrl-C (and its children inherit it)."""
    import signal as signals
    from ppdet_hambox.data.reader import init_worker
    before = signals.getsignal(signals.SIGINT)
    init_worker(0)
    assert signals.getsignal(signals.SIGINT) is before is not signals.SIG_IGN


def _sleep_in_child(seconds):
    import time
    time.sleep(seconds)


def test_a_child_forked_inside_the_stop_block_leaves_ctrl_c_to_its_parent(capfd):
    """A data worker forked while the trainer's handler is installed inherits it
    until it sets its own: a SIGINT reaching it in that window must not raise in
    the worker (a traceback per worker), and SIGTERM must still end it."""
    import multiprocessing

    from ppdet_hambox.engine.interrupt import TrainingInterrupted, stop_on_signals

    with stop_on_signals(lambda signum: TrainingInterrupted(signum, 0, None)):
        child = multiprocessing.get_context('fork').Process(target=_sleep_in_child, args=(30,))
        child.start()
        try:
            os.kill(child.pid, signal.SIGINT)
            child.join(1.0)
            assert child.is_alive(), 'SIGINT ended the forked child: the inherited handler raised in it'
            os.kill(child.pid, signal.SIGTERM)
            child.join(10)
            assert child.exitcode == -signal.SIGTERM
        finally:
            if child.is_alive():
                child.kill()
    assert 'Traceback' not in capfd.readouterr().err
