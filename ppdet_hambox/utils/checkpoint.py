"""Training checkpoints: one file per snapshot, written atomically.

A checkpoint ``<save_dir>/iter_0005000.pdckpt`` is a ``paddle.save`` dict::

    format, version, iteration,
    model        (state dict of the raw, non-EMA weights)
    optimizer    (its state, keyed by structured parameter names)
    lr_scheduler (state dict)
    ema          (ModelEMA state dict, when EMA is on)
    rng          (Paddle, NumPy and Python random states, pickled + base64)
    extra        (trainer bookkeeping: best metric, global batch, ...)

Because it holds a ``model`` key, ``utils.weights.load_weights`` (and so
``-o weights=...``) also reads a checkpoint. Writes go to a temporary file in
the same folder, are fsync'ed and then renamed over the final name, so a
crash never leaves a partial file under a checkpoint name. A training run
only removes its own older checkpoints (``prune_checkpoints(..., own=)``) and
does not start in a folder holding another run (``previous_run_files``).
"""
import base64
import glob
import os
import pickle
import random
import re

import numpy as np
import paddle

from ppdet_hambox.core.errors import UserError
from ppdet_hambox.utils.safe_write import atomic_file

CHECKPOINT_FORMAT = 'ppdet_hambox.checkpoint'
CHECKPOINT_VERSION = 1
CHECKPOINT_SUFFIX = '.pdckpt'
CHECKPOINT_PATTERN = re.compile(r'^iter_(\d+)' + re.escape(CHECKPOINT_SUFFIX) + '$')


class CheckpointError(UserError, ValueError):
    """A checkpoint that is missing, unreadable or of the wrong kind."""


def atomic_save(obj, path):
    """``paddle.save(obj, path)`` that either fully happens or leaves ``path``
    as it was (``safe_write.atomic_file``: a temporary file beside it, fsync,
    rename); a failed write is a ``WriteError`` naming ``path``."""
    with atomic_file(path) as tmp:
        paddle.save(obj, tmp)
    return path


def capture_rng_state():
    """Paddle, NumPy and Python random states as a string ``paddle.save`` keeps."""
    state = {'paddle': paddle.get_rng_state(), 'numpy': np.random.get_state(),
             'python': random.getstate()}
    return base64.b64encode(pickle.dumps(state)).decode('ascii')


def restore_rng_state(text):
    state = pickle.loads(base64.b64decode(text.encode('ascii')))
    paddle.set_rng_state(state['paddle'])
    np.random.set_state(state['numpy'])
    random.setstate(state['python'])


def checkpoint_path(save_dir, iteration):
    return os.path.join(save_dir, 'iter_{:07d}{}'.format(iteration, CHECKPOINT_SUFFIX))


def list_checkpoints(save_dir):
    """``[(iteration, path), ...]`` of the checkpoints in ``save_dir``, oldest first."""
    found = []
    for path in glob.glob(os.path.join(save_dir, '*' + CHECKPOINT_SUFFIX)):
        match = CHECKPOINT_PATTERN.match(os.path.basename(path))
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(save_dir):
    found = list_checkpoints(save_dir)
    return found[-1][1] if found else None


def prune_checkpoints(save_dir, keep, own=None):
    """Delete all but the ``keep`` newest checkpoints (``keep`` <= 0 keeps all).
    With ``own`` (paths, oldest first), only those are candidates, in that
    order: a run removes its own older checkpoints, never another run's, and
    never the one it has just written."""
    if keep <= 0:
        return []
    if own is None:
        candidates = [path for _, path in list_checkpoints(save_dir)]
    else:
        candidates = [path for path in own if os.path.isfile(path)]
    removed = candidates[:-keep]
    for path in removed:
        os.remove(path)
    return removed


# What a finished or interrupted training run leaves in its save_dir.
RUN_FILES = ('model_final.pdparams', 'best_model.pdparams', 'best_model.json', 'train_log.jsonl')


def previous_run_files(save_dir):
    """Names of the files in ``save_dir`` another training run left there:
    its checkpoints, final or best weights and log (sorted; [] if none)."""
    names = [os.path.basename(path) for _, path in list_checkpoints(save_dir)]
    names += [name for name in RUN_FILES if os.path.exists(os.path.join(save_dir, name))]
    return sorted(names)


def _param_owner(key, params_by_name):
    """The parameter whose name prefixes an optimizer key (the longest match)."""
    owner = None
    for name in params_by_name:
        if key.startswith(name + '_') and (owner is None or len(name) > len(owner)):
            owner = name
    return owner


