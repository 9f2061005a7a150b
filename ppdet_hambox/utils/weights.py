"""Loading parameter files into layers, with a summary of what fitted.

One place for the three users: pretrained backbones, ``weights=`` for
evaluation/export, and fine-tuning from a checkpoint.
"""
import logging
import os
import warnings

import paddle

from ppdet_hambox.core.errors import UserError

logger = logging.getLogger(__name__)

PARAM_SUFFIXES = ('.pdparams', '')
# Largest share of the model's tensors that may be missing from a file or
# shape-mismatched before loading it is an error (unless partial loading is allowed).
MAX_UNFIT_FRACTION = 0.1


class WeightsError(UserError, ValueError):
    """A weights file that is missing, unreadable or fits nothing."""


def resolve_weights_path(path):
    """``path`` or ``path + '.pdparams'``, whichever exists; a clear error otherwise."""
    for suffix in PARAM_SUFFIXES:
        candidate = path + suffix if suffix and not path.endswith(suffix) else path
        if os.path.isfile(candidate):
            return candidate
    if os.path.isdir(path):
        raise WeightsError('weights {} is a folder; give its .pdparams file (e.g. {})'.format(
            path, os.path.join(path, 'model_final.pdparams')))
    raise WeightsError('weights file not found: {} (give a local .pdparams path; '
                       'nothing is downloaded)'.format(path))


def read_state_dict(path):
    """Read a ``.pdparams`` file into a dict of tensors."""
    path = resolve_weights_path(path)
    try:
        state = paddle.load(path)
    except Exception as err:  # paddle raises several types for a bad file
        raise WeightsError('cannot read weights file {}: {}'.format(path, err)) from None
    if not isinstance(state, dict):
        raise WeightsError('weights file {} does not hold a state dict'.format(path))
    if 'model' in state and isinstance(state['model'], dict):
        state = state['model']
    return state


def _unfit_message(layer, path, summary, total, max_unfit):
    mismatched = summary['mismatched']
    mismatched_keys = {m.split(':', 1)[0] for m in mismatched}
    absent = [k for k in summary['missing'] if k not in mismatched_keys]
    return ('{} does not fit {}: {} of its {} tensors would not be loaded ({} missing from the file, '
            '{} shape-mismatched; the limit is {:.0%}), e.g. {}. Check that the config matches the '
            'weights, or allow partial loading with --allow_partial_weights'.format(
                path, type(layer).__name__, len(summary['missing']), total, len(absent), len(mismatched),
                max_unfit, '; '.join(mismatched[:2] + absent[:2])))


def load_weights(layer, path, prefix='', strict=False, max_unfit=None):
    """Load ``path`` into ``layer``; returns ``{loaded, missing, unexpected, mismatched}``.

    ``prefix`` is stripped from the file's keys first (e.g. ``'backbone.'``).
    Shape mismatches are never loaded. ``strict`` turns any missing,
    unexpected or mismatched key into an error; with ``strict=False`` a file
    of which no key fits is still an error. ``max_unfit`` (a fraction, e.g.
    ``MAX_UNFIT_FRACTION``; None: no limit) makes it an error when more than
    that share of the layer's tensors is missing from the file or mismatched.
    Paddle's per-tensor "Skip loading" warnings are replaced by one summary line.
    """
    state = read_state_dict(path)
    if prefix:
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    own = layer.state_dict()
    fitting, mismatched = {}, []
    for key, value in state.items():
        if key not in own:
            continue
        if list(value.shape) != list(own[key].shape):
            mismatched.append('{}: file {} vs model {}'.format(key, list(value.shape), list(own[key].shape)))
        else:
            fitting[key] = value
    summary = {
        'loaded': sorted(fitting),
        'missing': sorted(k for k in own if k not in fitting),
        'unexpected': sorted(k for k in state if k not in own),
        'mismatched': mismatched,
    }
    if not fitting:
        reason = ('every shared key has another shape, e.g. {}'.format('; '.join(mismatched[:3])) if mismatched
                  else 'no key is shared ({} keys in the file, e.g. {}; the model has e.g. {})'.format(
                      len(state), ', '.join(sorted(state)[:3]), ', '.join(sorted(own)[:3])))
        raise WeightsError('no parameter of {} fits {}: {}'.format(type(layer).__name__, path, reason))
    if strict and (summary['missing'] or summary['unexpected'] or mismatched):
        raise WeightsError('{} does not fit {} exactly: {} missing, {} unexpected, {} mismatched ({})'.format(
            path, type(layer).__name__, len(summary['missing']), len(summary['unexpected']),
            len(mismatched), '; '.join((summary['missing'] + summary['unexpected'] + mismatched)[:5])))
    if max_unfit is not None and own and len(summary['missing']) > max_unfit * len(own):
        raise WeightsError(_unfit_message(layer, path, summary, len(own), max_unfit))
    with warnings.catch_warnings():  # one "Skip loading for <key>" per unloaded tensor: summarised below
        warnings.filterwarnings('ignore', message='Skip loading for')
        layer.set_state_dict(fitting)
    log = logger.warning if summary['missing'] else logger.info
    log('loaded %s: %d tensors loaded, %d missing, %d unexpected, %d shape-mismatched%s',
        path, len(fitting), len(summary['missing']), len(summary['unexpected']), len(mismatched),
        ' (not loaded, e.g. {})'.format(', '.join(summary['missing'][:3])) if summary['missing'] else '')
    return summary
