"""Plot the anchor-mining statistics of training runs (paper Fig. 3).

    python tools/plot_mining.py --log output/hambox/train_log.jsonl [--log output/dms/train_log.jsonl]
                                [--label HAMBox --label DMS] [--smooth 5] --out mining.png [--json F]

Reads from each trainer log the mined anchors per image and the mean IoU of
their decoded boxes with their faces: HAMBox's compensated anchors
(``num_compensated``, ``compensated_iou``), or for a DMS / NAMS run, whose
log reports second-step anchors instead, those (``num_second_step``,
``second_step_iou``). Means over records are weighted by the counts the log
gives (images, anchors), so they are exact; the IoU is plotted only where
there were such anchors (gaps elsewhere).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppdet_hambox.utils.logger import quiet_paddle  # noqa: E402
quiet_paddle()  # before anything imports paddle; HAMBOX_PADDLE_LOG=1 keeps its logging
from ppdet_hambox.analysis.mining_log import (logged_kinds, read_mining_log, summarize,  # noqa: E402
                                              weighted_smooth)
from ppdet_hambox.core.errors import run_tool  # noqa: E402
from ppdet_hambox.analysis.plotting import plot_mining  # noqa: E402
from ppdet_hambox.utils.cli import ToolParser, output_file, positive_int  # noqa: E402
from ppdet_hambox.utils.json_io import write_json  # noqa: E402


def build_parser():
    parser = ToolParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--log', action='append', required=True,
                        help='a train_log.jsonl (repeat for several runs)')
    parser.add_argument('--label', action='append', default=[],
                        help='legend label per --log, in order (default: the log\'s folder name)')
    parser.add_argument('--smooth', type=positive_int, default=1,
                        help='moving average over this many log records (default 1: none)')
    parser.add_argument('--out', required=True, type=output_file, help='output figure (.png)')
    parser.add_argument('--json', type=output_file, help='also write the (smoothed) curves as JSON')
    return parser


def format_summary(label, summary):
    def number(value, digits):
        return 'n/a' if value is None else '{:.{}f}'.format(value, digits)
    kind = summary['kind'].replace('_', '-')
    note = '' if summary['ever_mined'] else '  (no {} anchor reported)'.format(kind)
    return ('{}: {} records to iter {}; last quarter: {} {} anchors per image, decoded IoU {}; '
            'whole run: decoded IoU {}{}'.format(
                label, summary['records'], summary['last_iter'], number(summary['num_last_quarter'], 3),
                kind, number(summary['iou_last_quarter'], 3), number(summary['iou_whole_run'], 3), note))


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.label and len(args.label) != len(args.log):
        parser.error('{} --label for {} --log; give one per log or none'.format(
            len(args.label), len(args.log)))
    labels = args.label or [os.path.basename(os.path.dirname(os.path.abspath(p))) for p in args.log]
    runs, report = [], {}
    for label, path in zip(labels, args.log):
        kind = 'second_step' if 'second_step' in logged_kinds(path) else 'compensated'
        data = read_mining_log(path, kind)
        report[label] = dict(summarize(data), kind=kind)
        print(format_summary(label, report[label]))
        curves = {'iter': data['iter'], 'num': weighted_smooth(data['num'], data['images'], args.smooth),
                  'iou': weighted_smooth(data['iou'], data['anchors'], args.smooth)}
        runs.append((label if kind == 'compensated' else label + ' (second step)', curves))
    print('wrote', plot_mining(runs, args.out))
    if args.json:
        curves = {label: {k: [None if v != v else v for v in values.tolist()] for k, values in data.items()}
                  for label, data in runs}
        write_json(args.json, {'summary': report, 'curves': curves}, indent=None)
        print('wrote', args.json)
    return report


if __name__ == '__main__':
    sys.exit(run_tool(main))
