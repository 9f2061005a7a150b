"""Two CPU processes (paddle.distributed.launch, gloo) train to the same
weights as one process with the same global batch, on one node (2 processes)
and on two nodes of one process each (two launchers on loopback, each in its
own working folder, as on machines without a shared disk: only global rank 0
may write there). The images of the two processes hold different numbers of
faces, so this also checks that the loss normalisers are those of the global
batch."""
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

from ppdet_hambox.core.workspace import load_config
from ppdet_hambox.data.source import demo
from ppdet_hambox.engine.env import set_random_seed
from ppdet_hambox.engine.trainer import Trainer
from ppdet_hambox.utils.cli import build_model

from nodes import Nodes
from tiny_train_config import tiny_train_config

STEPS = 3
PER_PROCESS_BATCH = 2
MODES = ('DataParallel', 'fleet')


def launch(repo_root, config, out, mode):
    """Start a two-process ``tools/train.py`` run (not waiting for it)."""
    command = [sys.executable, '-m', 'paddle.distributed.launch', '--nproc_per_node', '2',
               '--log_dir', str(out / 'log'), str(repo_root / 'tools' / 'train.py'),
               '-c', config, '-o', 'save_dir={}'.format(out)] + (['--fleet'] if mode == 'fleet' else [])
    return subprocess.Popen(command, cwd=str(out.parent), env=dict(os.environ, PYTHONPATH=str(repo_root)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope='module')
def runs(tmp_path_factory, repo_root):
    """The two-process config, the DataParallel run (started first, it runs
    meanwhile) and the weights of the one-process run with the global batch.
    The two launches never run at once (each picks its ports at random)."""
    base = repo_root / 'configs' / 'demo' / 'hambox_demo.yml'
    if not base.is_file():
        pytest.fail('the demo config {} is missing'.format(base))
    root = tmp_path_factory.mktemp('dist')
    data = root / 'data'
    demo.generate(str(data), seed=1, num_train=2 * PER_PROCESS_BATCH, num_val=1, size='160x128')

    def config(name, batch):
        path = root / name
        path.write_text(tiny_train_config(
            base, data, 128, batch=batch, reader={'shuffle': False}, ResNet={'norm_type': 'frozen_bn'},
            clip_grad_norm=1.0, use_ema=False,   # compare the raw updates
            LearningRate={'base_lr': 0.01, 'reference_batch': 4,
                          'schedulers': [{'LinearWarmup': {'steps': 1, 'start_factor': 0.5}}]},
            max_iters=STEPS, snapshot_iter=STEPS, log_iter=1))
        return str(path)

    two = config('two.yml', PER_PROCESS_BATCH)
    procs = {MODES[0]: launch(repo_root, two, root / MODES[0], MODES[0])}
    try:
        one = config('one.yml', 2 * PER_PROCESS_BATCH)
        cfg = load_config(one, ['save_dir={}'.format(root / 'one_out')])
        trainer = Trainer(cfg)
        assert trainer.global_batch == 2 * PER_PROCESS_BATCH
        trainer.train()
        set_random_seed(cfg['seed'])
        fresh = build_model(cfg)  # same seed: the starting weights
        yield {'root': root, 'two': two, 'procs': procs, 'one': final_weights(root / 'one_out', 'one'),
               'init': {k: v.numpy() for k, v in fresh.state_dict().items()},
               'trainable': [k for k, p in fresh.named_parameters() if not p.stop_gradient]}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def final_weights(save_dir, stem):
    state = paddle.load(os.path.join(str(save_dir), stem, 'model_final.pdparams'))
    return {k: v.numpy() for k, v in state.items()}


@pytest.mark.parametrize('mode', MODES)
def test_two_processes_match_one_process_with_the_global_batch(runs, mode, repo_root):
    out = runs['root'] / mode
    if mode not in runs['procs']:
        runs['procs'][mode] = launch(repo_root, runs['two'], out, mode)
    output, _ = runs['procs'][mode].communicate(timeout=150)
    log0 = out / 'log' / 'workerlog.0'
    worker0 = log0.read_text() if log0.exists() else ''
    assert runs['procs'][mode].returncode == 0, output[-3000:] + worker0[-3000:]
    assert_same_training(runs, mode, worker0, out)


@pytest.mark.parametrize('mode', MODES)
def test_two_nodes_match_one_process_with_the_global_batch(runs, mode, repo_root):
    root = runs['root'] / (mode + '_nodes')
    args = ['-c', runs['two'], '-o', 'save_dir=output', '--use_vdl'] + (['--fleet'] if mode == 'fleet' else [])
    with Nodes(root, repo_root, args) as nodes:
        codes = nodes.wait(150)
        worker0 = nodes.worker_log(0)
        assert codes == [0, 0], worker0[-3000:] + nodes.worker_log(1)[-3000:]
    out = root / 'node0' / 'output'
    assert (out / 'two' / 'train.log').exists() and list((out / 'two' / 'vdl').iterdir())
    assert not (root / 'node1' / 'output').exists(), 'global rank 1 (local rank 0 of node 1) wrote files'
    assert_same_training(runs, mode, worker0, out)


def assert_same_training(runs, mode, worker0, out):
    assert ('distributed training: 2 processes ({}), batch 2 per process, global batch 4'.format(mode)
            in worker0)
    two, one, init = final_weights(out, 'two'), runs['one'], runs['init']
    assert sorted(two) == sorted(one)
    moved = [k for k in runs['trainable'] if not np.array_equal(one[k], init[k])]
    assert len(moved) >= 0.8 * len(runs['trainable']), sorted(set(runs['trainable']) - set(moved))
    # compare the updates (small next to the weights) to 1% of the largest,
    # plus the float32 rounding of the weights themselves
    for key in moved:
        step_two, step_one = two[key] - init[key], one[key] - init[key]
        tolerance = 1e-2 * np.abs(step_one).max() + 8 * np.spacing(np.abs(init[key]).max())
        np.testing.assert_allclose(step_two, step_one, rtol=0, atol=tolerance, err_msg=key)
