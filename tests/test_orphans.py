"""Nothing of a training run outlives it: data workers die with a trainer
killed by SIGKILL, a 2-process launch leaves nothing when one rank is
killed, and SIGINT / SIGTERM stop cleanly with the last complete checkpoint."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from ppdet_hambox.data.source import demo
from ppdet_hambox.utils.checkpoint import list_checkpoints, read_checkpoint

from tiny_train_config import tiny_train_config

pytestmark = pytest.mark.skipif(not sys.platform.startswith('linux'),
                                reason='dying with the parent (PR_SET_PDEATHSIG) is Linux-only')

@pytest.fixture(scope='module')
def tiny_config(tmp_path_factory, repo_root):
    """A config file factory: the demo model on 4 generated 160x128 images at 96x96."""
    root = tmp_path_factory.mktemp('orphans')
    data = root / 'data'
    demo.generate(str(data), seed=1, num_train=4, num_val=1, size='160x128')

    def make(workers):
        path = root / 'tiny_w{}.yml'.format(workers)
        path.write_text(tiny_train_config(repo_root / 'configs' / 'demo' / 'hambox_demo.yml', data, 96,
                                          workers=workers, max_iters=100000, snapshot_iter=2, keep_checkpoints=2,
                                          log_iter=1))
        return str(path)
    return make


# ---------------------------------------------------------------- processes
def _children_map():
    """pid -> [child pids] of every live process (psutil if installed, else /proc)."""
    try:
        import psutil
        pairs = [(p.pid, p.ppid()) for p in psutil.process_iter() if _alive(p.pid)]
    except ImportError:
        pairs = []
        for name in os.listdir('/proc'):
            if name.isdigit() and _alive(int(name)):
                pairs.append((int(name), _stat(int(name))[1]))
    children = {}
    for pid, ppid in pairs:
        children.setdefault(ppid, []).append(pid)
    return children


def _stat(pid):
    """(state letter, parent pid) from /proc/<pid>/stat, or None when gone."""
    try:
        with open('/proc/{}/stat'.format(pid)) as f:
            fields = f.read().rsplit(')', 1)[1].split()
        return fields[0], int(fields[1])
    except (OSError, IndexError, ValueError):
        return None


def _alive(pid):
    stat = _stat(pid)
    return stat is not None and stat[0] not in 'ZX'  # zombies have ended


def descendants(pid):
    children, found, todo = _children_map(), [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def wait_until(condition, timeout, what, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail('{} ended (status {}) before {}:\n{}'.format(
                proc.args, proc.returncode, what, proc.stdout.read()[-3000:]))
        time.sleep(0.2)
    pytest.fail('timed out after {} s waiting for {}'.format(timeout, what))


def assert_all_gone(pids, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.2)
    left = [p for p in pids if _alive(p)]
    for pid in left:  # do not leave them behind for the rest of the suite
        os.kill(pid, signal.SIGKILL)
    assert not left, 'processes still alive {} s after the kill: {}'.format(timeout, left)


def start(command, cwd, repo_root):
    return subprocess.Popen(command, cwd=str(cwd), env=dict(os.environ, PYTHONPATH=str(repo_root)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def train_command(repo_root, config, save_dir):
    return [sys.executable, str(repo_root / 'tools' / 'train.py'), '-c', config, '-o',
            'save_dir={}'.format(save_dir)]


# -------------------------------------------------------------------- tests
def test_sigkill_of_the_trainer_leaves_no_worker(tiny_config, repo_root, tmp_path):
    proc = start(train_command(repo_root, tiny_config(2), tmp_path / 'out'), tmp_path, repo_root)
    try:
        workers = wait_until(lambda: len(descendants(proc.pid)) >= 2 and descendants(proc.pid),
                             90, 'two data workers', proc)
        wait_until(lambda: list_checkpoints(str(tmp_path / 'out' / 'tiny_w2')), 90, 'a first checkpoint', proc)
        proc.kill()
        proc.wait()
        assert_all_gone(workers, 10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigkill_of_one_rank_leaves_nothing_of_the_launch(tiny_config, repo_root, tmp_path):
    command = [sys.executable, '-m', 'paddle.distributed.launch', '--nproc_per_node', '2',
               '--log_dir', str(tmp_path / 'log')] + train_command(repo_root, tiny_config(1), tmp_path / 'out')[1:]
    proc = start(command, tmp_path, repo_root)

    def ranks_with_workers():
        ranks = [pid for pid in _children_map().get(proc.pid, []) if _alive(pid)]
        if len(ranks) == 2 and all(descendants(rank) for rank in ranks):
            return ranks
        return None
    try:
        ranks = wait_until(ranks_with_workers, 120, 'two ranks with a data worker each', proc)
        wait_until(lambda: list_checkpoints(str(tmp_path / 'out' / 'tiny_w1')), 90, 'a first checkpoint', proc)
        everything = [proc.pid] + descendants(proc.pid)
        os.kill(ranks[1], signal.SIGKILL)
        deadline = time.time() + 20
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert proc.poll() is not None, 'the launcher is still running 20 s after one rank was killed'
        assert_all_gone(everything, max(0.0, deadline - time.time()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly_keeping_the_last_checkpoint(tiny_config, repo_root, tmp_path, signum):
    proc = start(train_command(repo_root, tiny_config(2), tmp_path / 'out'), tmp_path, repo_root)
    out = tmp_path / 'out' / 'tiny_w2'
    workers = []
    try:
        wait_until(lambda: list_checkpoints(str(out)), 90, 'a first checkpoint', proc)
        # the workers are restarted every epoch (4 images), so wait for a moment with both
        workers = wait_until(lambda: len(descendants(proc.pid)) >= 2 and descendants(proc.pid),
                             90, 'two data workers', proc)
        proc.send_signal(signum)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert_all_gone(workers, 10)
    assert proc.returncode == 128 + signum, output[-3000:]
    assert 'training stopped by {}'.format(signal.Signals(signum).name) in output
    assert 'Traceback' not in output
    found = list_checkpoints(str(out))
    assert found and not [name for name in os.listdir(str(out)) if name.endswith('.tmp')]
    newest = read_checkpoint(found[-1][1])
    assert newest['iteration'] == found[-1][0]
    assert 'the last complete checkpoint is {}'.format(found[-1][1]) in output


def test_an_ignored_signal_stays_ignored():
    from ppdet_hambox.engine.interrupt import TrainingInterrupted, stop_on_signals
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)  # as under nohup
    try:
        with stop_on_signals(lambda signum: TrainingInterrupted(signum, 0, None)):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        with pytest.raises(TrainingInterrupted) as stopped:
            with stop_on_signals(lambda signum: TrainingInterrupted(signum, 7, None)):
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(1)
        assert stopped.value.code == 143 and 'after iteration 7' in str(stopped.value)
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.parametrize('as_module', [False, True])
def test_a_guarded_child_ends_with_its_parent(repo_root, tmp_path, as_module):
    """``guarded`` (the demo's deploy run, the mutation check's test runs): the
    child gets its arguments and dies with a parent killed by SIGKILL."""
    (tmp_path / 'sleeper.py').write_text(textwrap.dedent("""
        import os, sys, time
        with open(sys.argv[1], 'w') as f:
            f.write(repr(sys.argv[2:]))
        time.sleep(120)
        """))
    target = "'-m', 'sleeper'" if as_module else repr(str(tmp_path / 'sleeper.py'))
    parent = textwrap.dedent("""
        import subprocess, sys, time
        from ppdet_hambox.utils.process import guarded
        child = subprocess.Popen(guarded([sys.executable, {target}, {started!r}, 'a b', 'c']))
        print(child.pid, flush=True)
        time.sleep(120)
        """).format(target=target, started=str(tmp_path / 'started'))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(repo_root), str(tmp_path)]))
    proc = subprocess.Popen([sys.executable, '-c', parent], env=env, stdout=subprocess.PIPE, text=True)
    try:
        child = int(proc.stdout.readline())
        wait_until(lambda: (tmp_path / 'started').exists() and (tmp_path / 'started').read_text(),
                   60, 'the child to start', proc)
        assert (tmp_path / 'started').read_text() == repr(['a b', 'c'])
        proc.kill()
        proc.wait()
        assert_all_gone([child], 10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
