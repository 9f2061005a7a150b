"""WIDER-shaped stress run: the real training step on the most crowded images.

    python tools/benchmark_train.py -c CONFIG --anno wider_face_train_bbx_gt.txt
        [--image-dir WIDER_train/images] [--crowded N] [--steps S] [--json F] [-o key=value ...]

Takes the N annotated images with the most faces (synthetic pixels of the
estimated size without --image-dir), runs them through the config's
TrainReader and training step (forward, assignment, loss, backward,
optimizer update): one untimed warm-up step, then S timed steps. Prints and
writes (--json) max_faces_in_batch, faces_per_image (after the pipeline),
peak_rss_gb, peak_device_gb (on a GPU), step_ms per stage and steps. Run it
with the real batch size on the training GPU before a long run: the warm-up
batch holds the most crowded images, so the peaks are the worst case.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppdet_hambox.utils.logger import quiet_paddle  # noqa: E402
quiet_paddle()  # before anything imports paddle; HAMBOX_PADDLE_LOG=1 keeps its logging
import ppdet_hambox.components  # noqa: E402,F401  (registers the transforms the configs name)
from ppdet_hambox.analysis.train_faces import DEFAULT_ASSUMED_SIZE  # noqa: E402
from ppdet_hambox.core.errors import run_tool  # noqa: E402
from ppdet_hambox.core.workspace import load_config, parse_overrides  # noqa: E402
from ppdet_hambox.analysis.train_benchmark import run_benchmark  # noqa: E402
from ppdet_hambox.utils.json_io import write_json  # noqa: E402
from ppdet_hambox.utils.cli import ToolParser, existing_dir, existing_file, output_file, positive_int  # noqa: E402


def build_parser():
    parser = ToolParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('-c', '--config', required=True, help='YAML config file')
    parser.add_argument('--anno', required=True, type=existing_file, help='wider_face_train_bbx_gt.txt')
    parser.add_argument('--image-dir', type=existing_dir,
                        help='WIDER_train/images (real pixels); synthetic pixels without it')
    parser.add_argument('--crowded', type=positive_int, default=8, help='the N images with the most faces')
    parser.add_argument('--steps', type=positive_int, default=3, help='timed steps after one warm-up step')
    parser.add_argument('--json', type=output_file, help='write the result here')
    parser.add_argument('-o', '--opt', nargs='*', default=[], help='config overrides, e.g. TrainReader.batch_size=2')
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    cfg = load_config(args.config, parse_overrides(args.opt))
    result = run_benchmark(cfg, args.anno, args.image_dir, args.crowded, args.steps, DEFAULT_ASSUMED_SIZE,
                           log=lambda line: print(line, flush=True))
    if args.json:
        write_json(args.json, result)
    print(json.dumps(result))
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
