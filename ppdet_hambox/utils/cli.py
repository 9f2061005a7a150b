"""Shared command-line plumbing of the tools.

- ``ToolParser``: an ``argparse.ArgumentParser`` whose errors are one
  ``error:`` line and exit status 2 (no usage block).
- The argument types, the one place where the range of each kind of value is
  declared: ``positive_int`` (a count >= 1), ``nonneg_int`` (>= 0),
  ``count_or_all`` (>= 1, or -1 for all), ``probability`` (a finite number
  in [0, 1]), ``random_seed`` (0 to 2**32 - 1), ``positive_float``, ``port``
  (1-65535), ``existing_file``, ``existing_dir``, ``output_dir`` (a folder to
  write into: not a file), ``output_file`` (a file to write: not a folder).
- ``-c CONFIG -o key=value ... [--allow_partial_weights]`` (``base_parser``),
  building the model and loading ``weights``.
"""
import argparse
import logging
import math
import os
import re

from ppdet_hambox.core.workspace import create, load_config
from ppdet_hambox.utils.logger import setup_logger
from ppdet_hambox.utils.weights import MAX_UNFIT_FRACTION, load_weights

__all__ = ['ToolParser', 'base_parser', 'load_cfg', 'build_model', 'positive_int', 'nonneg_int', 'probability',
           'positive_float', 'port', 'random_seed', 'count_or_all', 'existing_file', 'existing_dir', 'output_dir',
           'output_file', 'PATH_TYPES', 'pixel_count']

logger = logging.getLogger(__name__)


class ToolParser(argparse.ArgumentParser):
    """Argument errors are one line on stderr, ``error: argument --x: ...``, and exit status 2."""

    def error(self, message):
        message = ' '.join(str(message).split())
        flag, sep, rest = message.partition(': ')
        if flag.startswith('argument ') and sep:  # 'argument --x: msg' -> '--x msg', as the tools word it
            message = '{}{}{}'.format(flag[len('argument '):], ': ' if rest.startswith('invalid') else ' ', rest)
        self.exit(2, 'error: {}\n'.format(message))


def _number(text, kind):
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError('{!r} is not {}'.format(
            text, 'an integer' if kind is int else 'a number')) from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError('{!r} is not a finite number'.format(text))
    return value


def positive_int(text):
    """A count of at least 1."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError('must be at least 1, got {}'.format(value))
    return value


def nonneg_int(text):
    """A count of at least 0."""
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError('must be at least 0, got {}'.format(value))
    return value


def count_or_all(text):
    """A count of at least 1, or -1 for all."""
    value = _number(text, int)
    if value < 1 and value != -1:
        raise argparse.ArgumentTypeError('must be at least 1 (or -1 for all), got {}'.format(value))
    return value


MAX_SEED = 2 ** 32 - 1  # numpy's legacy seeding takes no more


def random_seed(text):
    """A random seed, 0 to 2**32 - 1."""
    value = _number(text, int)
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError('must be a seed between 0 and {}, got {}'.format(MAX_SEED, value))
    return value


def probability(text):
    """A score or threshold: a finite number in [0, 1]."""
    value = _number(text, float)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError('must be between 0 and 1, got {}'.format(value))
    return value


def positive_float(text):
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError('must be greater than 0, got {}'.format(value))
    return value


def port(text):
    """A TCP port, 1-65535."""
    value = _number(text, int)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError('must be a port between 1 and 65535, got {}'.format(value))
    return value


def existing_file(text):
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError('{} is a folder, not a file'.format(text))
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError('{}: no such file'.format(text))
    return text


def existing_dir(text):
    if os.path.isfile(text):
        raise argparse.ArgumentTypeError('{} is a file, not a folder'.format(text))
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError('{}: no such folder'.format(text))
    return text


def _nearest_existing(path):
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def output_dir(text):
    """A folder to write into: new or a folder, not a file (nor below one)."""
    if os.path.isfile(text):
        raise argparse.ArgumentTypeError('{} is a file, not a folder'.format(text))
    if not os.path.isdir(_nearest_existing(text)):
        raise argparse.ArgumentTypeError('{}: a part of the path is a file'.format(text))
    return text


def output_file(text):
    """A file to write: not a folder, and not below a file."""
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError('{} is a folder, not a file'.format(text))
    parent = os.path.dirname(os.path.abspath(text))
    if not os.path.isdir(_nearest_existing(parent)):
        raise argparse.ArgumentTypeError('{}: a part of the path is a file'.format(text))
    return text


PATH_TYPES = (existing_file, existing_dir, output_dir, output_file)


def base_parser(description):
    parser = ToolParser(description=description)
    parser.add_argument('-c', '--config', required=True, help='YAML config file')
    parser.add_argument('-o', '--opt', nargs='*', default=[],
                        help='config overrides, e.g. -o weights=output/model_final.pdparams')
    parser.add_argument('--allow_partial_weights', action='store_true',
                        help='load weights even when more than {:.0f}%% of the model\'s tensors are missing '
                             'from the file or shape-mismatched (an error otherwise)'.format(
                                 100 * MAX_UNFIT_FRACTION))
    return parser


def pixel_count(text):
    """An argparse type: ``40M``, ``2.5M``, ``800K``, ``1G`` or a plain
    number (K/M/G = 1e3/1e6/1e9), positive."""
    match = re.fullmatch(r'\s*([0-9]*\.?[0-9]+)\s*([kKmMgG]?)\s*', str(text))
    if not match:
        raise argparse.ArgumentTypeError('{!r} is not a pixel count like 40M (units: K, M, G)'.format(text))
    value = int(float(match.group(1)) * 10 ** (3 * ' KMG'.index(match.group(2).upper() or ' ')))
    if value <= 0:
        raise argparse.ArgumentTypeError('must be positive, got {!r}'.format(text))
    return value


def load_cfg(args):
    setup_logger()
    return load_config(args.config, args.opt)


def build_model(cfg, weights=None, allow_partial=False):
    """The config's ``architecture`` in eval mode, with ``weights`` (default
    ``cfg.weights``) loaded; without weights the model keeps its initialisation
    and a warning says so. Weights of which more than ``MAX_UNFIT_FRACTION``
    of the model's tensors are missing or mismatched are a ``WeightsError``
    unless ``allow_partial``."""
    model = create(cfg['architecture'], cfg)
    weights = weights or cfg.get('weights')
    if weights:
        load_weights(model, weights, max_unfit=None if allow_partial else MAX_UNFIT_FRACTION)
    else:
        logger.warning('no weights given (-o weights=...): the model is untrained')
    model.eval()
    return model
