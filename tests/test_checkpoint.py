"""Checkpoints: atomic writes, rotation, full-state round trip, clear errors."""
import os
import random

import numpy as np
import paddle
import pytest

from ppdet_hambox.utils import checkpoint as ckpt
from ppdet_hambox.utils.weights import load_weights


class Net(paddle.nn.Layer):
    def __init__(self):
        super().__init__()
        self.fc1 = paddle.nn.Linear(4, 8)
        self.fc2 = paddle.nn.Linear(8, 1)

    def forward(self, x):
        return self.fc2(paddle.nn.functional.relu(self.fc1(x)))


def make(seed=0):
    paddle.seed(seed)
    net = Net()
    sched = paddle.optimizer.lr.PiecewiseDecay([3], [0.1, 0.01])
    opt = paddle.optimizer.Momentum(learning_rate=sched, momentum=0.9, parameters=net.parameters())
    return net, opt, sched


def step(net, opt, sched, x):
    net(x).pow(2).mean().backward()
    opt.step()
    opt.clear_grad()
    sched.step()


def weights(net):
    return {k: v.numpy().copy() for k, v in net.state_dict().items()}


def test_round_trip_restores_training_exactly_in_a_fresh_model(tmp_path):
    x = paddle.to_tensor(np.random.RandomState(0).rand(5, 4).astype('float32'))
    net, opt, sched = make()
    for _ in range(2):
        step(net, opt, sched, x)
    np.random.seed(7)
    random.seed(7)
    paddle.seed(7)
    path = ckpt.save_checkpoint(str(tmp_path), 2, net, opt, sched, extra={'best': {'value': 0.5}})
    draws = (np.random.rand(3), random.random(), paddle.rand([3]).numpy())
    for _ in range(3):  # crosses the LR milestone at 3
        step(net, opt, sched, x)
    expected = weights(net)

    other, opt2, sched2 = make(seed=1)  # new parameter names and values
    state = ckpt.read_checkpoint(str(tmp_path))  # a folder: its newest checkpoint
    assert state['path'] == path and state['iteration'] == 2
    assert state['extra']['best']['value'] == 0.5
    other.set_state_dict(state['model'])
    ckpt.load_portable_optimizer_state(opt2, other, state['optimizer'])
    sched2.set_state_dict(state['lr_scheduler'])
    ckpt.restore_rng_state(state['rng'])
    np.testing.assert_array_equal(np.random.rand(3), draws[0])
    assert random.random() == draws[1]
    np.testing.assert_array_equal(paddle.rand([3]).numpy(), draws[2])
    for _ in range(3):
        step(other, opt2, sched2, x)
    for key, value in weights(other).items():
        np.testing.assert_allclose(value, expected[key], rtol=1e-6, atol=1e-7)


def test_interrupted_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    net, opt, sched = make()
    first = ckpt.save_checkpoint(str(tmp_path), 10, net, opt, sched)
    original = open(first, 'rb').read()

    def crash(obj, path, *args, **kwargs):
        with open(path, 'wb') as f:
            f.write(b'partial')
        raise OSError('disk full')

    monkeypatch.setattr(ckpt.paddle, 'save', crash)
    with pytest.raises(OSError, match='disk full'):
        ckpt.save_checkpoint(str(tmp_path), 20, net, opt, sched)
    with pytest.raises(OSError):  # overwriting an existing name
        ckpt.save_checkpoint(str(tmp_path), 10, net, opt, sched)
    assert sorted(os.listdir(tmp_path)) == [os.path.basename(first)]
    assert open(first, 'rb').read() == original
    monkeypatch.undo()
    assert ckpt.read_checkpoint(first)['iteration'] == 10


def test_rotation_keeps_newest(tmp_path):
    net, opt, sched = make()
    for it in (5, 10, 15, 20):
        ckpt.save_checkpoint(str(tmp_path), it, net, opt, sched)
    mask = os.umask(0)
    os.umask(mask)
    for _, path in ckpt.list_checkpoints(str(tmp_path)):
        assert os.stat(path).st_mode & 0o777 == 0o666 & ~mask  # as open() would make it
    removed = ckpt.prune_checkpoints(str(tmp_path), 2)
    assert [os.path.basename(p) for p in removed] == ['iter_0000005.pdckpt', 'iter_0000010.pdckpt']
    assert [it for it, _ in ckpt.list_checkpoints(str(tmp_path))] == [15, 20]
    assert ckpt.prune_checkpoints(str(tmp_path), 0) == []
    assert ckpt.latest_checkpoint(str(tmp_path)).endswith('iter_0000020.pdckpt')


def test_checkpoint_is_loadable_as_weights_and_bad_files_are_named(tmp_path):
    net, opt, sched = make(seed=3)
    path = ckpt.save_checkpoint(str(tmp_path), 1, net, opt, sched)
    other = make(seed=4)[0]
    summary = load_weights(other, path)
    assert not summary['missing']
    for key, value in weights(other).items():
        np.testing.assert_array_equal(value, weights(net)[key])
    plain = ckpt.save_weights(net, str(tmp_path / 'model_final.pdparams'))
    with pytest.raises(ckpt.CheckpointError, match='not a ppdet_hambox training checkpoint'):
        ckpt.read_checkpoint(plain)
    with pytest.raises(ckpt.CheckpointError, match='checkpoint not found: .*nope'):
        ckpt.read_checkpoint(str(tmp_path / 'nope.pdckpt'))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ckpt.CheckpointError, match='no checkpoint'):
        ckpt.read_checkpoint(str(tmp_path / 'empty'))
    garbage = tmp_path / 'iter_0000009.pdckpt'
    garbage.write_bytes(b'not a checkpoint')
    with pytest.raises(ckpt.CheckpointError, match='cannot read checkpoint'):
        ckpt.read_checkpoint(str(garbage))
