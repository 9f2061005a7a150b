"""The training loop on a toy detector: exact resume, NaN stop, EMA, logs, best model."""
import importlib.util
import json
import os
import textwrap

import numpy as np
import paddle
import paddle.nn as nn
import pytest

from ppdet_hambox.core.errors import EXIT_USER_ERROR, run_tool
from ppdet_hambox.core.workspace import ConfigError, load_config, register
from ppdet_hambox.data.image_io import ImageReadError
from ppdet_hambox.data.unreadable import UnreadableDataError
from ppdet_hambox.engine.callbacks import Callback
from ppdet_hambox.evaluation import evaluator
from ppdet_hambox.engine.env import set_random_seed
from ppdet_hambox.engine.trainer import NonFiniteLossError, Trainer
from ppdet_hambox.utils.checkpoint import list_checkpoints, read_checkpoint
from ppdet_hambox.utils.cli import build_model


@register
class TtToyFaces(paddle.io.Dataset):
    """Random 3x8x8 images with one face box each; ``corrupt`` lists indices
    whose image 'cannot be read'."""

    def __init__(self, num_images=12, corrupt=()):
        super().__init__()
        rng = np.random.RandomState(0)
        self.images = rng.rand(num_images, 3, 8, 8).astype('float32')
        self.boxes = np.sort(rng.rand(num_images, 2, 2) * 8, axis=1).reshape(num_images, 4)
        self.corrupt = set(corrupt)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return {'image': self.images[index], 'gt_bbox': self.boxes[index][None].astype('float32'),
                'gt_mask': np.ones(1, 'float32'), 'im_id': index,
                'im_file': 'corrupt.jpg' if index in self.corrupt else '{}.jpg'.format(index)}


@register
class TtNoise:
    """Augmentation drawn from the sample's generator; fails on corrupt files."""

    def __init__(self, sigma=0.1):
        self.sigma = sigma

    def __call__(self, sample, rng):
        if sample['im_file'] == 'corrupt.jpg':
            raise ImageReadError('cannot decode image corrupt.jpg')
        sample['image'] = sample['image'] + rng.normal(0, self.sigma, sample['image'].shape).astype('float32')
        return sample


@register
class TtToyDetector(nn.Layer):
    """Conv + linear box regressor returning ``(losses, stats)`` as in
    docs/architecture.md. ``nan_at``: the forward call (1-based) whose loss is NaN.
    Its ``toy_iou`` statistic is the mean of 0.9 over 2 items in odd calls
    and 0.6 over 1 item in even calls."""

    def __init__(self, nan_at=0):
        super().__init__()
        self.conv = nn.Conv2D(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 4)
        self.nan_at = nan_at
        self.calls = 0

    def forward(self, batch):
        self.calls += 1
        feat = nn.functional.relu(self.conv(batch['image'])).mean(axis=[2, 3])
        box = self.fc(feat)
        target = batch['gt_bbox'][:, 0, :] / 8.0
        loss_box = nn.functional.smooth_l1_loss(box, target)
        loss_cls = (box.mean() - 0.5) ** 2
        loss = loss_box + loss_cls
        if self.calls == self.nan_at:
            loss = loss * float('nan')
        odd = self.calls % 2 == 1
        stats = {'num_things': (paddle.to_tensor(1.0), paddle.to_tensor(2.0)),
                 'toy_iou': (paddle.to_tensor(1.8 if odd else 0.6), paddle.to_tensor(2.0 if odd else 1.0))}
        return {'loss': loss, 'loss_cls': loss_cls, 'loss_box': loss_box}, stats


CONFIG = """
_BASE_: {runtime}
architecture: TtToyDetector
TrainDataset: {{name: TtToyFaces, num_images: 12, corrupt: [5]}}
TrainReader: {{sample_transforms: [{{TtNoise: {{sigma: 0.1}}}}], batch_size: 2, num_workers: 0}}
LearningRate:
  base_lr: 0.1
  reference_batch: 2
  schedulers:
    - PiecewiseDecay: {{milestones: [5], gamma: 0.5}}
    - LinearWarmup: {{steps: 2, start_factor: 0.5}}
max_iters: 8
log_iter: 2
snapshot_iter: 3
keep_checkpoints: 2
seed: 3
"""


@pytest.fixture
def config_file(tmp_path, repo_root):
    path = tmp_path / 'toy.yml'
    path.write_text(textwrap.dedent(CONFIG.format(runtime=repo_root / 'configs' / 'runtime.yml')))
    return str(path)


def run(config_file, save_dir, overrides=(), resume=None, validate=False):
    cfg = load_config(config_file, ['save_dir={}'.format(save_dir)] + list(overrides))
    trainer = Trainer(cfg)
    if resume:
        trainer.resume(resume)
    trainer.train(validate=validate)
    return trainer


