"""Ablation in the shape of the paper's Table 4 (and Table 1 rows) on the CPU demo.

    python tools/ablate.py [-c configs/demo/hambox_demo.yml] [--rows baseline,sms,...]
                           [--max-iters N] [--seed 42] [--output-dir output/ablation]
                           [--json F] [--md F] [-o key=value ...]

Every row trains the same config under the same seed and iteration budget,
with the row's anchor ratio, matching strategy and loss (see
``ppdet_hambox.jobs.ablation.ROWS``), then runs the config's evaluation.
Numbers on the demo dataset are not WIDER FACE numbers.
"""
import argparse
import logging
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from ppdet_hambox.utils.logger import quiet_paddle  # noqa: E402
quiet_paddle()  # before anything imports paddle; HAMBOX_PADDLE_LOG=1 keeps its logging
import ppdet_hambox.components  # noqa: E402,F401
from ppdet_hambox.jobs.ablation import ROWS, format_table, run_row  # noqa: E402
from ppdet_hambox.core.errors import run_tool  # noqa: E402
from ppdet_hambox.core.workspace import load_config, parse_overrides  # noqa: E402
from ppdet_hambox.jobs.demo import ensure_dataset  # noqa: E402
from ppdet_hambox.utils.cli import ToolParser, output_dir, output_file, positive_int, random_seed  # noqa: E402
from ppdet_hambox.utils.safe_write import write_json, write_text  # noqa: E402

DEFAULT_CONFIG = os.path.join(REPO_ROOT, 'configs', 'demo', 'hambox_demo.yml')


def parse_rows(text):
    rows = [r.strip() for r in text.split(',') if r.strip()]
    unknown = [r for r in rows if r not in ROWS]
    if unknown or not rows:
        raise argparse.ArgumentTypeError('unknown row(s) {}; choose from {}'.format(
            ', '.join(unknown) or '(none)', ','.join(ROWS)))
    return rows


def build_parser():
    parser = ToolParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('-c', '--config', default=DEFAULT_CONFIG)
    parser.add_argument('-o', '--opt', nargs='*', default=[], help='overrides for every row')
    parser.add_argument('--rows', type=parse_rows, default=list(ROWS),
                        help='comma-separated rows, run in this order, tabulated in the paper\'s '
                             '(default: {})'.format(','.join(ROWS)))
    parser.add_argument('--max-iters', type=positive_int,
                        help='training iterations per row (default: the config\'s max_iters)')
    parser.add_argument('--keep-schedule', action='store_true',
                        help='keep the LR milestones/warm-up as configured (default: scale them '
                             'to --max-iters)')
    parser.add_argument('--seed', type=random_seed, help='seed of every row (default: the config\'s)')
    parser.add_argument('--protocol', help='evaluation protocol (default: the config\'s eval_protocol)')
    parser.add_argument('--output-dir', default='output/ablation', type=output_dir)
    parser.add_argument('--json', type=output_file, help='write all rows as JSON (default <output-dir>/ablation.json)')
    parser.add_argument('--md', type=output_file, help='write the Markdown table (default <output-dir>/ablation.md)')
    parser.add_argument('--no-generate', action='store_true',
                        help='do not generate the demo dataset when TrainDataset.dataset_dir is missing')
    return parser


def ensure_demo_data(cfg):
    """Generate the demo dataset (as ``make demo`` does) where the config expects it, if absent."""
    dataset_dir = (cfg.get('TrainDataset') or {}).get('dataset_dir')
    if dataset_dir and not os.path.isdir(dataset_dir):
        ensure_dataset(dataset_dir, seed=0, num_train=240, num_val=60)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.max_iters is not None and args.max_iters < 1:
        parser.error('--max-iters must be >= 1')
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    overrides = parse_overrides(args.opt)
    cfg = load_config(args.config, overrides)
    max_iters = args.max_iters or cfg.get('max_iters')
    if not args.no_generate:
        ensure_demo_data(cfg)
    rows = []
    for name in args.rows:
        rows.append(run_row(args.config, name, max_iters, args.output_dir, args.seed, overrides,
                            scale_schedule=not args.keep_schedule, protocol=args.protocol))
    rows.sort(key=lambda row: list(ROWS).index(row['row']))
    note = ('config {}, {} iterations per row, seed {}; evaluated on the config\'s EvalDataset '
            '({} protocol). "paper" columns: WIDER FACE val AP from the paper, for reference only.'.format(
                args.config, max_iters, rows[0]['seed'], rows[0]['protocol']))
    print(note)
    print(format_table(rows))
    json_path = args.json or os.path.join(args.output_dir, 'ablation.json')
    md_path = args.md or os.path.join(args.output_dir, 'ablation.md')
    write_json(json_path, {'config': args.config, 'max_iters': max_iters, 'rows': rows})
    write_text(md_path, note + '\n\n' + format_table(rows, markdown=True) + '\n')
    print('wrote', json_path, 'and', md_path)
    return rows


if __name__ == '__main__':
    sys.exit(run_tool(main))
