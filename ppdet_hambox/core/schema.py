"""Top-level config keys that are not component sections, and value ranges.

``GLOBAL_KEYS`` maps each key to the Python type(s) its value must have, or
``'component'`` for a key that names a registered component (``{name:
ClassName, ...}``). ``GLOBAL_RANGES`` gives the range of numeric keys; a
component declares the ranges of its arguments in a ``__ranges__`` class
attribute with the same ``Range`` objects. The registry checks both when a
config is loaded (``workspace.validate_config``), so a value out of range is
one error naming the file and key before anything is built.
"""
import math


class Range:
    """``low <= value <= high`` (either bound may be None); ``open_low`` and
    ``open_high`` exclude the bound. ``None`` values pass (a key left unset)."""

    def __init__(self, low=None, high=None, open_low=False, open_high=False):
        self.low, self.high, self.open_low, self.open_high = low, high, open_low, open_high

    def check(self, value):
        """None when ``value`` is in range, else what it should be."""
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            return None  # types are checked elsewhere
        if isinstance(value, float) and not math.isfinite(value):
            return 'a finite number'
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return str(self)
        if self.high is not None and (value >= self.high if self.open_high else value > self.high):
            return str(self)
        return None

    def __str__(self):
        if self.low is not None and self.high is not None:
            return 'in {}{}, {}{}'.format('(' if self.open_low else '[', self.low, self.high,
                                          ')' if self.open_high else ']')
        if self.low is not None:
            return '{} {}'.format('>' if self.open_low else '>=', self.low)
        return '<= {}'.format(self.high)


COUNT = Range(1)            # how many: at least one
NON_NEGATIVE = Range(0)     # a count where 0 means none (or all, where the key says so)
PROBABILITY = Range(0.0, 1.0)
POSITIVE = Range(0.0, open_low=True)
SEED = Range(0, 2 ** 32 - 1)  # numpy's legacy seeding takes no more

GLOBAL_KEYS = {
    # what to build
    'architecture': str,
    'num_classes': int,
    'TrainDataset': 'component',
    'EvalDataset': 'component',
    'TestDataset': 'component',
    # weights
    'weights': (str, type(None)),
    'pretrain_weights': (str, type(None)),
    # schedule and run
    'max_iters': int,
    'log_iter': int,
    'snapshot_iter': int,
    'keep_checkpoints': int,
    'save_dir': str,
    'seed': int,
    'use_ema': bool,
    'ema_decay': float,
    'clip_grad_norm': (int, float, type(None)),
    'amp': bool,
    'use_vdl': bool,
    'vdl_log_dir': (str, type(None)),
    'find_unused_parameters': bool,
    'peer_timeout': (int, float),
    'best_metric': str,
    # evaluation
    'metric': str,
    'eval_protocol': str,
    'draw_threshold': (int, float),
    'output_eval': (str, type(None)),
    'wider_gt_dir': (str, type(None)),
}

GLOBAL_RANGES = {
    'num_classes': COUNT,
    'max_iters': COUNT,
    'log_iter': COUNT,
    'snapshot_iter': COUNT,
    'seed': SEED,
    'peer_timeout': Range(0),           # seconds; 0: no watchdog
    'keep_checkpoints': NON_NEGATIVE,   # 0 keeps every checkpoint
    'ema_decay': Range(0.0, 1.0, open_low=True, open_high=True),
    'clip_grad_norm': POSITIVE,
    'draw_threshold': PROBABILITY,
}
