"""Shared command-line plumbing of the evaluation, inference and export tools:
``-c CONFIG -o key=value ...``, building the model and loading ``weights``."""
import argparse
import logging

from ppdet_hambox.core.workspace import create, load_config
from ppdet_hambox.utils.logger import setup_logger
from ppdet_hambox.utils.weights import load_weights

__all__ = ['base_parser', 'load_cfg', 'build_model']

logger = logging.getLogger(__name__)


def base_parser(description):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('-c', '--config', required=True, help='YAML config file')
    parser.add_argument('-o', '--opt', nargs='*', default=[],
                        help='config overrides, e.g. -o weights=output/model_final.pdparams')
    return parser


def load_cfg(args):
    setup_logger()
    return load_config(args.config, args.opt)


def build_model(cfg, weights=None):
    """The config's ``architecture`` in eval mode, with ``weights`` (default
    ``cfg.weights``) loaded; without weights the model keeps its initialisation
    and a warning says so."""
    model = create(cfg['architecture'], cfg)
    weights = weights or cfg.get('weights')
    if weights:
        load_weights(model, weights)
    else:
        logger.warning('no weights given (-o weights=...): the model is untrained')
    model.eval()
    return model
