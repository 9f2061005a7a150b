"""Two "nodes" on loopback (two launchers, one process each, separate working
folders): exact resume, a node started differently is refused at start, and
a lost node stops the other one with a clear error and nothing left behind.
The equality with one process is in test_distributed.py."""
import os
import signal
import sys
import time

import numpy as np
import paddle
import pytest

from ppdet_hambox.data.source import demo
from ppdet_hambox.utils.checkpoint import list_checkpoints, read_checkpoint

from nodes import Nodes
from tiny_train_config import tiny_train_config

pytestmark = pytest.mark.skipif(not sys.platform.startswith('linux'),
                                reason='the cleanup relies on Linux process handling (PR_SET_PDEATHSIG)')

LOST_WITHIN_S = 120


@pytest.fixture(scope='module')
def make_config(tmp_path_factory, repo_root):
    root = tmp_path_factory.mktemp('multinode')
    data = root / 'data'
    demo.generate(str(data), seed=1, num_train=4, num_val=1, size='160x128')

    def make(name, iters, workers=0):
        path = root / '{}.yml'.format(name)
        path.write_text(tiny_train_config(
            repo_root / 'configs' / 'demo' / 'hambox_demo.yml', data, 96, workers=workers, flip=True, use_ema=True,
            max_iters=iters, snapshot_iter=2, keep_checkpoints=0, log_iter=1,
            save_dir='output'))   # relative: each node writes (or not) in its own folder
        return str(path)
    return make


def finished(nodes, timeout):
    codes = nodes.wait(timeout)
    report = '\n'.join('--- node {} ---\n{}'.format(n, nodes.worker_log(n)[-2500:]) for n in range(2))
    assert codes == [0, 0], report
    return report


def weights(path):
    return {k: v.numpy() for k, v in paddle.load(str(path)).items()}


def test_two_node_run_resumes_exactly_and_only_global_rank_0_writes(make_config, repo_root, tmp_path):
    config = make_config('resume', iters=4)
    with Nodes(tmp_path / 'full', repo_root, ['-c', config, '--use_vdl']) as full, \
            Nodes(tmp_path / 'part', repo_root, ['-c', config, '-o', 'max_iters=2']) as part:
        finished(full, 150)
        finished(part, 150)
    out = tmp_path / 'part' / 'node0' / 'output' / 'resume'
    assert [it for it, _ in list_checkpoints(str(out))] == [2]
    with Nodes(tmp_path / 'part', repo_root, ['-c', config, '-r', str(out / 'iter_0000002.pdckpt')]) as resumed:
        finished(resumed, 150)
    assert 'resumed from {} at iteration 2'.format(out / 'iter_0000002.pdckpt') in resumed.worker_log(0)

    full_out = tmp_path / 'full' / 'node0' / 'output' / 'resume'
    assert (full_out / 'train.log').exists() and (full_out / 'train_log.jsonl').exists()
    assert list((full_out / 'vdl').iterdir()), 'global rank 0 wrote no VisualDL record'
    # global rank 1 is local rank 0 of its node: it must write nothing
    assert not (tmp_path / 'full' / 'node1' / 'output').exists()
    assert not (tmp_path / 'part' / 'node1' / 'output').exists()

    expected, got = weights(full_out / 'model_final.pdparams'), weights(out / 'model_final.pdparams')
    assert sorted(expected) == sorted(got)
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-5, atol=1e-6, err_msg=key)
    assert read_checkpoint(str(out / 'iter_0000004.pdckpt'))['extra']['world_size'] == 2


