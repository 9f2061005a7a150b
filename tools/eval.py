"""Evaluate a model on the config's EvalDataset (WIDER FACE val by default).

    python tools/eval.py -c CONFIG -o weights=W.pdparams [--protocol vga|original|multiscale]
                         [--output_eval DIR] [--zip]
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppdet_hambox.engine.evaluator import run_evaluation, zip_predictions  # noqa: E402
from ppdet_hambox.engine.test_time import PROTOCOLS  # noqa: E402
from ppdet_hambox.engine.tool_args import base_parser, build_model, load_cfg  # noqa: E402


def main(argv=None):
    parser = base_parser(__doc__.strip().splitlines()[0])
    parser.add_argument('--protocol', choices=PROTOCOLS,
                        help='test protocol (default: the config\'s eval_protocol, else vga)')
    parser.add_argument('--output_eval', help='prediction folder (default: output_eval, else '
                                              '<save_dir>/eval_<protocol>)')
    parser.add_argument('--zip', action='store_true',
                        help='also zip the prediction folder for the benchmark server')
    args = parser.parse_args(argv)
    cfg = load_cfg(args)
    model = build_model(cfg)
    result = run_evaluation(model, cfg, protocol=args.protocol, output_dir=args.output_eval)
    if args.zip:
        result['zip'] = zip_predictions(result['output_dir'], result['output_dir'].rstrip('/\\') + '.zip')
    print(format_result(result))
    print(json.dumps(result, default=float))
    return result


def format_result(result):
    lines = ['metric: {}, protocol: {}, predictions: {}'.format(
        result['metric'], result['protocol'], result['output_dir'])]
    if 'python_port' in result:
        lines.append('{:<12}{:>9}{:>9}{:>9}'.format('mode', 'easy', 'medium', 'hard'))
        for mode, res in (('official', result), ('python-port', result['python_port'])):
            lines.append('{:<12}{:>9.4f}{:>9.4f}{:>9.4f}'.format(mode, res['easy'], res['medium'], res['hard']))
    if 'coco' in result:
        lines.append('WIDER Challenge AP@[.5:.95] ({} faces): {:.4f}  AP50 {:.4f}  AP75 {:.4f}'.format(
            result['coco']['setting'], result['coco']['ap'], result['coco']['ap50'], result['coco']['ap75']))
    if 'discrete' in result:
        lines.append('FDDB TPR at {} false positives: discrete {:.4f}, continuous {:.4f} (boxes: {} x{:g})'.format(
            result['fp_budget'], result['discrete'], result['continuous'], result['conversion'],
            result['factor'] or 1.0))
    if 'ap' in result:
        lines.append('AP at IoU {}: {:.4f} ({} faces, {} detections)'.format(
            result['iou_threshold'], result['ap'], result['num_gt'], result['num_det']))
    if 'zip' in result:
        lines.append('zip for the benchmark server: {}'.format(result['zip']))
    return '\n'.join(lines)


if __name__ == '__main__':
    main()
