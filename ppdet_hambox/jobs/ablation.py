"""Table 1 / Table 4 ablation rows trained and evaluated under one budget and seed.

Each row is a set of config overrides on a base config (the CPU demo by
default), the same keys the paper-scale configs in ``configs/hambox/`` set.
Every row trains from the same seed for the same number of iterations and is
evaluated with the config's evaluation (the official WIDER FACE protocol on
the config's EvalDataset).
"""
import copy
import math
import os

from ppdet_hambox.analysis.mining_log import (MiningLogError, last_quarter, logged_kinds, read_mining_log,
                                              read_statistics, summarize, weighted_mean)
from ppdet_hambox.core.workspace import load_config
from ppdet_hambox.jobs.train_eval import train_then_evaluate
from ppdet_hambox.utils.json_io import write_json

__all__ = ['ROWS', 'row_overrides', 'budget_overrides', 'run_row', 'format_table', 'PAPER']

# name -> (label, Table 4 flags (Baseline, SMS, OAM, RAL), ratio, assigner, use_ral)
ROWS = {
    'baseline': ('Baseline (ratio 1.00)', (1, 0, 0, 0), 1.0, 'SMSAssigner', False),
    'sms': ('+ SMS (0.68)', (0, 1, 0, 0), 0.68, 'SMSAssigner', False),
    'dms': ('+ DMS (0.68)', (0, 0, 0, 0), 0.68, 'DMSAssigner', False),
    'nams': ('+ NAMS (0.68)', (0, 0, 0, 0), 0.68, 'NAMSAssigner', False),
    'sms_oam': ('SMS + OAM', (0, 1, 1, 0), 0.68, 'HAMBoxAssigner', False),
    'sms_oam_ral': ('SMS + OAM + RAL', (0, 1, 1, 1), 0.68, 'HAMBoxAssigner', True),
}

# WIDER FACE val AP reported in the paper (Tables 1 and 4), for reference only.
PAPER = {
    'baseline': (0.943, 0.931, 0.894),
    'sms': (0.949, 0.945, 0.906),
    'dms': (0.954, 0.949, 0.902),
    'nams': (0.951, 0.948, 0.902),
    'sms_oam': (0.957, 0.951, 0.913),
    'sms_oam_ral': (0.962, 0.953, 0.916),
}

SETTINGS = ('easy', 'medium', 'hard')


def row_overrides(name):
    """Config overrides of one row (head extras DH/SSH/PA off, as in these rows of Table 4)."""
    if name not in ROWS:
        raise ValueError('unknown ablation row {!r}; rows: {}'.format(name, ', '.join(ROWS)))
    _, _, ratio, assigner, use_ral = ROWS[name]
    return {
        'AnchorGenerator': {'ratio': ratio},
        'HAMBox': {'assigner': assigner, 'pa_loss': None},
        'HAMBoxLoss': {'use_ral': use_ral},
        'HAMBoxHead': {'use_pa': False},
    }


