"""Promises of docs/training.md that no other test would notice breaking:

- "If a loss term is not finite, training stops before that update is
  applied": the weights, optimizer state and LR after the stop are exactly
  those of the last good step;
- "Writes are atomic (temporary file in the same folder, fsync, rename)":
  the temporary file is complete and fsync'ed before it replaces the name;
- "A resumed run reaches the same weights as an uninterrupted one": also when
  the model itself draws from Paddle's global random stream (dropout), which
  only the checkpoint's random states can carry over.
"""
import os
import textwrap

import numpy as np
import paddle
import paddle.nn as nn
import pytest

from ppdet_hambox.core.workspace import load_config, register
from ppdet_hambox.engine.trainer import NonFiniteLossError, Trainer
from ppdet_hambox.utils import checkpoint as ckpt


@register
class PromiseFaces(paddle.io.Dataset):
    """Random 3x8x8 images, one face box each."""

    def __init__(self, num_images=8):
        super().__init__()
        rng = np.random.RandomState(1)
        self.images = rng.rand(num_images, 3, 8, 8).astype('float32')
        self.boxes = np.sort(rng.rand(num_images, 2, 2) * 8, axis=1).reshape(num_images, 4).astype('float32')

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return {'image': self.images[index], 'gt_bbox': self.boxes[index][None], 'gt_mask': np.ones(1, 'float32'),
                'im_id': index, 'im_file': '{}.jpg'.format(index)}


@register
class PromiseDetector(nn.Layer):
    """Conv + dropout + linear box regressor (``(losses, stats)`` of docs/architecture.md);
    ``nan_at``: the forward call (1-based) whose loss is NaN."""

    def __init__(self, nan_at=0, dropout=0.5):
        super().__init__()
        self.conv = nn.Conv2D(3, 4, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(4, 4)
        self.nan_at = nan_at
        self.calls = 0

    def forward(self, batch):
        self.calls += 1
        feat = self.drop(nn.functional.relu(self.conv(batch['image'])).mean(axis=[2, 3]))
        loss_box = nn.functional.smooth_l1_loss(self.fc(feat), batch['gt_bbox'][:, 0, :] / 8.0)
        loss = loss_box * float('nan') if self.calls == self.nan_at else loss_box
        return {'loss': loss, 'loss_cls': loss_box * 0, 'loss_box': loss_box}, {}


CONFIG = """
_BASE_: {runtime}
architecture: PromiseDetector
TrainDataset: {{name: PromiseFaces, num_images: 8}}
TrainReader: {{sample_transforms: [], batch_size: 2, num_workers: 0}}
OptimizerBuilder: {{optimizer: {{type: Momentum, momentum: 0.9}}}}
LearningRate:
  base_lr: 0.1
  reference_batch: 2
  schedulers:
    - PiecewiseDecay: {{milestones: [4], gamma: 0.5}}
max_iters: 6
log_iter: 1
snapshot_iter: 3
keep_checkpoints: 0
seed: 5
"""


@pytest.fixture
def config_file(tmp_path, repo_root):
    path = tmp_path / 'promise.yml'
    path.write_text(textwrap.dedent(CONFIG.format(runtime=repo_root / 'configs' / 'runtime.yml')))
    return str(path)


def trainer_for(config_file, save_dir, overrides=()):
    return Trainer(load_config(config_file, ['save_dir={}'.format(save_dir)] + list(overrides)))


def weights(trainer):
    return {k: v.numpy().copy() for k, v in trainer.raw_model.state_dict().items()}


def optimizer_arrays(trainer):
    state = trainer.optimizer.state_dict()
    return {k: v.numpy().copy() for k, v in state.items() if hasattr(v, 'numpy')}


def test_non_finite_step_leaves_weights_optimizer_and_lr_as_they_were(config_file, tmp_path):
    trainer = trainer_for(config_file, tmp_path, ['PromiseDetector.nan_at=5'])
    snapshots = []
    update = trainer._update

    def recording_update(loss):
        update(loss)
        snapshots.append((weights(trainer), optimizer_arrays(trainer), trainer.optimizer.get_lr()))

    trainer._update = recording_update
    with pytest.raises(NonFiniteLossError):
        trainer.train()
    assert len(snapshots) == 4 and trainer.iteration == 4
    good_weights, good_optimizer, good_lr = snapshots[-1]
    for key, value in weights(trainer).items():
        np.testing.assert_array_equal(value, good_weights[key], err_msg=key)
    now = optimizer_arrays(trainer)
    assert sorted(now) == sorted(good_optimizer) and len(now) > 0
    for key, value in now.items():
        np.testing.assert_array_equal(value, good_optimizer[key], err_msg=key)
    assert trainer.optimizer.get_lr() == good_lr
    assert all(np.isfinite(v).all() for v in weights(trainer).values())


def test_checkpoint_is_complete_and_fsynced_before_it_replaces_the_name(tmp_path, monkeypatch):
    net = nn.Linear(4, 3)
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        path = os.readlink('/proc/self/fd/{}'.format(fd))
        events.append(('fsync', path, os.path.getsize(path) if os.path.isfile(path) else None))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(('replace', os.path.abspath(src), os.path.abspath(dst)))
        return real_replace(src, dst)

    if not os.path.isdir('/proc/self/fd'):
        pytest.skip('needs /proc/self/fd to name fsync\'ed files')
    monkeypatch.setattr(ckpt.os, 'fsync', fsync)
    monkeypatch.setattr(ckpt.os, 'replace', replace)
    target = str(tmp_path / 'iter_0000001.pdckpt')
    with open(target, 'wb') as f:
        f.write(b'the previous checkpoint')
    ckpt.atomic_save({'model': net.state_dict()}, target)
    replaces = [e for e in events if e[0] == 'replace']
    assert len(replaces) == 1 and replaces[0][2] == os.path.abspath(target)
    tmp = replaces[0][1]
    assert os.path.dirname(tmp) == str(tmp_path) and tmp != replaces[0][2]
    synced = [e for e in events[:events.index(replaces[0])] if e[0] == 'fsync' and e[1] == tmp]
    assert synced, 'the temporary file was not fsync\'ed before the rename: {}'.format(events)
    assert synced[-1][2] == os.path.getsize(target)
    np.testing.assert_array_equal(paddle.load(target)['model']['weight'].numpy(), net.weight.numpy())


def test_resume_continues_the_models_random_stream(config_file, tmp_path):
    full = trainer_for(config_file, tmp_path / 'full')
    full.train()
    part = trainer_for(config_file, tmp_path / 'part', ['max_iters=3'])
    part.train()
    paddle.seed(12345)          # whatever happened in between must not matter
    np.random.seed(12345)
    resumed = trainer_for(config_file, tmp_path / 'part')
    resumed.resume(os.path.join(part.save_dir, 'iter_0000003.pdckpt'))
    resumed.train()
    assert resumed.iteration == full.iteration == 6
    for key, value in weights(full).items():
        np.testing.assert_allclose(weights(resumed)[key], value, rtol=1e-6, atol=1e-7, err_msg=key)
    # the dropout does change the weights: a resume that reseeded would differ
    reseeded = trainer_for(config_file, tmp_path / 'part')
    state = ckpt.read_checkpoint(os.path.join(part.save_dir, 'iter_0000003.pdckpt'))
    reseeded.resume(state['path'])
    paddle.seed(5)
    reseeded.train()
    assert any(not np.allclose(weights(reseeded)[k], v, rtol=1e-6, atol=1e-7) for k, v in weights(full).items())
