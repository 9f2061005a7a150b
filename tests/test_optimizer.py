"""LR schedule (warm-up, absolute milestones, batch scaling) and the optimizer builder."""
import numpy as np
import paddle
import pytest

from ppdet_hambox.core.errors import ConfigError
from ppdet_hambox.core.workspace import create, load_config
from ppdet_hambox.engine.optimizer import LearningRate, OptimizerBuilder, scaled_lr


def lr_values(scheduler, n):
    values = []
    for _ in range(n):
        values.append(scheduler())
        scheduler.step()
    return np.array(values)


def test_warmup_then_decay_at_absolute_milestones():
    config = LearningRate(base_lr=0.1, reference_batch=8, schedulers=[
        {'PiecewiseDecay': {'milestones': [6, 8], 'gamma': 0.1}},
        {'LinearWarmup': {'steps': 4, 'start_factor': 0.2}}])
    values = lr_values(config(8), 10)
    # warm-up: 0.02 -> 0.1 linearly over 4 iterations, then 0.1 until iteration 6
    np.testing.assert_allclose(values[:4], [0.02, 0.04, 0.06, 0.08], rtol=1e-6)
    np.testing.assert_allclose(values[4:6], [0.1, 0.1], rtol=1e-6)
    np.testing.assert_allclose(values[6:8], [0.01, 0.01], rtol=1e-6)
    np.testing.assert_allclose(values[8:], [0.001, 0.001], rtol=1e-6)


def test_linear_scaling_with_global_batch_and_switch():
    assert scaled_lr(0.01, 14, 28) == pytest.approx(0.005)
    assert scaled_lr(0.01, 56, 28) == pytest.approx(0.02)
    assert scaled_lr(0.01, 14, 28, scale_with_batch=False) == pytest.approx(0.01)
    config = LearningRate(base_lr=0.01, reference_batch=28, schedulers=[])
    assert lr_values(config(7), 3) == pytest.approx([0.0025] * 3)
    off = LearningRate(base_lr=0.01, reference_batch=28, scale_with_batch=False, schedulers=[])
    assert off(7)() == pytest.approx(0.01)


def test_schedule_errors_are_config_errors():
    with pytest.raises(ConfigError, match='inside the 10-iteration warm-up'):
        LearningRate(schedulers=[{'PiecewiseDecay': {'milestones': [5]}},
                                 {'LinearWarmup': {'steps': 10}}])(28)
    with pytest.raises(ConfigError, match='increasing'):
        LearningRate(schedulers=[{'PiecewiseDecay': {'milestones': [9, 3]}}])
    with pytest.raises(ConfigError, match='at most one decay'):
        LearningRate(schedulers=[{'PiecewiseDecay': {}}, {'PiecewiseDecay': {}}])


PAPER_SCHEDULE = """
LearningRate:
  base_lr: 0.01
  reference_batch: 28
  schedulers:
    - PiecewiseDecay: {milestones: [110000], gamma: 0.1}
    - LinearWarmup: {steps: 1000, start_factor: 0.1}
OptimizerBuilder:
  optimizer: {type: Momentum, momentum: 0.9}
  regularizer: {type: L2, factor: 5.0e-5}
"""


def test_schedule_from_config_with_overrides(tmp_path):
    path = tmp_path / 'schedule.yml'
    path.write_text(PAPER_SCHEDULE)
    cfg = load_config(str(path), ['LearningRate.base_lr=0.02', 'OptimizerBuilder.regularizer.factor=0.001'])
    lr = create('LearningRate', cfg)
    assert lr.effective_lr(28) == pytest.approx(0.02)
    assert lr.decays[0].milestones == [110000] and lr.warmups[0].steps == 1000
    assert create('OptimizerBuilder', cfg).weight_decay == pytest.approx(0.001)
    with pytest.raises(ConfigError, match='PiecewiseDecay'):
        load_config(str(path), ['LearningRate.schedulers=[{PiecewiseDecay: {gama: 0.1}}]'])


class Tiny(paddle.nn.Layer):
    def __init__(self):
        super().__init__()
        self.fc = paddle.nn.Linear(3, 2)
        self.norm = paddle.nn.BatchNorm1D(2)
        self.frozen = paddle.nn.Linear(2, 2)
        self.frozen.weight.stop_gradient = True
        self.frozen.bias.stop_gradient = True

    def forward(self, x):
        return self.frozen(self.norm(self.fc(x)))


def one_step(builder, lr, loss_fn):
    paddle.seed(0)
    model = Tiny()
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    opt = builder(lr, model)
    loss_fn(model).backward()
    opt.step()
    return before, {k: v.numpy() for k, v in model.state_dict().items()}


@pytest.mark.parametrize('optimizer', [{'type': 'SGD'}, {'type': 'Momentum', 'momentum': 0.9}])
def test_weight_decay_skips_bias_and_norm_unless_asked(optimizer):
    zero_grad = lambda m: 0.0 * m(paddle.ones([4, 3])).sum()  # noqa: E731
    builder = OptimizerBuilder(optimizer=optimizer, regularizer={'type': 'L2', 'factor': 0.5})
    before, after = one_step(builder, 0.1, zero_grad)
    np.testing.assert_allclose(after['fc.weight'], before['fc.weight'] * (1 - 0.1 * 0.5), rtol=1e-5)
    np.testing.assert_array_equal(after['fc.bias'], before['fc.bias'])
    np.testing.assert_array_equal(after['norm.weight'], before['norm.weight'])
    np.testing.assert_array_equal(after['frozen.weight'], before['frozen.weight'])
    decay_all = OptimizerBuilder(optimizer=optimizer, regularizer={'type': 'L2', 'factor': 0.5},
                                 decay_norm_and_bias=True)
    before, after = one_step(decay_all, 0.1, zero_grad)
    np.testing.assert_allclose(after['norm.weight'], before['norm.weight'] * 0.95, rtol=1e-5)


def test_gradient_clipping_bounds_the_update():
    big = lambda m: 1000.0 * m.fc(paddle.ones([1, 3])).sum()  # noqa: E731
    clipped = OptimizerBuilder(optimizer={'type': 'SGD'}, regularizer=None, clip_grad_norm=1.0)
    before, after = one_step(clipped, 1.0, big)
    step = np.concatenate([(after[k] - before[k]).ravel() for k in ('fc.weight', 'fc.bias')])
    assert np.linalg.norm(step) == pytest.approx(1.0, rel=1e-4)
    free = OptimizerBuilder(optimizer={'type': 'SGD'}, regularizer=None)
    before, after = one_step(free, 1.0, big)
    assert np.abs(after['fc.weight'] - before['fc.weight']).max() == pytest.approx(1000.0, rel=1e-4)


def test_paper_defaults_and_bad_optimizer():
    builder = OptimizerBuilder()
    assert isinstance(builder(0.1, Tiny()), paddle.optimizer.Momentum)
    assert builder.weight_decay == pytest.approx(5e-5)
    assert OptimizerBuilder(regularizer=None).weight_decay == 0.0
    with pytest.raises(ConfigError, match='Momentun'):
        OptimizerBuilder(optimizer={'type': 'Momentun'})
    with pytest.raises(ConfigError, match='OptimizerBuilder.optimizer'):
        OptimizerBuilder(optimizer={'type': 'Momentum', 'momentun': 0.9})(0.1, Tiny())
    with pytest.raises(ConfigError, match='regularizer'):
        OptimizerBuilder(regularizer={'type': 'L1', 'factor': 0.1})