def budget_overrides(cfg, max_iters, scale_schedule=True):
    """``max_iters`` and the run settings that depend on it. With ``scale_schedule``
    the LR milestones of ``cfg`` move in proportion to the budget; the warm-up
    keeps its length (it is about the first steps, not the schedule), capped
    at half the budget."""
    out = {'max_iters': int(max_iters), 'snapshot_iter': int(max_iters), 'keep_checkpoints': 1,
           'log_iter': max(1, min(int(cfg.get('log_iter') or 20), int(max_iters)))}
    schedulers = (cfg.get('LearningRate') or {}).get('schedulers')
    if scale_schedule and schedulers and cfg.get('max_iters'):
        factor = float(max_iters) / float(cfg['max_iters'])
        scaled = copy.deepcopy(list(schedulers))
        for item in scaled:
            for kind, args in item.items():
                if kind == 'PiecewiseDecay' and 'milestones' in args:
                    args['milestones'] = [max(1, int(round(m * factor))) for m in args['milestones']]
                elif kind == 'LinearWarmup' and 'steps' in args:
                    args['steps'] = max(1, min(int(args['steps']), int(max_iters) // 2))
        out['LearningRate'] = {'schedulers': scaled}
    return out


def _merge(base, extra):
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _ap(value):
    """An AP, or None when the setting has no face (NaN): JSON has no NaN."""
    value = float(value)
    return None if math.isnan(value) else value


def _cell(value, digits):
    return 'n/a' if value is None else '{:.{}f}'.format(value, digits)


def _mining_summary(log_path):
    """Per kind of mined anchor the log reports (HAMBox's compensated anchors;
    DMS / NAMS second-step anchors), exact means over the last quarter of the
    log records: anchors per image, their decoded IoU (None without any), and
    ignored anchors per image. None for a log without mining statistics."""
    try:
        summary = {kind: summarize(read_mining_log(log_path, kind)) for kind in logged_kinds(log_path)}
        ignored = read_statistics(log_path, ['num_ignored'])
    except MiningLogError:
        return None
    out = {'{}_{}'.format(kind, key): value for kind, numbers in summary.items()
           for key, value in numbers.items() if key in ('num_last_quarter', 'iou_last_quarter')}
    out['ignored_num_last_quarter'] = weighted_mean(last_quarter(ignored['mean']['num_ignored']),
                                                    last_quarter(ignored['count']['num_ignored']))
    return out


def run_row(config, name, max_iters, output_dir, seed=None, overrides=None, scale_schedule=True,
            protocol=None):
    """Train and evaluate one row; returns its result dict (also ``<row dir>/result.json``)."""
    row_dir = os.path.join(output_dir, name)
    base = load_config(config, overrides or {})
    extra = _merge(budget_overrides(base, max_iters, scale_schedule), row_overrides(name))
    extra['save_dir'] = row_dir
    if seed is not None:
        extra['seed'] = int(seed)
    cfg = load_config(config, _merge(overrides or {}, extra))
    run = train_then_evaluate(cfg, os.path.join(row_dir, 'eval'), protocol=protocol)
    result = run['result']
    label, flags, ratio, assigner, use_ral = ROWS[name]
    row = {
        'row': name, 'label': label, 'ratio': ratio, 'assigner': assigner, 'use_ral': use_ral,
        'flags': dict(zip(('baseline', 'sms', 'oam', 'ral'), map(bool, flags))),
        'easy': _ap(result['easy']), 'medium': _ap(result['medium']), 'hard': _ap(result['hard']),
        'protocol': result.get('protocol'), 'max_iters': int(max_iters), 'seed': cfg.get('seed'),
        'train_seconds': round(run['train_seconds'], 1), 'eval_seconds': round(run['eval_seconds'], 1),
        'weights': run['weights'],
        'mining': _mining_summary(os.path.join(run['trainer'].save_dir, 'train_log.jsonl')),
        'train_log': os.path.join(run['trainer'].save_dir, 'train_log.jsonl'),
        'paper_wider_val': dict(zip(SETTINGS, PAPER[name])),
    }
    write_json(os.path.join(row_dir, 'result.json'), row)
    return row


def format_table(rows, markdown=False):
    """Rows in the shape of Table 4 (plus the paper's WIDER FACE val AP for reference)."""
    header = ['row', 'Baseline', 'SMS', 'OAM', 'RAL', 'ratio', 'matching', 'Easy', 'Medium', 'Hard',
              'paper Easy', 'paper Medium', 'paper Hard']
    lines = []
    for row in rows:
        flags = ['x' if row['flags'][k] else '-' for k in ('baseline', 'sms', 'oam', 'ral')]
        paper = row['paper_wider_val']
        lines.append([row['label']] + flags + ['{:.2f}'.format(row['ratio']), row['assigner'].replace('Assigner', '')]
                     + [_cell(row[s], 4) for s in SETTINGS] + [_cell(paper[s], 3) for s in SETTINGS])
    if markdown:
        out = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
        out += ['| ' + ' | '.join(cells) + ' |' for cells in lines]
        return '\n'.join(out)
    widths = [max(len(str(c)) for c in col) for col in zip(header, *lines)]
    fmt = '  '.join('{:<%d}' % w for w in widths)
    return '\n'.join([fmt.format(*header)] + [fmt.format(*cells) for cells in lines])
