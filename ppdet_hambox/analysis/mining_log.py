"""Read the mining statistics of a training run from ``train_log.jsonl`` (paper Fig. 3).

The trainer writes one JSON object per log step with ``"type": "train"``,
``iter``, the model's statistics as exact means over the steps since the
last record, and ``counts``, how many items each mean is over. For HAMBox's
compensated anchors: ``num_compensated`` (per image; its count is the
images) and ``compensated_iou`` (mean IoU of their decoded boxes with their
faces; its count is the compensated anchors, 0 in a window without any).
DMS / NAMS runs log their second-step anchors the same way
(``num_second_step``, ``second_step_iou``). Means over several records are
weighted by those counts (``weighted_smooth``, ``weighted_mean``,
``summarize``), so they equal the mean over all the anchors (or images) of
those records, and windows without anchors are gaps, not zeros.
"""
import json
import os

import numpy as np

from ppdet_hambox.core.errors import UserError

__all__ = ['MiningLogError', 'KINDS', 'read_statistics', 'read_mining_log', 'logged_kinds', 'smooth',
           'weighted_smooth', 'weighted_mean', 'last_quarter', 'summarize']

KINDS = ('compensated', 'second_step')


class MiningLogError(UserError, ValueError):
    """A log that cannot be read; the message names the file and line."""


def _fields(kind):
    if kind not in KINDS:
        raise ValueError('kind must be one of {}, got {!r}'.format(', '.join(KINDS), kind))
    return 'num_' + kind, kind + '_iou'


def _train_records(path):
    """``(line number, record)`` of the train records; a last line that is
    not valid JSON (a run cut short while writing) is skipped, any other bad
    line is an error."""
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
        if entry.get('type', 'train') == 'train' and 'iter' in entry:
            records.append((number, entry))
    if not records:
        raise MiningLogError('{}: no train records (lines with "type": "train" and "iter")'.format(path))
    return records


def logged_kinds(path):
    """The kinds of mined anchors (``KINDS``) the log's first train record reports."""
    _, first = _train_records(path)[0]
    return [kind for kind in KINDS if all(name in first for name in _fields(kind))]


def read_statistics(path, names):
    """``{'iter': int64 [n], 'mean': {name: float64 [n]}, 'count': {name: float64 [n]}}``
    of the statistics ``names`` in the train records, by iteration."""
    rows = []
    for number, entry in _train_records(path):
        counts = entry.get('counts') if isinstance(entry.get('counts'), dict) else {}
        missing = [k for k in names if k not in entry] + ['counts.' + k for k in names if k not in counts]
        if missing:
            raise MiningLogError('{}:{}: train record without {} (it has: {})'.format(
                path, number, ', '.join(missing), ', '.join(sorted(entry))))
        rows.append([entry['iter']] + [entry[k] for k in names] + [counts[k] for k in names])
    table = np.array(rows, dtype=np.float64)
    table = table[np.argsort(table[:, 0], kind='stable')]
    n = len(names)
    return {'iter': table[:, 0].astype(np.int64),
            'mean': {k: table[:, 1 + i] for i, k in enumerate(names)},
            'count': {k: table[:, 1 + n + i] for i, k in enumerate(names)}}


def read_mining_log(path, kind='compensated'):
    """``{'iter': int64 [n], 'num', 'iou', 'images', 'anchors': float64 [n]}``
    from the train records, by iteration: ``num`` the ``kind`` anchors per
    image, ``iou`` their mean decoded IoU, ``images`` and ``anchors`` the
    counts those two means are over."""
    num_key, iou_key = _fields(kind)
    table = read_statistics(path, [num_key, iou_key])
    return {'iter': table['iter'], 'num': table['mean'][num_key], 'iou': table['mean'][iou_key],
            'images': table['count'][num_key], 'anchors': table['count'][iou_key]}


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
    window's weights sum to 0 (e.g. an IoU where nothing was mined)."""
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


def last_quarter(values):
    """The last quarter of a run's records (at least one)."""
    return values[len(values) - max(1, len(values) // 4):]


def summarize(data):
    """Exact means of a ``read_mining_log`` table over the last quarter of
    the records and over the whole run: anchors per image (weighted by
    images), their decoded IoU (weighted by anchors; None without any
    anchor), and whether any anchor was ever mined."""
    tail = {key: last_quarter(values) for key, values in data.items()}
    return {'records': len(data['iter']), 'last_iter': int(data['iter'][-1]),
            'ever_mined': bool((data['anchors'] > 0).any()),
            'num_last_quarter': weighted_mean(tail['num'], tail['images']),
            'iou_last_quarter': weighted_mean(tail['iou'], tail['anchors']),
            'iou_whole_run': weighted_mean(data['iou'], data['anchors'])}
