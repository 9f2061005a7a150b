"""Detect faces on images with a model in dygraph and save the drawings.

    python tools/infer.py -c CONFIG -o weights=W.pdparams --infer_img F | --infer_dir D
                          [--output_dir output] [--draw_threshold 0.5] [--save_json]
                          [--protocol vga|original|multiscale|pyramidbox] [--max_pixels 40M] [--allow_partial_weights]

--infer_dir searches sub-folders; drawings keep the relative layout under
--output_dir. An unreadable image, or one whose header declares more than
--max_pixels pixels, is skipped with a warning; the exit status is then 1
(2 for bad arguments, 0 when every image was processed).
"""
import os
import sys

from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppdet_hambox.utils.logger import quiet_paddle  # noqa: E402
quiet_paddle()  # before anything imports paddle; HAMBOX_PADDLE_LOG=1 keeps its logging
from ppdet_hambox.core.errors import run_tool  # noqa: E402
from ppdet_hambox.data import MAX_PIXELS  # noqa: E402
from ppdet_hambox.evaluation.evaluator import protocol_name  # noqa: E402
from ppdet_hambox.evaluation.inference import check_outputs, infer_images, list_images  # noqa: E402
from ppdet_hambox.evaluation.predictor import Predictor  # noqa: E402
from ppdet_hambox.evaluation.protocols import PROTOCOLS  # noqa: E402
from ppdet_hambox.utils.cli import (base_parser, build_model, existing_dir, existing_file,  # noqa: E402
                                    load_cfg, output_dir, pixel_count, probability)


def main(argv=None):
    parser = base_parser(__doc__.strip().splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--infer_img', type=existing_file, help='one image file')
    source.add_argument('--infer_dir', type=existing_dir, help='a folder of images (sub-folders included)')
    parser.add_argument('--output_dir', default='output', type=output_dir,
                        help='where the drawn images (and bbox.json) go')
    parser.add_argument('--draw_threshold', type=probability,
                        help='lowest score drawn and saved (default: the config\'s draw_threshold, else 0.5)')
    parser.add_argument('--save_json', action='store_true', help='also write <output_dir>/bbox.json')
    parser.add_argument('--protocol', choices=PROTOCOLS,
                        help='test protocol (default: the config\'s eval_protocol, else vga)')
    parser.add_argument('--max_pixels', type=pixel_count, default=MAX_PIXELS,
                        help='skip images whose header declares more pixels, width x height (K/M/G = '
                             '1e3/1e6/1e9; default 40M, as the service)')
    args = parser.parse_args(argv)
    # --max_pixels is checked from each header first; Pillow's own bomb limit would refuse earlier.
    Image.MAX_IMAGE_PIXELS = None
    cfg = load_cfg(args)
    threshold = args.draw_threshold if args.draw_threshold is not None else cfg.get('draw_threshold', 0.5)
    reader = 'TestReader' if cfg.get('TestReader') else 'EvalReader'
    images = list_images(args.infer_img, args.infer_dir)
    check_outputs(images, args.output_dir, args.save_json)
    protocol = protocol_name(cfg, args.protocol)
    predictor = Predictor(build_model(cfg, allow_partial=args.allow_partial_weights), cfg, protocol,
                          reader=reader)
    _, skipped = infer_images(predictor, images, args.output_dir, threshold, args.save_json, args.max_pixels)
    return 1 if skipped else 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
