"""Per-level statistics of the neck outputs (P2..P7) and head logits that a
config produces on its first training batch, at initialisation or with
weights, and whether the first --iters training steps stay finite.

    python tools/pyramid_stats.py -c CONFIG [-o key=value ...] [--iters 50]
                                  [--weights W.pdparams] [--json F]

With ImageNet weights (the paper configs' ResNet.pretrained) this shows what
the shared head sees from each level; from scratch add
-o ResNet.pretrained=null ResNet.norm_type=bn ResNet.freeze_at=-1.
Training steps write to save_dir (default output/pyramid_stats).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppdet_hambox.utils.logger import quiet_paddle  # noqa: E402
quiet_paddle()  # before anything imports paddle; HAMBOX_PADDLE_LOG=1 keeps its logging
from ppdet_hambox.core.errors import UserError, run_tool  # noqa: E402
from ppdet_hambox.core.workspace import load_config, parse_overrides  # noqa: E402
from ppdet_hambox.analysis.pyramid_stats import format_levels, measure  # noqa: E402
from ppdet_hambox.utils.json_io import write_json  # noqa: E402
from ppdet_hambox.utils.logger import setup_logger  # noqa: E402
from ppdet_hambox.utils.cli import ToolParser, existing_file, nonneg_int, output_file  # noqa: E402


def main(argv=None):
    parser = ToolParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('-c', '--config', required=True)
    parser.add_argument('-o', '--opt', nargs='*', default=[], help='config overrides key=value')
    parser.add_argument('--iters', type=nonneg_int, default=50, help='training steps to run (0: statistics only)')
    parser.add_argument('--weights', type=existing_file, help='weights to load first (default: the initialisation)')
    parser.add_argument('--json', type=output_file, help='write the statistics and the per-step losses here')
    args = parser.parse_args(argv)
    if args.iters < 0:
        raise UserError('--iters must be >= 0, got {}'.format(args.iters))
    setup_logger(None)
    overrides = dict({'save_dir': 'output/pyramid_stats'}, **parse_overrides(args.opt))
    overrides.update({'max_iters': max(args.iters, 1), 'log_iter': 1,
                      'snapshot_iter': max(args.iters, 1) + 1})
    cfg = load_config(args.config, overrides)
    result = measure(cfg, args.iters, args.weights)
    print('batch {}'.format('x'.join(str(v) for v in result['batch_shape'])))
    print(format_levels(result['init'], 'at the start:'))
    if args.iters:
        losses = [r['loss'] for r in result['steps']]
        print('{} steps: {}; loss first {:.4g}, max {:.4g}, last {:.4g}'.format(
            args.iters, 'finite' if result['finite'] else 'NOT finite ({})'.format(result['failure']),
            losses[0] if losses else float('nan'), max(losses) if losses else float('nan'),
            losses[-1] if losses else float('nan')))
        if result['after']:
            print(format_levels(result['after'], 'after {} steps (same batch):'.format(args.iters)))
    if args.json:
        print('wrote', write_json(args.json, result))
    return 0 if result['finite'] or not args.iters else 1


if __name__ == '__main__':
    sys.exit(run_tool(main))
