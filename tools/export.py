"""Export a model for Paddle Inference (model.json + model.pdiparams + infer_cfg.yml), optionally ONNX.

    python tools/export.py -c CONFIG -o weights=W.pdparams [--output_dir output_inference]
                           [--protocol vga|original] [--onnx] [--allow_partial_weights]
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppdet_hambox.utils.logger import quiet_paddle  # noqa: E402
quiet_paddle()  # before anything imports paddle; HAMBOX_PADDLE_LOG=1 keeps its logging
from ppdet_hambox.core.errors import run_tool  # noqa: E402
from ppdet_hambox.export.exporter import SINGLE_SCALE_PROTOCOLS, export_model  # noqa: E402
from ppdet_hambox.utils.cli import base_parser, build_model, load_cfg, output_dir  # noqa: E402


def main(argv=None):
    parser = base_parser(__doc__.strip().splitlines()[0])
    parser.add_argument('--output_dir', default='output_inference', type=output_dir,
                        help='parent folder; the model goes to <output_dir>/<config name>')
    parser.add_argument('--protocol', choices=SINGLE_SCALE_PROTOCOLS,
                        help='pre-processing written to infer_cfg.yml (default: the config\'s '
                             'eval_protocol if single-scale, else vga)')
    parser.add_argument('--onnx', action='store_true', help='also write model.onnx (needs paddle2onnx)')
    args = parser.parse_args(argv)
    cfg = load_cfg(args)
    name = os.path.splitext(os.path.basename(args.config))[0]
    model = build_model(cfg, allow_partial=args.allow_partial_weights)
    paths = export_model(model, cfg, os.path.join(args.output_dir, name),
                         protocol=args.protocol, onnx=args.onnx)
    print(json.dumps(paths))
    return paths


if __name__ == '__main__':
    sys.exit(run_tool(main))
