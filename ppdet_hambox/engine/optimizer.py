"""Learning-rate schedule and optimizer, built from the config.

```yaml
LearningRate:
  base_lr: 0.01          # for a global batch of reference_batch images
  reference_batch: 28    # the paper: 4 GPUs x 7 images
  scale_with_batch: true # lr = base_lr * global_batch / reference_batch
  schedulers:
    - PiecewiseDecay: {milestones: [110000], gamma: 0.1}
    - LinearWarmup: {steps: 1000, start_factor: 0.333}
OptimizerBuilder:
  optimizer: {type: Momentum, momentum: 0.9}
  regularizer: {type: L2, factor: 5.0e-5}
  decay_norm_and_bias: false
```

Every schedule counts iterations (one ``scheduler.step()`` per training
step), and milestones are absolute iteration numbers, warm-up included.
"""
import inspect

import paddle

from ppdet_hambox.core.schema import COUNT, NON_NEGATIVE, POSITIVE, PROBABILITY
from ppdet_hambox.core.errors import ConfigError
from ppdet_hambox.core.workspace import build_component_list, register

__all__ = ['LearningRate', 'PiecewiseDecay', 'LinearWarmup', 'OptimizerBuilder', 'scaled_lr']


def scaled_lr(base_lr, global_batch, reference_batch, scale_with_batch=True):
    """The linear scaling rule: ``base_lr`` is tuned for ``reference_batch``
    images per step; a run with ``global_batch`` images per step (batch size
    per process x processes) uses ``base_lr * global_batch / reference_batch``."""
    if not scale_with_batch:
        return base_lr
    if reference_batch <= 0 or global_batch <= 0:
        raise ConfigError('LearningRate.reference_batch and the batch size must be positive '
                          '(got {} and {})'.format(reference_batch, global_batch))
    return base_lr * global_batch / reference_batch


@register
class PiecewiseDecay:
    """Multiply the learning rate by ``gamma`` at each milestone iteration."""
    __ranges__ = {'gamma': POSITIVE}
    is_warmup = False

    def __init__(self, milestones=(110000,), gamma=0.1):
        self.milestones = [int(m) for m in milestones]
        if self.milestones != sorted(set(self.milestones)) or not self.milestones:
            raise ConfigError('PiecewiseDecay.milestones must be increasing iteration numbers, '
                              'got {}'.format(list(milestones)))
        self.gamma = gamma

    def __call__(self, base_lr, offset=0):
        """A ``paddle.optimizer.lr.PiecewiseDecay`` whose step 0 is iteration ``offset``."""
        if self.milestones[0] <= offset:
            raise ConfigError('PiecewiseDecay milestone {} falls inside the {}-iteration warm-up'.format(
                self.milestones[0], offset))
        values = [base_lr * self.gamma ** i for i in range(len(self.milestones) + 1)]
        return paddle.optimizer.lr.PiecewiseDecay([m - offset for m in self.milestones], values)


@register
class LinearWarmup:
    """Ramp linearly from ``start_factor * lr`` to ``lr`` over ``steps`` iterations."""
    __ranges__ = {'steps': NON_NEGATIVE, 'start_factor': PROBABILITY}
    is_warmup = True

    def __init__(self, steps=1000, start_factor=0.333):
        if steps < 0 or not 0 <= start_factor <= 1:
            raise ConfigError('LinearWarmup needs steps >= 0 and 0 <= start_factor <= 1, '
                              'got steps={} start_factor={}'.format(steps, start_factor))
        self.steps = int(steps)
        self.start_factor = start_factor

    def __call__(self, base_lr, inner):
        # Paddle's warm-up starts the inner schedule at 0 after `steps`
        # iterations; LearningRate shifts the decay milestones to match.
        return paddle.optimizer.lr.LinearWarmup(
            learning_rate=inner, warmup_steps=self.steps,
            start_lr=base_lr * self.start_factor, end_lr=base_lr)


@register
class LearningRate:
    """Build the iteration-based LR scheduler for a given global batch."""
    __ranges__ = {'base_lr': POSITIVE, 'reference_batch': COUNT}
    __component_lists__ = ['schedulers']

    def __init__(self, base_lr=0.01, reference_batch=28, scale_with_batch=True,
                 schedulers=({'PiecewiseDecay': {}}, {'LinearWarmup': {}})):
        self.base_lr = base_lr
        self.reference_batch = reference_batch
        self.scale_with_batch = scale_with_batch
        built = build_component_list(list(schedulers or []), path='LearningRate.schedulers')
        self.decays = [s for s in built if not getattr(s, 'is_warmup', False)]
        self.warmups = [s for s in built if getattr(s, 'is_warmup', False)]
        if len(self.decays) > 1 or len(self.warmups) > 1:
            raise ConfigError('LearningRate.schedulers takes at most one decay and one warm-up, '
                              'got {}'.format([type(s).__name__ for s in built]))

    def effective_lr(self, global_batch):
        return scaled_lr(self.base_lr, global_batch, self.reference_batch, self.scale_with_batch)

    def __call__(self, global_batch):
        lr = self.effective_lr(global_batch)
        warmup = self.warmups[0] if self.warmups else None
        offset = warmup.steps if warmup else 0
        if self.decays:
            schedule = self.decays[0](lr, offset)
        else:  # constant: one milestone that is never reached
            schedule = paddle.optimizer.lr.PiecewiseDecay([2 ** 62], [lr, lr])
        return warmup(lr, schedule) if warmup else schedule


