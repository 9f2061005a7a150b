"""int8 ONNX model by ONNX Runtime static quantization (QDQ), calibrated on the config's train set.

    python tools/quantize.py -c CONFIG --model_dir EXPORTED_DIR [--num_images 32]
                             [--ops Conv] [--method minmax|entropy|percentile] [--output F.onnx]

EXPORTED_DIR must hold model.onnx (tools/export.py --onnx). An experiment, not
a shipped precision: docs/deployment.md records its AP and speed.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppdet_hambox.utils.logger import quiet_paddle  # noqa: E402
quiet_paddle()  # before anything imports paddle; HAMBOX_PADDLE_LOG=1 keeps its logging
from ppdet_hambox.core.errors import run_tool  # noqa: E402
from ppdet_hambox.export.quantize import quantize_onnx  # noqa: E402
from ppdet_hambox.utils.cli import base_parser, existing_dir, load_cfg, output_file, positive_int  # noqa: E402


def main(argv=None):
    parser = base_parser(__doc__.strip().splitlines()[0])
    parser.add_argument('--model_dir', required=True, type=existing_dir, help='an export with model.onnx')
    parser.add_argument('--output', type=output_file, help='default: <model_dir>/model_int8.onnx')
    parser.add_argument('--num_images', type=positive_int, default=32, help='calibration images from TrainDataset')
    parser.add_argument('--ops', nargs='+', default=['Conv'], help='ONNX op types to quantize')
    parser.add_argument('--method', default='minmax', help='calibration: minmax, entropy or percentile')
    parser.add_argument('--no_per_channel', action='store_true', help='one weight scale per tensor')
    args = parser.parse_args(argv)
    cfg = load_cfg(args)
    path = quantize_onnx(args.model_dir, cfg, args.output, args.num_images, tuple(args.ops),
                         per_channel=not args.no_per_channel, method=args.method)
    print(json.dumps({'int8_onnx': path}))
    return path


if __name__ == '__main__':
    sys.exit(run_tool(main))