def test_a_node_started_differently_is_refused_at_start(make_config, repo_root, tmp_path):
    """Node 1 gets another learning rate and another code version (a copy of
    the package with one file changed)."""
    import shutil
    code = tmp_path / 'other_code'
    for folder in ('ppdet_hambox', 'tools'):
        shutil.copytree(str(repo_root / folder), str(code / folder), ignore=shutil.ignore_patterns('__pycache__'))
    with open(str(code / 'ppdet_hambox' / 'engine' / 'ema.py'), 'a') as f:
        f.write('\n# another version\n')
    config = make_config('refused', iters=4)
    with Nodes(tmp_path, repo_root, ['-c', config],
               node_args={1: ['-o', 'LearningRate.base_lr=0.02']},
               node_code={1: code}) as nodes:
        codes = nodes.wait(120)
        logs = [nodes.worker_log(n) for n in range(2)]
        assert all(code not in (None, 0) for code in codes), (codes, logs)
        assert not nodes.alive()
    for log in logs:
        errors = [line for line in log.splitlines() if line.startswith('error:')]
        assert len(errors) == 1, log[-3000:]
        assert 'global rank 1' in errors[0] and 'differs from global rank 0' in errors[0]
        named = errors[0].split(' in ', 1)[1]
        assert 'LearningRate.base_lr' in named and '(code: ppdet_hambox sources)' in named
        assert 'TrainReader' not in named and 'max_iters' not in named
        assert 'Traceback' not in log and 'iter 1/' not in log
    assert not (tmp_path / 'node0' / 'output' / 'refused').exists() or \
        not list_checkpoints(str(tmp_path / 'node0' / 'output' / 'refused'))


@pytest.mark.parametrize('lost, how', [(1, 'kill'), (1, 'freeze'), (0, 'kill')])
def test_a_lost_node_stops_the_other_with_a_clear_error(make_config, repo_root, tmp_path, lost, how):
    """``kill``: ``kill -9`` of a node's launcher, rank and data worker (the
    connections close, the collective fails at once; node 0 also takes the
    launchers' master and the store with it). ``freeze``: SIGSTOP of the same
    processes (a hung or cut-off node: nothing closes, gloo would wait 30 s;
    the 6 s heartbeat timeout must act first)."""
    name = 'lost{}_{}'.format(lost, how)
    config = make_config(name, iters=100000, workers=1)
    out = tmp_path / 'node0' / 'output' / name
    kept = 1 - lost
    with Nodes(tmp_path, repo_root, ['-c', config, '-o', 'peer_timeout=6']) as nodes:
        nodes.wait(150, until=lambda: list_checkpoints(str(out)) and len(nodes.node_processes(lost)) >= 3)
        assert list_checkpoints(str(out)), nodes.worker_log(0)[-3000:]
        survivors = nodes.node_processes(kept)
        assert len(survivors) >= 3, survivors  # launcher, rank, data worker
        nodes.kill_node(lost, signal.SIGKILL if how == 'kill' else signal.SIGSTOP)
        killed_at = time.time()
        nodes.wait(LOST_WITHIN_S, until=lambda: not nodes.alive(survivors))
        left = nodes.alive(survivors)
        log = nodes.worker_log(kept)
        assert not left, 'still running {:.0f} s after node {} was lost: {}'.format(
            time.time() - killed_at, lost, left)
        assert nodes.launchers[kept].returncode not in (None, 0)
    lines = [line for line in log.splitlines()
             if 'distributed training stopped on global rank {}'.format(kept) in line]
    assert len(lines) == 1, log[-3000:]
    if how == 'freeze':  # the heartbeats, not gloo's own 30 s timeout, stopped it
        assert 'no heartbeat from global rank(s) {} for 6 s'.format(lost) in lines[0]
    newest = list_checkpoints(str(out))[-1]
    assert read_checkpoint(newest[1])['iteration'] == newest[0]
    if kept == 0:
        named = os.path.relpath(newest[1], str(tmp_path / 'node0'))  # save_dir is relative
        assert 'the last complete checkpoint is {0} (resume the whole run with -r {0})'.format(named) in lines[0]
    else:  # node 1 has no copy of the checkpoints: the line says where they are
        assert 'no checkpoint in output/{} on this node (global rank 0 writes them)'.format(name) in lines[0]


