"""Augmented training samples per second per data worker (JSON on the last line).

    python tools/benchmark_data.py [-c configs/datasets/widerface.yml]
                                   [--data-dir ../shared/data] [--num-samples 200] [--seed 0]

Runs the config's TrainReader.sample_transforms in one process on the photos
below DATA_DIR/samples (with their WIDER FACE faces where a *_bbx_gt*.txt
lists them), or on generated images when no data dir is given or it has none.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppdet_hambox.data.benchmark import run  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('-c', '--config', default='configs/datasets/widerface.yml')
    parser.add_argument('--data-dir', help='folder with samples/ (the shared data folder) or with images')
    parser.add_argument('--num-samples', type=int, default=200)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    if args.num_samples < 1:
        parser.error('--num-samples must be at least 1')
    print(json.dumps(run(args.config, args.data_dir, args.num_samples, args.seed)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
