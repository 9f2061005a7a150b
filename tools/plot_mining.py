"""Plot the anchor-mining statistics of training runs (paper Fig. 3).

    python tools/plot_mining.py --log output/hambox/train_log.jsonl [--log output/dms/train_log.jsonl]
                                [--label HAMBox --label DMS] [--smooth 5] --out mining.png [--json F]

Reads ``num_com`` (compensated anchors per image) and ``com_iou`` (mean IoU of
their decoded boxes with their faces) from each trainer log.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppdet_hambox.analysis.mining_log import MiningLogError, read_mining_log, smooth  # noqa: E402
from ppdet_hambox.analysis.plotting import plot_mining  # noqa: E402


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--log', action='append', required=True,
                        help='a train_log.jsonl (repeat for several runs)')
    parser.add_argument('--label', action='append', default=[],
                        help='legend label per --log, in order (default: the log\'s folder name)')
    parser.add_argument('--smooth', type=int, default=1,
                        help='moving average over this many log records (default 1: none)')
    parser.add_argument('--out', required=True, help='output figure (.png)')
    parser.add_argument('--json', help='also write the (smoothed) curves as JSON')
    return parser


def summarize(data):
    """Mean over the last quarter of the run and whether anything was ever compensated."""
    n = len(data['iter'])
    tail = slice(n - max(1, n // 4), n)
    return {'records': n, 'last_iter': int(data['iter'][-1]),
            'ever_compensated': bool((data['num_com'] > 0).any()),
            'num_com_last_quarter': float(data['num_com'][tail].mean()),
            'com_iou_last_quarter': float(data['com_iou'][tail].mean())}


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.label and len(args.label) != len(args.log):
        parser.error('{} --label for {} --log; give one per log or none'.format(
            len(args.label), len(args.log)))
    labels = args.label or [os.path.basename(os.path.dirname(os.path.abspath(p))) for p in args.log]
    runs = []
    for label, path in zip(labels, args.log):
        try:
            data = read_mining_log(path)
        except MiningLogError as err:
            parser.exit(2, 'error: {}\n'.format(err))
        data['num_com'] = smooth(data['num_com'], args.smooth)
        data['com_iou'] = smooth(data['com_iou'], args.smooth)
        runs.append((label, data))
    report = {}
    for label, data in runs:
        report[label] = summarize(data)
        note = '' if report[label]['ever_compensated'] else '  (no compensated anchor reported)'
        print('{}: {records} records to iter {last_iter}; last quarter: num_com {num_com_last_quarter:.3f}'
              ' per image, com_iou {com_iou_last_quarter:.3f}{note}'.format(label, note=note, **report[label]))
    print('wrote', plot_mining(runs, args.out))
    if args.json:
        curves = {label: {k: v.tolist() for k, v in data.items()} for label, data in runs}
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump({'summary': report, 'curves': curves}, f)
        print('wrote', args.json)
    return report


if __name__ == '__main__':
    main()