# Paper section 4.1; ``regularizer: null`` turns weight decay off.
PAPER_OPTIMIZER = {'type': 'Momentum', 'momentum': 0.9}
PAPER_REGULARIZER = {'type': 'L2', 'factor': 5.0e-5}


@register
class OptimizerBuilder:
    """Build a ``paddle.optimizer`` for a model.

    ``optimizer.type`` names any class of ``paddle.optimizer`` (Momentum, SGD,
    Adam, AdamW, ...); the other keys of ``optimizer`` are its arguments.
    ``regularizer`` ``{type: L2, factor}`` becomes the optimizer's
    ``weight_decay`` (coupled L2 for SGD/Momentum, decoupled for AdamW).
    Parameters left out of weight decay get ``param.regularizer = L2Decay(0)``
    (AdamW: ``apply_decay_param_fun``).

    Weight decay skips one-dimensional parameters (biases, norm scales and
    shifts, the LFPN's L2-norm scales) unless ``decay_norm_and_bias``:
    shrinking them does not limit the capacity of the network and only biases
    the normalisation. The paper does not say; Detectron's RetinaNet and
    PyramidBox's Paddle code both leave biases and norm parameters undecayed. ``clip_grad_norm`` clips the global gradient norm
    (the global config key of the same name also sets it).
    """
    __shared__ = ['clip_grad_norm']

    def __init__(self, optimizer=PAPER_OPTIMIZER, regularizer=PAPER_REGULARIZER, clip_grad_norm=None,
                 decay_norm_and_bias=False):
        self.optimizer = dict(optimizer or PAPER_OPTIMIZER)
        self.regularizer = dict(regularizer) if regularizer else None
        self.clip_grad_norm = clip_grad_norm
        self.decay_norm_and_bias = decay_norm_and_bias
        name = self.optimizer.get('type')
        if not isinstance(name, str) or not isinstance(getattr(paddle.optimizer, name, None), type):
            raise ConfigError('OptimizerBuilder.optimizer.type {!r} is not a paddle.optimizer class '
                              '(e.g. Momentum, SGD, AdamW)'.format(name))
        if self.regularizer is not None and self.regularizer.get('type', 'L2') != 'L2':
            raise ConfigError('OptimizerBuilder.regularizer.type {!r} is not supported (use L2)'.format(
                self.regularizer.get('type')))
        if clip_grad_norm is not None and clip_grad_norm <= 0:
            raise ConfigError('clip_grad_norm must be positive or null, got {}'.format(clip_grad_norm))

    @property
    def weight_decay(self):
        return float(self.regularizer.get('factor', 0.0)) if self.regularizer else 0.0

    def param_groups(self, model):
        """Trainable parameters split into (decayed, not decayed)."""
        decay, no_decay = [], []
        for param in model.parameters():
            if param.stop_gradient:
                continue
            skip = not self.decay_norm_and_bias and len(param.shape) <= 1
            (no_decay if skip else decay).append(param)
        return decay, no_decay

    def __call__(self, learning_rate, model):
        kwargs = {k: v for k, v in self.optimizer.items() if k != 'type'}
        decay, no_decay = self.param_groups(model)
        if not decay and not no_decay:
            raise ConfigError('the model has no trainable parameter (all frozen?)')
        cls = getattr(paddle.optimizer, self.optimizer['type'])
        # One parameter group (Paddle clips each group on its own, which would
        # make clip_grad_norm per group); the no-decay set is per parameter.
        if 'apply_decay_param_fun' in inspect.signature(cls).parameters:
            names = {p.name for p in decay}
            kwargs.setdefault('apply_decay_param_fun', lambda name: name in names)
        else:
            for param in no_decay:
                param.regularizer = paddle.regularizer.L2Decay(0.0)
        clip = paddle.nn.ClipGradByGlobalNorm(self.clip_grad_norm) if self.clip_grad_norm else None
        try:
            return cls(learning_rate=learning_rate, parameters=decay + no_decay,
                       weight_decay=self.weight_decay or None, grad_clip=clip, **kwargs)
        except TypeError as err:
            raise ConfigError('OptimizerBuilder.optimizer {}: {}'.format(self.optimizer, err)) from None
