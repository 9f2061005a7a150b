"""The main job on the embedded demo: generate the demo dataset, train the CPU
demo config (HAMBox + RAL), evaluate it with the official WIDER FACE protocol,
export it and run the Paddle Inference predictor on a few images.

    python tools/demo.py [-c configs/demo/hambox_demo.yml] [--output_dir output/demo]
                         [--photos DIR] [-o key=value ...]

Leaves drawings and report.json in --output_dir.
"""
import json
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from ppdet_hambox.utils.logger import quiet_paddle  # noqa: E402
quiet_paddle()  # before anything imports paddle; HAMBOX_PADDLE_LOG=1 keeps its logging
from ppdet_hambox.core.errors import run_tool  # noqa: E402
from ppdet_hambox.core.workspace import parse_overrides  # noqa: E402
from ppdet_hambox.jobs.demo import run_demo  # noqa: E402
from ppdet_hambox.utils.logger import setup_logger  # noqa: E402
from ppdet_hambox.utils.cli import ToolParser, existing_dir, output_dir, random_seed  # noqa: E402


def default_photos_dir():
    """Real photographs to draw on: $HAMBOX_SHARED_DATA/samples, else ../shared/data/samples."""
    shared = os.environ.get('HAMBOX_SHARED_DATA') or os.path.join(REPO_ROOT, '..', 'shared', 'data')
    return os.path.join(shared, 'samples')


def main(argv=None):
    parser = ToolParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('-c', '--config', default=os.path.join(REPO_ROOT, 'configs', 'demo', 'hambox_demo.yml'))
    parser.add_argument('-o', '--opt', nargs='*', default=[], help='config overrides key=value')
    parser.add_argument('--output_dir', default='output/demo', type=output_dir)
    parser.add_argument('--photos', type=existing_dir,
                        help='folder of real photographs to draw detections on (default: the shared samples '
                             'folder, skipped if absent)')
    parser.add_argument('--seed', type=random_seed, default=0, help='demo dataset seed')
    args = parser.parse_args(argv)
    setup_logger(None)
    report = run_demo(args.config, args.output_dir, parse_overrides(args.opt), seed=args.seed,
                      photos_dir=args.photos or default_photos_dir())
    print('demo val set, official WIDER FACE AP, {eval_protocol} test protocol: easy {easy:.4f}  '
          'medium {medium:.4f}  hard {hard:.4f}  (trained {train_seconds:.0f} s)'.format(**report))
    print(json.dumps({k: report[k] for k in ('easy', 'medium', 'hard', 'train_seconds')}))
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
