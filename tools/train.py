"""Train a detector from a config.

    python tools/train.py -c CONFIG [-o key=value ...] [-r CHECKPOINT_OR_DIR] [--eval]
                          [--use_vdl] [--vdl_log_dir DIR] [--amp] [--seed N] [--allow_partial_weights]
    python -m paddle.distributed.launch --nproc_per_node N tools/train.py -c CONFIG ... [--fleet]

Initial weights: ``-o pretrain_weights=W`` (or ``-o weights=W``, taken as the
same thing and logged); ``-r`` resumes a checkpoint instead (weights,
optimizer, schedule, iteration). ``weights`` set in a config file is the
evaluation/export weights and is not used for training (a log line says so).

Exit status: 0 done, 2 bad input (config, data, weights, checkpoint, --eval
set-up; in a distributed run also processes started with different configs,
flags, code or resume points), 3 non-finite loss, 4 a distributed peer lost.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppdet_hambox.utils.logger import quiet_paddle  # noqa: E402
quiet_paddle()  # before anything imports paddle; HAMBOX_PADDLE_LOG=1 keeps its logging
from ppdet_hambox.core.errors import ConfigError, run_tool  # noqa: E402
from ppdet_hambox.core.workspace import load_config, parse_overrides  # noqa: E402
from ppdet_hambox.utils.cli import base_parser, output_dir, random_seed  # noqa: E402
from ppdet_hambox.engine.trainer import NonFiniteLossError, Trainer  # noqa: E402
from ppdet_hambox.engine.peer_watchdog import (EXIT_LOST_PEER, is_communication_error,  # noqa: E402
                                               lost_peer_message)
from ppdet_hambox.utils.logger import get_logger  # noqa: E402

EXIT_NON_FINITE = 3
OVERRIDE = '-o override'

logger = get_logger('engine')


def parse_args(argv=None):
    parser = base_parser(__doc__.strip().splitlines()[0])
    parser.add_argument('-r', '--resume', help='checkpoint (iter_*.pdckpt) or the folder holding '
                                               'them (its newest) to continue from')
    parser.add_argument('--eval', action='store_true',
                        help='evaluate on EvalDataset at each snapshot and keep best_model.pdparams')
    parser.add_argument('--use_vdl', action='store_true', help='write scalars to VisualDL')
    parser.add_argument('--vdl_log_dir', type=output_dir, help='VisualDL folder (default <save_dir>/<config>/vdl)')
    parser.add_argument('--fleet', action='store_true',
                        help='use paddle.distributed.fleet (collective) for multi-process runs')
    parser.add_argument('--amp', action='store_true', help='mixed precision (CUDA GPUs only)')
    parser.add_argument('--seed', type=random_seed, help='random seed (overrides the config\'s seed)')
    return parser.parse_args(argv)


def flag_overrides(args):
    """Command-line flags as config keys, after the ``-o`` overrides."""
    overrides = parse_overrides(args.opt)
    if args.use_vdl:
        overrides['use_vdl'] = True
    if args.vdl_log_dir:
        overrides['vdl_log_dir'] = args.vdl_log_dir
    if args.amp:
        overrides['amp'] = True
    if args.seed is not None:
        overrides['seed'] = args.seed
    return overrides


def initial_weights(cfg, resume):
    """The weights file training starts from: ``pretrain_weights``, or
    ``weights`` given with ``-o`` (the PaddleDetection habit). Ambiguous or
    conflicting requests are a ConfigError; ``weights`` from a config file
    is left to evaluation and export."""
    origins = cfg.get('__origins__') or {}
    weights, pretrain = cfg.get('weights'), cfg.get('pretrain_weights')
    if weights and origins.get('weights') != OVERRIDE:
        logger.info('weights: %s (set in %s) is for evaluation and export; training starts from '
                    'pretrain_weights or -r', weights, origins.get('weights', cfg.get('__source__')))
        weights = None
    if weights and resume:
        raise ConfigError('-o weights={} and -r {}: -r resumes a checkpoint with its own weights; give one '
                          'of them (pretrain_weights is the key for initial weights)'.format(weights, resume))
    if weights and pretrain:
        raise ConfigError('-o weights={} and pretrain_weights={}: give one; pretrain_weights is the key for '
                          'the initial weights of training'.format(weights, pretrain))
    if resume:
        return None
    if weights:
        logger.info('-o weights=%s: used as the initial weights (the same as -o pretrain_weights=%s)',
                    weights, weights)
    return weights or pretrain


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, flag_overrides(args))
    trainer = Trainer(cfg, fleet=args.fleet)
    init = initial_weights(cfg, args.resume)
    if args.resume:
        trainer.resume(args.resume)
    elif init:
        trainer.load_weights(init, allow_partial=args.allow_partial_weights)
    try:
        trainer.train(validate=args.eval)
    except NonFiniteLossError as err:
        print('training stopped: {}'.format(err), file=sys.stderr)
        return EXIT_NON_FINITE
    except RuntimeError as err:  # a collective failed: a peer is gone
        if not (trainer.dist.distributed and is_communication_error(err)):
            raise
        reason = 'a collective failed ({})'.format(str(err).strip().splitlines()[-1])
        print('error: {}'.format(lost_peer_message(trainer.dist.rank, trainer.iteration, trainer.save_dir,
                                                   reason)), file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(EXIT_LOST_PEER)  # no interpreter teardown: gloo's threads may abort it after a lost peer
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