def state(trainer):
    return {k: v.numpy().copy() for k, v in trainer.raw_model.state_dict().items()}


def read_log(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


@pytest.mark.parametrize('workers', [0, 2])
def test_resumed_run_reaches_the_uninterrupted_weights(config_file, tmp_path, workers):
    reader = ['TrainReader.num_workers={}'.format(workers)]
    full = run(config_file, tmp_path / 'full', reader)
    stopped = run(config_file, tmp_path / 'part', reader + ['max_iters=4'])
    out = os.path.join(str(tmp_path / 'part'), 'toy')
    assert [it for it, _ in list_checkpoints(out)] == [3, 4]
    # a line from after the checkpoint (as if the run had gone on) is dropped on resume
    with open(os.path.join(out, 'train_log.jsonl'), 'a') as f:
        f.write(json.dumps({'type': 'train', 'iter': 99}) + '\n')
    resumed = run(config_file, tmp_path / 'part', reader, resume=os.path.join(out, 'iter_0000003.pdckpt'))
    assert stopped.iteration == 4 and resumed.start_iter == 3 and resumed.iteration == 8
    for key, value in state(full).items():
        np.testing.assert_allclose(state(resumed)[key], value, rtol=1e-5, atol=1e-6, err_msg=key)
    assert [it for it, _ in list_checkpoints(out)] == [6, 8]  # keep_checkpoints: 2
    logged = [r['iter'] for r in read_log(os.path.join(out, 'train_log.jsonl')) if r['type'] == 'train']
    assert logged == [2, 4, 6, 8]
    assert resumed.optimizer.get_lr() == pytest.approx(full.optimizer.get_lr())


def test_logs_report_losses_mining_stats_and_skipped_images(config_file, tmp_path):
    trainer = run(config_file, tmp_path, ['use_vdl=true'])
    out = trainer.save_dir
    records = read_log(os.path.join(out, 'train_log.jsonl'))
    train = [r for r in records if r['type'] == 'train']
    assert [r['iter'] for r in train] == [2, 4, 6, 8]
    for key in ('loss', 'loss_cls', 'loss_box', 'num_things', 'toy_iou', 'counts', 'lr', 'ips', 'eta_s'):
        assert key in train[0], key
    # statistics are sums over counts across the window, whatever their names:
    # (1.8 + 0.6) / (2 + 1), not the mean of the step means (0.9 + 0.6) / 2
    assert train[0]['toy_iou'] == pytest.approx(0.8) and train[0]['num_things'] == pytest.approx(0.5)
    assert train[0]['counts'] == {'num_things': 4.0, 'toy_iou': 3.0}
    assert train[0]['lr'] == pytest.approx(0.075)  # warm-up: iteration 1 of 2 from 0.05 to 0.1
    assert train[-1]['eta_s'] == 0
    # 12 images, one corrupt, batch 2: one skipped image per epoch of 6 batches
    epochs = [r for r in records if r['type'] == 'epoch']
    assert [(r['epoch'], r['skipped']) for r in epochs] == [(0, 1)]
    assert os.listdir(os.path.join(out, 'vdl'))
    assert os.path.isfile(os.path.join(out, 'model_final.pdparams'))
    with open(os.path.join(out, 'train.log')) as f:
        text = f.read()
    assert 'loss_box' in text and 'img/s' in text and '1 image(s) skipped' in text


def test_a_batch_of_only_unreadable_images_is_passed_over(config_file, tmp_path):
    trainer = run(config_file, tmp_path, ['TrainDataset.corrupt=[4, 5]', 'TrainReader.shuffle=false'])
    epochs = [r for r in read_log(os.path.join(trainer.save_dir, 'train_log.jsonl')) if r['type'] == 'epoch']
    # 6 batches per epoch, the third unreadable: the epoch ends after 5 steps
    assert [(r['epoch'], r['iter'], r['skipped']) for r in epochs] == [(0, 5, 2)]
    assert trainer.iteration == 8 and trainer.batches_read == 10  # epoch 1: the third again


class _ImagesVanish(Callback):
    """After the checks before iteration 1, every image becomes unreadable
    (a data disk going away mid-run)."""

    def on_train_begin(self, trainer):
        trainer.dataset.corrupt.update(range(len(trainer.dataset)))


def test_a_run_of_unreadable_images_stops_training_instead_of_looping(config_file, tmp_path):
    cfg = load_config(config_file, ['save_dir={}'.format(tmp_path)])
    trainer = Trainer(cfg)
    assert trainer.unreadable.limit == 12, 'at most one epoch (12 images) of unreadable images in a row'
    with pytest.raises(UnreadableDataError, match='12 images in a row could not be read') as info:
        trainer.train(callbacks=[_ImagesVanish()])
    assert 'cannot decode image corrupt.jpg' in str(info.value) and '\n' not in str(info.value)
    assert trainer.iteration == 0 and trainer.batches_read == 6


def test_unreadable_first_images_stop_training_before_iteration_1(config_file, tmp_path):
    with pytest.raises(UnreadableDataError, match='none of its first 8 images can be read'):
        run(config_file, tmp_path, ['TrainDataset.corrupt=[0, 1, 2, 3, 4, 5, 6, 7]', 'TrainReader.shuffle=false'])
    run(config_file, tmp_path, ['TrainDataset.corrupt=[0, 1, 2, 3, 4, 5, 6]', 'max_iters=2'])


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(config_file, tmp_path):
    out = os.path.join(str(tmp_path), 'toy')
    with pytest.raises(NonFiniteLossError, match='iteration 5') as info:
        run(config_file, tmp_path, ['TtToyDetector.nan_at=5'])
    assert info.value.iteration == 5
    assert info.value.last_checkpoint.endswith('iter_0000003.pdckpt')
    assert 'iter_0000003.pdckpt' in str(info.value)
    assert [it for it, _ in list_checkpoints(out)] == [3]
    assert read_checkpoint(os.path.join(out, 'iter_0000003.pdckpt'))['iteration'] == 3
    assert not os.path.exists(os.path.join(out, 'model_final.pdparams'))
    assert not [f for f in os.listdir(out) if f.endswith('.tmp')]


def load_tool(repo_root):
    spec = importlib.util.spec_from_file_location('train_tool', repo_root / 'tools' / 'train.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_tool_exit_codes(config_file, tmp_path, repo_root, capsys):
    tool = load_tool(repo_root)
    code = tool.main(['-c', config_file, '-o', 'save_dir={}'.format(tmp_path), 'TtToyDetector.nan_at=2'])
    assert code == tool.EXIT_NON_FINITE
    assert 'non-finite loss at iteration 2' in capsys.readouterr().err
    code = run_tool(tool.main, ['-c', config_file, '-o', 'max_iter=3'])
    assert code == EXIT_USER_ERROR
    assert "unknown top-level key 'max_iter'" in capsys.readouterr().err
    code = run_tool(tool.main, ['-c', config_file, '-r', str(tmp_path / 'missing.pdckpt')])
    assert code == EXIT_USER_ERROR
    assert 'checkpoint not found' in capsys.readouterr().err


def test_ema_weights_are_saved_and_amp_on_cpu_is_a_no_op(config_file, tmp_path):
    trainer = run(config_file, tmp_path, ['use_ema=true', 'ema_decay=0.5', 'amp=true',
                                          'max_iters=3', 'snapshot_iter=100'])
    final = paddle.load(os.path.join(trainer.save_dir, 'model_final.pdparams'))
    raw = state(trainer)
    assert not np.allclose(final['fc.weight'].numpy(), raw['fc.weight'])
    np.testing.assert_allclose(final['fc.weight'].numpy(), trainer.ema.state['fc.weight'].numpy())
    assert 'ema' in read_checkpoint(trainer.save_dir)
    if not paddle.device.get_device().startswith('gpu'):
        assert trainer.amp is False
        with open(os.path.join(trainer.save_dir, 'train.log')) as f:
            assert '--amp does nothing' in f.read()


def test_eval_keeps_the_best_model(config_file, tmp_path, monkeypatch):
    scores = iter([0.3, 0.6, 0.4])
    seen = {}

    def scripted_evaluation(model, cfg, protocol=None, output_dir=None):
        assert not model.training
        hard = next(scores)
        seen[hard] = {k: v.numpy().copy() for k, v in model.state_dict().items()}
        return {'easy': 0.9, 'medium': 0.8, 'hard': hard}

    monkeypatch.setattr(evaluator, 'run_evaluation', scripted_evaluation)
    monkeypatch.setattr(evaluator, 'check_evaluation', lambda cfg, protocol=None: 'widerface')
    trainer = run(config_file, tmp_path, ['EvalDataset={name: TtToyFaces}'], validate=True)
    best = paddle.load(os.path.join(trainer.save_dir, 'best_model.pdparams'))
    np.testing.assert_array_equal(best['fc.weight'].numpy(), seen[0.6]['fc.weight'])
    with open(os.path.join(trainer.save_dir, 'best_model.json')) as f:
        assert json.load(f) == {'metric': 'hard', 'value': 0.6, 'iter': 6}
    evals = [r for r in read_log(os.path.join(trainer.save_dir, 'train_log.jsonl')) if r['type'] == 'eval']
    assert [(r['iter'], r['hard']) for r in evals] == [(3, 0.3), (6, 0.6), (8, 0.4)]
    assert read_checkpoint(trainer.save_dir)['extra']['callbacks']['EvalCallback']['best']['iter'] == 6


DEMO_CONFIG = """
_BASE_: {base}
TrainDataset: {{dataset_dir: {data}}}
EvalDataset: {{dataset_dir: {data}}}
TrainReader:
  sample_transforms:
    - Decode: {{}}
    - RandomDistort: {{prob: 0.5}}
    - DataAnchorSampling:
        prob: 0.5
        target_size: 128
        anchor_sizes: [16, 32, 64]
        fallback: {{name: RandomSquareCrop, target_size: 128}}
    - RandomFlip: {{prob: 0.5}}
    - Resize: {{target_size: [128, 128], keep_ratio: false}}
    - Normalize: {{}}
    - Permute: {{}}
  batch_transforms: [{{PadGT: {{}}}}]
  batch_size: 2
  num_workers: 2
eval_protocol: original
max_iters: 6
snapshot_iter: 3
log_iter: 3
"""


@pytest.fixture(scope='module')
def demo_config(tmp_path_factory, repo_root):
    from ppdet_hambox.data.source import demo
    root = tmp_path_factory.mktemp('demo')
    demo.generate(str(root / 'data'), seed=2, num_train=6, num_val=2, size='160x128')
    path = root / 'demo.yml'
    path.write_text(textwrap.dedent(DEMO_CONFIG.format(
        base=repo_root / 'configs' / 'demo' / 'hambox_demo.yml', data=root / 'data')))
    return str(path)


def test_demo_model_resumes_exactly_with_random_augmentation_and_workers(demo_config, tmp_path):
    full = run(demo_config, tmp_path / 'full', validate=True)
    run(demo_config, tmp_path / 'part', ['max_iters=4'])
    resumed = run(demo_config, tmp_path / 'part', resume=str(tmp_path / 'part' / 'demo' / 'iter_0000003.pdckpt'))
    assert resumed.start_iter == 3 and resumed.iteration == 6
    for key, value in state(full).items():
        np.testing.assert_allclose(state(resumed)[key], value, rtol=1e-4, atol=1e-5, err_msg=key)
    cfg = load_config(demo_config)
    set_random_seed(cfg['seed'])
    init = build_model(cfg).state_dict()  # same seed: the starting weights
    moved = sum(not np.array_equal(init[k].numpy(), v) for k, v in state(full).items())
    assert moved > len(init) // 2
    records = read_log(os.path.join(full.save_dir, 'train_log.jsonl'))
    train = [r for r in records if r['type'] == 'train']
    assert [r['iter'] for r in train] == [3, 6]
    assert all(np.isfinite(r['loss']) and 'num_compensated' in r and 'compensated_iou' in r
               and 'num_ignored' in r and 'num_pos' in r for r in train)
    evals = [r for r in records if r['type'] == 'eval']
    assert [r['iter'] for r in evals] == [3, 6] and all(0 <= r['hard'] <= 1 for r in evals)
    with open(os.path.join(full.save_dir, 'best_model.json')) as f:
        best = json.load(f)
    assert best['metric'] == 'hard' and best['value'] == max(r['hard'] for r in evals)
    assert os.path.isfile(os.path.join(full.save_dir, 'best_model.pdparams'))


def test_resuming_is_exact_or_refused(config_file, tmp_path):
    """A checkpoint past max_iters, or of another model, is a CheckpointError before anything is loaded."""
    from ppdet_hambox.utils.checkpoint import CheckpointError
    run(config_file, tmp_path / 'a', ['max_iters=3'])
    checkpoint = os.path.join(str(tmp_path / 'a'), 'toy', 'iter_0000003.pdckpt')
    trainer = Trainer(load_config(config_file, ['save_dir={}'.format(tmp_path / 'b'), 'max_iters=2']))
    with pytest.raises(CheckpointError, match='at iteration 3, past max_iters 2'):
        trainer.resume(checkpoint)
    trainer = Trainer(load_config(config_file, ['save_dir={}'.format(tmp_path / 'c')]))
    trainer.raw_model.fc = nn.Linear(4, 5)
    with pytest.raises(CheckpointError, match=r'written by another model \(2 tensor\(s\) differ, e.g. fc.weight '
                                              r'\(checkpoint \[4, 4\], model \[4, 5\]\)'):
        trainer.resume(checkpoint)


def test_batches_without_an_image_name_the_pipeline(config_file, tmp_path):
    trainer = Trainer(load_config(config_file, ['save_dir={}'.format(tmp_path)]))
    with pytest.raises(ConfigError, match=r'toy\.yml: TrainReader\.sample_transforms give batches without an '
                                          r'image \(keys: gt_bbox, im_id\); the list starts with Decode'):
        trainer._forward({'gt_bbox': None, 'im_id': None})
