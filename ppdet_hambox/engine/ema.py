"""Exponential moving average of model weights (``use_ema``, ``ema_decay``)."""
import contextlib

import paddle


class ModelEMA:
    """Keeps ``ema = d * ema + (1 - d) * weights`` after every optimizer step.

    The decay ramps up as ``min(decay, (1 + n) / (10 + n))`` after ``n``
    updates, so the average does not stay anchored to the random
    initialisation early in training. Buffers that are not floating point
    (counters) are copied, not averaged.
    """

    def __init__(self, model, decay=0.9998):
        if not 0.0 < decay < 1.0:
            raise ValueError('ema_decay must be in (0, 1), got {}'.format(decay))
        self.decay = decay
        self.updates = 0
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def current_decay(self):
        return min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))

    @paddle.no_grad()
    def update(self, model):
        self.updates += 1
        d = self.current_decay()
        for key, value in model.state_dict().items():
            average = self.state[key]
            if value.dtype in (paddle.float32, paddle.float64, paddle.float16, paddle.bfloat16):
                average.set_value(average * d + value.detach().astype(average.dtype) * (1.0 - d))
            else:
                average.set_value(value.detach())

    def state_dict(self):
        return {'decay': self.decay, 'updates': self.updates, 'weights': self.state}

    def set_state_dict(self, state):
        self.decay = state['decay']
        self.updates = state['updates']
        for key, value in state['weights'].items():
            if key in self.state:
                self.state[key].set_value(value)

    @contextlib.contextmanager
    def applied(self, model):
        """Run a block with the averaged weights in ``model``, then put the raw ones back."""
        backup = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.set_state_dict(self.state)
        try:
            yield model
        finally:
            model.set_state_dict(backup)
