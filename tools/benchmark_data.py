"""Augmented training samples per second per data worker (JSON on the last line).

    python tools/benchmark_data.py [-c configs/datasets/widerface.yml]
                                   [--data-dir DIR] [--num-samples 200] [--seed 0]

Runs the config's TrainReader.sample_transforms in one process on the photos
below DATA_DIR/samples (or DATA_DIR itself), with their WIDER FACE faces where
a *_bbx_gt*.txt lists them; without --data-dir, on generated images. A
--data-dir that does not exist or holds no image is an error (exit 2).
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppdet_hambox.utils.logger import quiet_paddle  # noqa: E402
quiet_paddle()  # before anything imports paddle; HAMBOX_PADDLE_LOG=1 keeps its logging
from ppdet_hambox.core.errors import UserError, run_tool  # noqa: E402
from ppdet_hambox.data import IMAGE_EXTENSIONS  # noqa: E402
from ppdet_hambox.data.benchmark import find_photos, run  # noqa: E402
from ppdet_hambox.utils.cli import ToolParser, existing_dir, positive_int, random_seed  # noqa: E402


def check_data_dir(data_dir):
    if not os.path.isdir(data_dir):
        raise UserError('--data-dir {}: no such folder (leave --data-dir out to use generated images)'.format(
            data_dir))
    if not find_photos(data_dir):
        raise UserError('--data-dir {}: no image ({}) in it or its samples/ folder (leave --data-dir out to '
                        'use generated images)'.format(data_dir, ', '.join(IMAGE_EXTENSIONS)))


def main(argv=None):
    parser = ToolParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('-c', '--config', default='configs/datasets/widerface.yml')
    parser.add_argument('--data-dir', type=existing_dir,
                        help='folder with samples/ (the shared data folder) or with images; '
                             'default: generated images')
    parser.add_argument('--num-samples', type=positive_int, default=200)
    parser.add_argument('--seed', type=random_seed, default=0)
    args = parser.parse_args(argv)
    if args.num_samples < 1:
        parser.error('--num-samples must be at least 1')
    if args.data_dir:
        check_data_dir(args.data_dir)
    print(json.dumps(run(args.config, args.data_dir, args.num_samples, args.seed)))
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