def portable_optimizer_state(optimizer, model):
    """The optimizer's state keyed by the model's structured parameter names.

    Paddle keys optimizer accumulators by generated parameter names
    (``conv2d_12.w_0_velocity_0``), which depend on how many layers the
    process built before; structured names (``backbone.conv1.weight``) do not.
    """
    by_param = {p.name: name for name, p in model.named_parameters()}
    state = optimizer.state_dict()
    portable = {'accumulators': {}, 'other': {}}
    for key, value in state.items():
        owner = _param_owner(key, by_param) if key not in ('LR_Scheduler', 'master_weights') else None
        if owner is None:
            portable['other'][key] = value
        else:
            portable['accumulators'].setdefault(by_param[owner], {})[key[len(owner):]] = value
    masters = state.get('master_weights') or {}
    portable['other'].pop('master_weights', None)
    if masters:
        portable['master_weights'] = {by_param.get(k, k): v for k, v in masters.items()}
    return portable


def load_portable_optimizer_state(optimizer, model, portable):
    """Inverse of ``portable_optimizer_state`` for this model's parameters."""
    params = dict(model.named_parameters())
    unknown = sorted(set(portable['accumulators']) - set(params))
    if unknown:
        raise CheckpointError('the checkpoint\'s optimizer state names parameters the model does not '
                              'have: {}'.format(', '.join(unknown[:5])))
    state = dict(portable['other'])
    for name, suffixes in portable['accumulators'].items():
        for suffix, value in suffixes.items():
            state[params[name].name + suffix] = value
    if portable.get('master_weights'):
        state['master_weights'] = {params[k].name if k in params else k: v
                                   for k, v in portable['master_weights'].items()}
    optimizer.set_state_dict(state)


def save_checkpoint(save_dir, iteration, model, optimizer, lr_scheduler, ema=None, extra=None):
    """Write the full training state at ``iteration``; returns the path."""
    state = {
        'format': CHECKPOINT_FORMAT,
        'version': CHECKPOINT_VERSION,
        'iteration': int(iteration),
        'model': model.state_dict(),
        'optimizer': portable_optimizer_state(optimizer, model),
        'lr_scheduler': lr_scheduler.state_dict(),
        'rng': capture_rng_state(),
        'extra': dict(extra or {}),
    }
    if ema is not None:
        state['ema'] = ema.state_dict()
    return atomic_save(state, checkpoint_path(save_dir, iteration))


def resolve_checkpoint(path):
    """A checkpoint file, or the newest checkpoint of a folder."""
    if os.path.isdir(path):
        latest = latest_checkpoint(path)
        if latest is None:
            raise CheckpointError('no checkpoint (iter_*{}) in folder {}'.format(CHECKPOINT_SUFFIX, path))
        return latest
    if not os.path.isfile(path):
        raise CheckpointError('checkpoint not found: {}'.format(path))
    return path


def read_checkpoint(path):
    """Read and check a checkpoint written by ``save_checkpoint``."""
    path = resolve_checkpoint(path)
    try:
        state = paddle.load(path)
    except Exception as err:  # paddle raises several types for a bad file
        raise CheckpointError('cannot read checkpoint {}: {}'.format(path, err)) from None
    if not isinstance(state, dict) or state.get('format') != CHECKPOINT_FORMAT:
        raise CheckpointError('{} is not a ppdet_hambox training checkpoint (a weights-only '
                              '.pdparams file? use -o weights=... or pretrain_weights)'.format(path))
    if state.get('version') != CHECKPOINT_VERSION:
        raise CheckpointError('{} has checkpoint version {}, this code reads {}'.format(
            path, state.get('version'), CHECKPOINT_VERSION))
    state['path'] = path
    return state


def check_checkpoint_fits(state, model):
    """A ``CheckpointError`` unless the checkpoint's model tensors are exactly
    ``model``'s (names and shapes): resuming is exact or refused."""
    saved, own = state['model'], model.state_dict()
    differ = ['{} (not in the model)'.format(k) for k in saved if k not in own]
    differ += ['{} (not in the checkpoint)'.format(k) for k in own if k not in saved]
    differ += ['{} (checkpoint {}, model {})'.format(k, list(saved[k].shape), list(v.shape))
               for k, v in own.items() if k in saved and list(saved[k].shape) != list(v.shape)]
    if differ:
        raise CheckpointError('{} was written by another model ({} tensor(s) differ, e.g. {}); resume with the '
                              'config that wrote it'.format(state['path'], len(differ), '; '.join(differ[:3])))


def save_weights(layer_or_state, path):
    """Weights only (``model_final.pdparams``, ``best_model.pdparams``), atomically."""
    state = layer_or_state if isinstance(layer_or_state, dict) else layer_or_state.state_dict()
    return atomic_save(state, path)
