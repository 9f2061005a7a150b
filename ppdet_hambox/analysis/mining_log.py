"""Read the mining statistics of a training run from ``train_log.jsonl`` (paper Fig. 3).

The trainer writes one JSON object per log step with ``"type": "train"``,
``iter`` and the loss dict's scalars averaged over the steps since the last
record, among them ``num_com`` (compensated anchors per image) and
``com_iou`` (mean IoU of their decoded boxes with their faces, 0 in a step
without any). ``com_iou`` is only meaningful where ``num_com > 0``: averages
of it are weighted by ``num_com`` (``weighted_smooth``, ``weighted_mean``),
so windows without compensated anchors are gaps, not zeros.
"""
import json
import os

import numpy as np

from ppdet_hambox.core.errors import UserError

__all__ = ['MiningLogError', 'read_mining_log', 'MINING_FIELDS', 'smooth', 'weighted_smooth', 'weighted_mean']

MINING_FIELDS = ('num_com', 'com_iou')


class MiningLogError(UserError, ValueError):
    """A log that cannot be read; the message names the file and line."""


def read_mining_log(path, fields=MINING_FIELDS):
    """``{'iter': int64 [n], field: float64 [n], ...}`` from the train records, by iteration.

    A last line that is not valid JSON (a run cut short while writing) is
    skipped; any other bad line is an error.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise MiningLogError('{}: no such log file'.format(path))
    with open(path, encoding='utf-8') as f:
        lines = f.read().splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            if number == len(lines):
                break
            raise MiningLogError('{}:{}: not a JSON object: {!r}'.format(path, number, line[:80])) from None
        if not isinstance(entry, dict):
            raise MiningLogError('{}:{}: not a JSON object: {!r}'.format(path, number, line[:80]))
        if entry.get('type', 'train') != 'train' or 'iter' not in entry:
            continue
        missing = [k for k in fields if k not in entry]
        if missing:
            raise MiningLogError('{}:{}: train record without {} (it has: {}); is this a run of '
                                 'a loss that reports mining statistics?'.format(
                                     path, number, ', '.join(missing), ', '.join(sorted(entry))))
        records.append([entry['iter']] + [entry[k] for k in fields])
    if not records:
        raise MiningLogError('{}: no train records (lines with "type": "train" and "iter")'.format(path))
    table = np.array(records, dtype=np.float64)
    table = table[np.argsort(table[:, 0], kind='stable')]
    out = {'iter': table[:, 0].astype(np.int64)}
    for i, key in enumerate(fields, 1):
        out[key] = table[:, i]
    return out


def smooth(values, window):
    """Trailing moving average over ``window`` records (``window <= 1``: unchanged)."""
    values = np.asarray(values, dtype=np.float64)
    if window <= 1 or len(values) == 0:
        return values
    cumsum = np.concatenate([[0.0], np.cumsum(values)])
    idx = np.arange(1, len(values) + 1)
    start = np.maximum(idx - window, 0)
    return (cumsum[idx] - cumsum[start]) / (idx - start)


def weighted_smooth(values, weights, window):
    """Trailing moving average of ``values`` weighted by ``weights`` over
    ``window`` records (``window <= 1``: each record alone); NaN where the
    window's weights sum to 0 (e.g. ``com_iou`` where nothing was compensated)."""
    values = np.asarray(values, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    window = max(int(window), 1)
    num = np.concatenate([[0.0], np.cumsum(values * weights)])
    den = np.concatenate([[0.0], np.cumsum(weights)])
    idx = np.arange(1, len(values) + 1)
    start = np.maximum(idx - window, 0)
    total = den[idx] - den[start]
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(total > 0, (num[idx] - num[start]) / np.where(total > 0, total, 1.0), np.nan)


def weighted_mean(values, weights):
    """``sum(values * weights) / sum(weights)``; None when the weights sum to 0."""
    values = np.asarray(values, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    total = weights.sum()
    return float((values * weights).sum() / total) if total > 0 else None
