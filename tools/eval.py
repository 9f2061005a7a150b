"""Evaluate a model on the config's EvalDataset (WIDER FACE val by default).

    python tools/eval.py -c CONFIG -o weights=W.pdparams [--protocol vga|original|multiscale|pyramidbox]
                         [--output_eval DIR] [--zip] [--allow_partial_weights]
    python tools/eval.py -c CONFIG --model_dir EXPORTED_DIR [--precision fp32|bf16|fp16] [--protocol ...]
        (the exported model through Paddle Inference, same dataset, protocol and metric)

Prints the result table once, then the result as JSON on the last line.

Under ``python -m paddle.distributed.launch --nproc_per_node N tools/eval.py ...``
the images are split across the N processes; rank 0 writes the prediction
folder (the same files as one process), scores it and prints the result.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppdet_hambox.utils.logger import quiet_paddle  # noqa: E402
quiet_paddle()  # before anything imports paddle; HAMBOX_PADDLE_LOG=1 keeps its logging
from ppdet_hambox.core.errors import run_tool  # noqa: E402
from ppdet_hambox.evaluation.evaluator import format_result, run_evaluation, zip_predictions  # noqa: E402
from ppdet_hambox.export.exported_model import PRECISIONS, ExportedPredictor  # noqa: E402
from ppdet_hambox.evaluation.protocols import PROTOCOLS  # noqa: E402
from ppdet_hambox.evaluation.sharding import Shard  # noqa: E402
from ppdet_hambox.utils.cli import base_parser, build_model, existing_dir, load_cfg, output_dir  # noqa: E402


def main(argv=None):
    parser = base_parser(__doc__.strip().splitlines()[0])
    parser.add_argument('--protocol', choices=PROTOCOLS,
                        help='test protocol (default: the config\'s eval_protocol, else vga)')
    parser.add_argument('--output_eval', type=output_dir, help='prediction folder (default: output_eval, else '
                                              '<save_dir>/eval_<protocol>); must be new, empty or '
                                              'hold only an earlier evaluation\'s files')
    parser.add_argument('--zip', action='store_true',
                        help='also zip the prediction folder for the benchmark server')
    parser.add_argument('--model_dir', type=existing_dir,
                        help='evaluate this exported model (tools/export.py) with Paddle '
                             'Inference instead of the config\'s weights in dygraph')
    parser.add_argument('--precision', default='fp32', choices=PRECISIONS,
                        help='with --model_dir: fp32, bf16 (CPUs with native bfloat16), fp16 (GPU)')
    args = parser.parse_args(argv)
    cfg = load_cfg(args)
    shard = Shard.current()
    if args.model_dir:
        model = None
        predictor = ExportedPredictor(args.model_dir, cfg, args.protocol, precision=args.precision)
    else:
        if args.precision != 'fp32':
            parser.error('--precision needs --model_dir (dygraph evaluation runs in fp32)')
        model, predictor = build_model(cfg, allow_partial=args.allow_partial_weights), None
    result = run_evaluation(model, cfg, protocol=args.protocol, output_dir=args.output_eval,
                            predictor=predictor, log_result=False)
    if args.model_dir:
        result.update({'model_dir': args.model_dir, 'precision': args.precision})
    if not shard.is_main:
        return result
    if args.zip:
        result['zip'] = zip_predictions(result['output_dir'], result['output_dir'].rstrip('/\\') + '.zip')
    print(format_result(result))
    if 'zip' in result:
        print('zip for the benchmark server: {}'.format(result['zip']))
    print(json.dumps(result, default=float))
    return result


if __name__ == '__main__':
    sys.exit(run_tool(main))
