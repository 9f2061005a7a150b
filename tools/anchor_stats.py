"""Anchor statistics of paper Fig. 1 / §3.1 on WIDER FACE annotations.

    python tools/anchor_stats.py --anno wider_face_train_bbx_gt.txt [--protocol original|train]
                                 [--ratios 0.43,0.68,1.0] [--json F] [--plot F.png]

For each anchor-scale ratio: the fraction of faces with at least one anchor
of IoU >= --iou, and the average number of such anchors per matched face, for
one square anchor per location (sides ratio x 16..512, strides 4..128) and for
3 octave scales x 3 aspect ratios per location.
"""
import argparse
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppdet_hambox.utils.logger import quiet_paddle  # noqa: E402
quiet_paddle()  # before anything imports paddle; HAMBOX_PADDLE_LOG=1 keeps its logging
import ppdet_hambox.components  # noqa: E402,F401  (registers the transforms the configs name)
from ppdet_hambox.analysis import anchor_stats  # noqa: E402
from ppdet_hambox.analysis.face_sets import original_faces  # noqa: E402
from ppdet_hambox.analysis.plotting import plot_anchor_stats  # noqa: E402
from ppdet_hambox.analysis.train_faces import DEFAULT_ASSUMED_SIZE, train_faces  # noqa: E402
from ppdet_hambox.core.errors import UserError, run_tool  # noqa: E402
from ppdet_hambox.core.workspace import load_config  # noqa: E402
from ppdet_hambox.utils.json_io import write_json  # noqa: E402
from ppdet_hambox.utils.cli import (ToolParser, count_or_all, existing_dir, existing_file,  # noqa: E402
                                    output_file, positive_int, probability, random_seed)

DEFAULT_RATIOS = sorted(set(np.round(np.arange(0.30, 1.2001, 0.05), 2).tolist()) | {0.43, 0.68})
PROTOCOLS = ('original', 'train')
DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                              'configs', 'datasets', 'widerface.yml')


def parse_ratios(text):
    try:
        ratios = [float(r) for r in text.split(',') if r.strip()]
        if not all(math.isfinite(r) for r in ratios):
            raise ValueError(text)
    except ValueError:
        raise argparse.ArgumentTypeError('expected comma-separated numbers, got {!r}'.format(text))
    if not ratios or any(r <= 0 for r in ratios):
        raise argparse.ArgumentTypeError('expected positive numbers, got {!r}'.format(text))
    return ratios


def parse_size(text):
    try:
        h, w = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError('expected HxW, e.g. 683x1024, got {!r}'.format(text)) from None
    if h <= 0 or w <= 0:
        raise argparse.ArgumentTypeError('expected a positive HxW, got {!r}'.format(text))
    return h, w


def build_parser():
    parser = ToolParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--anno', required=True, type=existing_file, help='wider_face_train_bbx_gt.txt (or val)')
    parser.add_argument('--protocol', choices=PROTOCOLS, default='original')
    parser.add_argument('--ratios', type=parse_ratios, default=DEFAULT_RATIOS,
                        help='comma-separated anchor-scale ratios (default 0.30..1.20 by 0.05, '
                             'plus 0.43 and 0.68)')
    parser.add_argument('--designs', default='single,multi',
                        help='comma-separated subset of single,multi')
    parser.add_argument('--iou', type=probability, default=0.35, help='match threshold')
    train = parser.add_argument_group('--protocol train (faces after the training transforms)')
    train.add_argument('--config', default=DEFAULT_CONFIG,
                       help='config whose TrainReader.sample_transforms are applied (default %(default)s)')
    train.add_argument('--epochs', type=positive_int, default=3, help='passes over the annotations (default 3)')
    train.add_argument('--seed', type=random_seed, help='sample seed (default: the TrainReader seed)')
    train.add_argument('--image-dir', type=existing_dir, help='WIDER_train/images: read true image sizes from the '
                                           'file headers (default: estimate them, see --assumed-size)')
    train.add_argument('--assumed-size', type=parse_size, default=DEFAULT_ASSUMED_SIZE,
                       help='HxW lower bound of the estimated image size, raised to the '
                            'annotation extent (default 683x1024)')
    train.add_argument('--max-images', type=count_or_all, default=-1, help='only the first N images (-1: all)')
    parser.add_argument('--json', type=output_file, help='write the result as JSON here')
    parser.add_argument('--plot', type=output_file, help='write the two-panel figure here (.png)')
    return parser


def collect_faces(args):
    if args.protocol == 'original':
        boxes, info = original_faces(args.anno)
        return boxes, info, None
    cfg = load_config(args.config)
    boxes, shapes, info = train_faces(cfg, args.anno, args.epochs, args.seed, args.image_dir,
                                      args.assumed_size, args.max_images, progress=True)
    return boxes, info, shapes


def format_table(result):
    designs = [d for d in anchor_stats.DESIGNS if d in result]
    header = '{:>6}'.format('ratio') + ''.join(
        ' | {:>16} {:>9}'.format(d + ': matched', 'anch/face') for d in designs)
    lines = [header, '-' * len(header)]
    for i, ratio in enumerate(r['ratio'] for r in result[designs[0]]):
        cells = ''.join(' | {:>15.2f}% {:>9.2f}'.format(100 * result[d][i]['matched'],
                                                       result[d][i]['anchors_per_matched_face'])
                        for d in designs)
        lines.append('{:>6.2f}{}'.format(ratio, cells))
    return '\n'.join(lines)


def main(argv=None):
    args = build_parser().parse_args(argv)
    designs = [d.strip() for d in args.designs.split(',') if d.strip()]
    unknown = sorted(set(designs) - set(anchor_stats.DESIGNS))
    if unknown or not designs:
        raise UserError('--designs: unknown {}; choose from {}'.format(
            unknown, ','.join(anchor_stats.DESIGNS)))
    start = time.time()
    try:
        boxes, info, image_shape = collect_faces(args)
    except FileNotFoundError as err:  # a missing --image-dir image
        raise UserError(str(err)) from None
    stats = anchor_stats.sweep(boxes, args.ratios, designs, iou_thr=args.iou,
                               image_shape=image_shape)
    result = {'protocol': args.protocol, 'annotation': args.anno, 'iou_thr': args.iou, 'face_set': info}
    result.update(stats)
    result['seconds'] = round(time.time() - start, 1)
    print('protocol: {}, {} faces, IoU >= {}, {:.1f} s'.format(
        args.protocol, len(boxes), args.iou, result['seconds']))
    print(format_table(result))
    if args.json:
        print('wrote', write_json(args.json, result))
    if args.plot:
        print('wrote', plot_anchor_stats(result, args.plot))
    return result


if __name__ == '__main__':
    sys.exit(run_tool(main))