# ------------------------------------------------------ without processes
def test_the_differing_keys_are_named_by_their_dotted_path(monkeypatch, repo_root):
    from ppdet_hambox.core.errors import ConfigError
    from ppdet_hambox.core.workspace import load_config
    from ppdet_hambox.engine import env
    base = str(repo_root / 'configs' / 'demo' / 'hambox_demo.yml')
    same = env.run_fingerprint(load_config(base), fleet=False)
    other = env.run_fingerprint(load_config(base, ['TrainReader.batch_size=3', 'max_iters=7']), fleet=True)
    assert env.run_fingerprint(load_config(base), fleet=False) == same
    monkeypatch.setattr(env.dist, 'all_gather_object',
                        lambda out, obj: out.extend([('a', same), ('b', same), ('c', other)]))
    info = env.DistInfo(rank=1, world_size=3)
    with pytest.raises(ConfigError) as refused:
        env.check_same_run(same, info)
    message = str(refused.value)
    assert 'global rank 2 (c) differs from global rank 0 (a) in TrainReader.batch_size, fleet, max_iters;' in message
    assert 'global rank 1' not in message
    monkeypatch.setattr(env.dist, 'all_gather_object', lambda out, obj: out.extend([('a', same)] * 3))
    env.check_same_run(same, info)  # all equal: no error


def test_the_watchdog_names_silent_ranks_and_a_silent_store():
    from ppdet_hambox.engine.peer_watchdog import PeerWatchdog
    watchdog = PeerWatchdog(0, 3, 10, lambda: 5, 'out')
    assert watchdog.watched == [1, 2] and PeerWatchdog(2, 3, 10, lambda: 5, 'out').watched == [0]
    watchdog.last_answer = 95.0
    watchdog.seen = {1: (4, 95.0), 2: (9, 86.0)}
    assert watchdog._verdict(95.5) is None
    assert 'no heartbeat from global rank(s) 2 for 10 s' in watchdog._verdict(96.5)
    assert 'did not answer for 11 s' in watchdog._verdict(106.0)
    watchdog.last_answer, watchdog.seen = 100.0, {1: (5, 100.0), 2: (10, 100.0)}
    watchdog.store_error = (100.0, 'TCP receive error')
    assert watchdog._verdict(101.0) is None  # a failed store (rank 0 ended): a loss only after the grace
    assert 'the rendezvous store on global rank 0 failed (TCP receive error)' in watchdog._verdict(110.0)


@pytest.mark.parametrize('ending', ['died', 'done'])
def test_the_reporter_names_the_newest_checkpoint_when_its_parent_dies(tmp_path, ending):
    import json
    import subprocess
    from ppdet_hambox.engine.peer_watchdog import NO_CHECKPOINT, REPORTER, RESUME_FROM
    for iteration in (2, 10):
        (tmp_path / 'iter_{:07d}.pdckpt'.format(iteration)).write_bytes(b'')
    reporter = subprocess.Popen([sys.executable, '-c', REPORTER], stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    status = {'text': 'stopped; {where}', 'pattern': str(tmp_path / '*.pdckpt'), 'found': RESUME_FROM,
              'none': NO_CHECKPOINT.format(tmp_path)}
    reporter.stdin.write(json.dumps(status) + '\n' + ('done\n' if ending == 'done' else ''))
    _, err = reporter.communicate(timeout=30)  # closes the pipe, as the death of the parent does
    if ending == 'done':
        assert err == ''
    else:
        assert err == 'error: stopped; {}\n'.format(RESUME_FROM.format(tmp_path / 'iter_0000010.pdckpt'))


def test_only_communication_failures_count_as_a_lost_peer():
    from ppdet_hambox.engine.peer_watchdog import is_communication_error
    assert is_communication_error(RuntimeError(
        '[/paddle/third_party/gloo/gloo/transport/tcp/pair.cc:576] Read error [127.0.0.1]:47529: '
        'Connection reset by peer'))
    assert is_communication_error(RuntimeError('NCCL error in: ncclAllReduce, unhandled system error'))
    assert not is_communication_error(RuntimeError('DataLoader reader thread raised an exception'))
    assert not is_communication_error(RuntimeError('(InvalidArgument) The shape of input must be [2, 3]'))
