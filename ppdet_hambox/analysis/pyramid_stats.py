"""Per-level statistics of a detector's pyramid: what the shared head sees.

``level_stats(model, batch)``: for every neck output level (P2..P7), the
mean, standard deviation and largest magnitude of its activations and the
largest magnitude of the classification logits of its anchors, plus the
loss terms of that batch. ``measure(cfg, iters)`` takes them on the first
training batch of a config, at initialisation (or with the config's
weights), runs ``iters`` training steps of the config's own schedule
through ``Trainer``, reports every step's loss terms and whether they stayed
finite, and takes the statistics again on the same batch.
"""
import math

import paddle

from ppdet_hambox.engine.callbacks import Callback
from ppdet_hambox.engine.trainer import NonFiniteLossError, Trainer

__all__ = ['level_stats', 'measure', 'format_levels']

LEVEL_NAMES = ('P2', 'P3', 'P4', 'P5', 'P6', 'P7')


@paddle.no_grad()
def level_stats(model, batch):
    """``dict(levels=[{name, shape, mean, std, max_abs, max_abs_logit}], losses={...})``
    in the model's current mode (a training-mode model normalises with the batch)."""
    pyramid = model.neck(model.backbone(batch['image']))
    out = model.head(pyramid)
    logits = out['cls_logits']
    levels, start = [], 0
    for index, feat in enumerate(pyramid):
        count = int(feat.shape[2] * feat.shape[3]) * (logits.shape[1] // sum(
            int(p.shape[2] * p.shape[3]) for p in pyramid))
        level_logits = logits[:, start:start + count]
        start += count
        levels.append({'name': LEVEL_NAMES[index] if index < len(LEVEL_NAMES) else 'L{}'.format(index),
                       'shape': [int(v) for v in feat.shape[1:]],
                       'mean': float(feat.mean()), 'std': float(feat.std()),
                       'max_abs': float(feat.abs().max()),
                       'max_abs_logit': float(level_logits.abs().max())})
    losses = {}
    if model.training:
        losses = {k: float(v) for k, v in model(batch)[0].items()}
    return {'levels': levels, 'losses': losses}


class _StepLog(Callback):
    def __init__(self):
        self.records = []

    def on_log(self, trainer, record):
        self.records.append({k: record[k] for k in ('iter', 'lr') + tuple(
            k for k in record if k.startswith('loss'))})


def measure(cfg, iters=50, weights=None):
    """Statistics of the first training batch before and after ``iters``
    steps of ``cfg``'s schedule (``cfg`` must log every step: ``log_iter=1``)."""
    trainer = Trainer(cfg)
    if weights:
        trainer.load_weights(weights)
    model = trainer.raw_model
    batch = next(iter(trainer.loader))
    batch.pop('num_skipped', None)
    model.train()
    before = level_stats(model, batch)
    log = _StepLog()
    failure = None
    if iters > 0:
        try:
            trainer.train(callbacks=[log])
        except NonFiniteLossError as err:
            failure = str(err)
    model.train()
    after = level_stats(model, batch) if iters > 0 and failure is None else None
    finite = failure is None and all(math.isfinite(v) for r in log.records for k, v in r.items())
    return {'batch_shape': [int(v) for v in batch['image'].shape], 'init': before, 'steps': log.records,
            'iters': iters, 'finite': finite, 'failure': failure, 'after': after}


def format_levels(stats, title):
    lines = [title, '{:<5}{:>16}{:>10}{:>11}{:>12}{:>12}'.format(
        'level', 'shape', 'mean', 'std', 'max |x|', 'max |logit|')]
    for level in stats['levels']:
        lines.append('{:<5}{:>16}{:>10.3g}{:>11.4g}{:>12.4g}{:>12.4g}'.format(
            level['name'], 'x'.join(str(v) for v in level['shape']), level['mean'], level['std'],
            level['max_abs'], level['max_abs_logit']))
    if stats['losses']:
        lines.append('losses: ' + '  '.join('{} {:.4g}'.format(k, v) for k, v in sorted(stats['losses'].items())))
    return '\n'.join(lines)
