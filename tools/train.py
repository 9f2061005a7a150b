"""Train a detector from a config.

    python tools/train.py -c CONFIG [-o key=value ...] [-r CHECKPOINT_OR_DIR] [--eval]
                          [--use_vdl] [--vdl_log_dir DIR] [--amp] [--seed N]
    python -m paddle.distributed.launch --nproc_per_node N tools/train.py -c CONFIG ... [--fleet]

Exit status: 0 done, 2 bad config / weights / checkpoint, 3 non-finite loss.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppdet_hambox.core.errors import ConfigError  # noqa: E402
from ppdet_hambox.core.workspace import load_config, parse_overrides  # noqa: E402
from ppdet_hambox.engine.tool_args import base_parser  # noqa: E402
from ppdet_hambox.engine.trainer import NonFiniteLossError, Trainer  # noqa: E402
from ppdet_hambox.utils.checkpoint import CheckpointError  # noqa: E402
from ppdet_hambox.utils.weights import WeightsError  # noqa: E402

EXIT_BAD_INPUT = 2
EXIT_NON_FINITE = 3


def parse_args(argv=None):
    parser = base_parser(__doc__.strip().splitlines()[0])
    parser.add_argument('-r', '--resume', help='checkpoint (iter_*.pdckpt) or the folder holding '
                                               'them (its newest) to continue from')
    parser.add_argument('--eval', action='store_true',
                        help='evaluate on EvalDataset at each snapshot and keep best_model.pdparams')
    parser.add_argument('--use_vdl', action='store_true', help='write scalars to VisualDL')
    parser.add_argument('--vdl_log_dir', help='VisualDL folder (default <save_dir>/<config>/vdl)')
    parser.add_argument('--fleet', action='store_true',
                        help='use paddle.distributed.fleet (collective) for multi-process runs')
    parser.add_argument('--amp', action='store_true', help='mixed precision (CUDA GPUs only)')
    parser.add_argument('--seed', type=int, help='random seed (overrides the config\'s seed)')
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


def main(argv=None):
    args = parse_args(argv)
    try:
        cfg = load_config(args.config, flag_overrides(args))
        trainer = Trainer(cfg, mode='train', fleet=args.fleet)
        if args.resume:
            trainer.resume(args.resume)
        elif cfg.get('pretrain_weights'):
            trainer.load_weights(cfg['pretrain_weights'])
        trainer.train(validate=args.eval)
    except (ConfigError, CheckpointError, WeightsError) as err:
        print('error: {}'.format(err), file=sys.stderr)
        return EXIT_BAD_INPUT
    except NonFiniteLossError as err:
        print('training stopped: {}'.format(err), file=sys.stderr)
        return EXIT_NON_FINITE
    return 0


if __name__ == '__main__':
    sys.exit(main())
