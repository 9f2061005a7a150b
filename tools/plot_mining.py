"""Plot the anchor-mining statistics of training runs (paper Fig. 3).

    python tools/plot_mining.py --log output/hambox/train_log.jsonl [--log output/dms/train_log.jsonl]
                                [--label HAMBox --label DMS] [--smooth 5] --out mining.png [--json F]

Reads ``num_com`` (compensated anchors per image) and ``com_iou`` (mean IoU of
their decoded boxes with their faces) from each trainer log. ``com_iou`` is
averaged weighted by ``num_com`` (smoothing and summary), and plotted only
where there were compensated anchors (gaps elsewhere).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppdet_hambox.analysis.mining_log import (read_mining_log, smooth, weighted_mean,  # noqa: E402
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


def summarize(data):
    """Means over the last quarter of the run (``com_iou`` weighted by
    ``num_com``, None when nothing was compensated there) and whether
    anything was ever compensated; ``data`` is the unsmoothed log."""
    n = len(data['iter'])
    tail = slice(n - max(1, n // 4), n)
    return {'records': n, 'last_iter': int(data['iter'][-1]),
            'ever_compensated': bool((data['num_com'] > 0).any()),
            'num_com_last_quarter': float(data['num_com'][tail].mean()),
            'com_iou_last_quarter': weighted_mean(data['com_iou'][tail], data['num_com'][tail]),
            'com_iou_weighted_mean': weighted_mean(data['com_iou'], data['num_com'])}


def format_summary(label, summary):
    def iou(value):
        return 'n/a' if value is None else '{:.3f}'.format(value)
    note = '' if summary['ever_compensated'] else '  (no compensated anchor reported)'
    return ('{}: {} records to iter {}; last quarter: num_com {:.3f} per image, com_iou {} (weighted by '
            'compensated anchors); whole run: com_iou {}{}'.format(
                label, summary['records'], summary['last_iter'], summary['num_com_last_quarter'],
                iou(summary['com_iou_last_quarter']), iou(summary['com_iou_weighted_mean']), note))


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.label and len(args.label) != len(args.log):
        parser.error('{} --label for {} --log; give one per log or none'.format(
            len(args.label), len(args.log)))
    labels = args.label or [os.path.basename(os.path.dirname(os.path.abspath(p))) for p in args.log]
    runs, report = [], {}
    for label, path in zip(labels, args.log):
        data = read_mining_log(path)
        report[label] = summarize(data)
        print(format_summary(label, report[label]))
        curves = {'iter': data['iter'], 'num_com': smooth(data['num_com'], args.smooth),
                  'com_iou': weighted_smooth(data['com_iou'], data['num_com'], args.smooth)}
        runs.append((label, curves))
    print('wrote', plot_mining(runs, args.out))
    if args.json:
        curves = {label: {k: [None if v != v else v for v in values.tolist()] for k, values in data.items()}
                  for label, data in runs}
        write_json(args.json, {'summary': report, 'curves': curves}, indent=None)
        print('wrote', args.json)
    return report


if __name__ == '__main__':
    sys.exit(run_tool(main))
