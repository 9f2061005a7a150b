"""Shared command-line plumbing of the evaluation, inference and export tools:
``-c CONFIG -o key=value ... [--allow_partial_weights]``, building the model
and loading ``weights``."""
import argparse
import logging
import re

from ppdet_hambox.core.workspace import create, load_config
from ppdet_hambox.utils.logger import setup_logger
from ppdet_hambox.utils.weights import MAX_UNFIT_FRACTION, load_weights

__all__ = ['base_parser', 'load_cfg', 'build_model', 'pixel_count']

logger = logging.getLogger(__name__)


def base_parser(description):
    parser = argparse.ArgumentParser(description=description)
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
