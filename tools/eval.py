"""Evaluate a model on the config's EvalDataset (WIDER FACE val by default).

    python tools/eval.py -c CONFIG -o weights=W.pdparams [--protocol vga|original|multiscale]
                         [--output_eval DIR] [--zip] [--allow_partial_weights]

Prints the result table once, then the result as JSON on the last line.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppdet_hambox.core.errors import run_tool  # noqa: E402
from ppdet_hambox.engine.evaluator import format_result, run_evaluation, zip_predictions  # noqa: E402
from ppdet_hambox.engine.test_time import PROTOCOLS  # noqa: E402
from ppdet_hambox.engine.tool_args import base_parser, build_model, load_cfg  # noqa: E402


def main(argv=None):
    parser = base_parser(__doc__.strip().splitlines()[0])
    parser.add_argument('--protocol', choices=PROTOCOLS,
                        help='test protocol (default: the config\'s eval_protocol, else vga)')
    parser.add_argument('--output_eval', help='prediction folder (default: output_eval, else '
                                              '<save_dir>/eval_<protocol>); must be new, empty or '
                                              'hold only an earlier evaluation\'s files')
    parser.add_argument('--zip', action='store_true',
                        help='also zip the prediction folder for the benchmark server')
    args = parser.parse_args(argv)
    cfg = load_cfg(args)
    model = build_model(cfg, allow_partial=args.allow_partial_weights)
    result = run_evaluation(model, cfg, protocol=args.protocol, output_dir=args.output_eval,
                            log_result=False)
    if args.zip:
        result['zip'] = zip_predictions(result['output_dir'], result['output_dir'].rstrip('/\\') + '.zip')
    print(format_result(result))
    if 'zip' in result:
        print('zip for the benchmark server: {}'.format(result['zip']))
    print(json.dumps(result, default=float))
    return result


if __name__ == '__main__':
    sys.exit(run_tool(main))
