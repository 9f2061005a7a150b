"""Score predictions already written, with one benchmark's metric (no model).

    python tools/eval_metric.py widerface --pred DIR --gt GT_DIR [--mode official|python-port|both]
                                          [--plot pr.png] [--curves curves.json]
    python tools/eval_metric.py coco --pred DIR --gt GT_DIR [--setting easy|medium|hard]
    python tools/eval_metric.py fddb --pred FILE_OR_DIR --folds DIR (--sizes F | --images DIR)
                                     [--ellipses] [--stretch F | --box-to-ellipse F] [--fp-budget N] [--plot roc.png]
    python tools/eval_metric.py boxap --gt faces.txt --det dets.txt [--iou 0.5] [--plot pr.png]

Prints the numbers, then the result as JSON on the last line. Bad input:
``error: ...`` on stderr and exit status 2; warnings as ``warning: ...`` lines.
"""
import contextlib
import json
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppdet_hambox.core.errors import run_tool  # noqa: E402
from ppdet_hambox.metrics import box_ap, coco_map, fddb, widerface  # noqa: E402
from ppdet_hambox.utils.cli import (ToolParser, existing_dir, output_file, positive_float,  # noqa: E402
                                    positive_int, probability)
from ppdet_hambox.utils.safe_write import write_json  # noqa: E402

INPUT_ERRORS = (OSError, ValueError, KeyError)


def _print_warning(message, *args, **kwargs):
    print('warning: {}'.format(message), file=sys.stderr)


@contextlib.contextmanager
def cli_warnings():
    """Warnings as plain ``warning: ...`` lines on stderr."""
    with warnings.catch_warnings():
        warnings.showwarning = _print_warning
        yield


def _error(exc, prefix=''):
    print('error: {}{}'.format(prefix, exc), file=sys.stderr)
    return 2


def run_widerface(args):
    from ppdet_hambox.analysis.plotting import plot_widerface_pr
    modes = widerface.MODES if args.mode == 'both' else (args.mode,)
    results, failed = {}, False
    with cli_warnings():
        try:
            gt = widerface.load_ground_truth(args.gt)
            preds = widerface.load_predictions(args.pred, gt)
        except INPUT_ERRORS as exc:
            return _error(exc)
        for mode in modes:  # one mode failing (python-port on a missing file) keeps the other's numbers
            try:
                results[mode] = widerface.evaluate(preds, gt, mode)
            except INPUT_ERRORS as exc:
                _error(exc, mode + ' mode: ' if len(modes) > 1 else '')
                failed = True
    if not results:
        return 2
    if args.plot:
        plot_widerface_pr(results, args.plot)
    if args.curves:
        write_json(args.curves, widerface.curves_to_json(results), indent=None)
    print(widerface.format_table(results))
    aps = {m: {s: r[s] for s in widerface.SETTINGS} for m, r in results.items()}
    print(json.dumps(aps if args.mode == 'both' else aps[args.mode]))
    return 2 if failed else 0


def run_coco(args):
    try:
        with cli_warnings():
            res = coco_map.evaluate(args.pred, args.gt, args.setting)
    except INPUT_ERRORS as exc:
        return _error(exc)
    print('WIDER FACE val, {} faces counted ({} setting), {} ignored, {} detections'.format(
        res['num_faces'], res['setting'], res['num_ignored'], res['num_det']))
    print('AP@[.50:.95] {:.4f}  AP50 {:.4f}  AP75 {:.4f}'.format(res['ap'], res['ap50'], res['ap75']))
    print(json.dumps({k: res[k] for k in ('ap', 'ap50', 'ap75', 'setting')}))
    return 0


def run_fddb(args):
    from ppdet_hambox.analysis.plotting import plot_fddb_roc
    conversion, factor = 'none', 1.0
    if args.box_to_ellipse is not None:
        conversion, factor = 'box-to-ellipse', args.box_to_ellipse
    elif args.stretch is not None:
        conversion, factor = 'stretch', args.stretch
    try:
        with cli_warnings():
            images = fddb.read_folds(args.folds)
            sizes = fddb.load_image_sizes(args.sizes, args.images, [im.path for im in images])
            dets = fddb.read_detections(args.pred, images, args.ellipses)
            result = fddb.evaluate(images, dets, sizes, args.ellipses, conversion, factor, args.fp_budget)
    except INPUT_ERRORS as exc:
        return _error(exc)
    if args.plot:
        plot_fddb_roc(result, args.plot)
    print('{} images, {} faces, boxes: {}{}'.format(
        len(images), result['num_faces'], result['conversion'],
        '' if result['factor'] is None else ' x{:g}'.format(result['factor'])))
    print('TPR at {} FP: discrete {:.4f}, continuous {:.4f} (curve reaches {:g} FP)'.format(
        result['fp_budget'], result['discrete'], result['continuous'], result['max_fp']))
    print(json.dumps({k: result[k] for k in ('discrete', 'continuous', 'fp_budget', 'num_faces', 'max_fp',
                                             'conversion', 'factor')}))
    return 0


def run_boxap(args):
    from ppdet_hambox.analysis.plotting import plot_box_ap_pr
    try:
        with cli_warnings():
            result = box_ap.evaluate(box_ap.read_ground_truth(args.gt), box_ap.read_detections(args.det), args.iou)
    except (OSError, ValueError) as exc:
        return _error(exc)
    if args.plot:
        plot_box_ap_pr(result, args.plot)
    print('faces {} (not ignored), detections {}, TP {}, FP {}: AP@{:g} = {:.4f}'.format(
        result['num_gt'], result['num_det'], result['tp'], result['fp'], args.iou, result['ap']))
    print(json.dumps({'ap': result['ap'], 'iou': args.iou, 'num_gt': result['num_gt'],
                      'num_det': result['num_det']}))
    return 0


def build_parser():
    parser = ToolParser(description=__doc__.strip().splitlines()[0])
    sub = parser.add_subparsers(dest='benchmark', required=True, metavar='BENCHMARK', parser_class=ToolParser)

    wider = sub.add_parser('widerface', help='WIDER FACE val AP (easy / medium / hard)')
    wider.add_argument('--pred', required=True, help='prediction folder: <event>/<image name>.txt')
    wider.add_argument('--gt', required=True, type=existing_dir, help='folder with wider_face_val.mat and wider_*_val.mat')
    wider.add_argument('--mode', default='official', choices=widerface.MODES + ('both',),
                       help='official = MATLAB eval_tools (papers); python-port = the common Python port')
    wider.add_argument('--plot', type=output_file, help='write the PR curves to this image file')
    wider.add_argument('--curves', type=output_file, help='write the PR curve points to this JSON file')
    wider.set_defaults(run=run_widerface)

    coco = sub.add_parser('coco', help='COCO-style AP@[.5:.95] on WIDER FACE val (WIDER Challenge)')
    coco.add_argument('--pred', required=True, help='prediction folder: <event>/<image name>.txt')
    coco.add_argument('--gt', required=True, type=existing_dir, help='folder with wider_face_val.mat and wider_*_val.mat')
    coco.add_argument('--setting', default='hard', choices=widerface.SETTINGS,
                      help='faces counted; the others are ignored')
    coco.set_defaults(run=run_coco)

    roc = sub.add_parser('fddb', help='FDDB discrete and continuous ROC')
    roc.add_argument('--pred', required=True, help='detection file, or folder of *.txt detection files')
    roc.add_argument('--folds', required=True, type=existing_dir, help='folder of FDDB-fold-NN-ellipseList.txt')
    size = roc.add_mutually_exclusive_group(required=True)
    size.add_argument('--sizes', help='image sizes: JSON {path: [w, h]} or "path w h" lines')
    size.add_argument('--images', type=existing_dir, help='folder of the FDDB images (<path>.jpg), to read their sizes')
    roc.add_argument('--ellipses', action='store_true', help='detections are ellipses, not rectangles')
    conv = roc.add_mutually_exclusive_group()
    conv.add_argument('--box-to-ellipse', type=positive_float, metavar='F', help='score boxes as upright ellipses, '
                      'height stretched by F upward')
    conv.add_argument('--stretch', type=positive_float, metavar='F', help='stretch box heights by F upward')
    roc.add_argument('--fp-budget', type=positive_int, default=fddb.FP_BUDGET, help='report the TPR at this many FP')
    roc.add_argument('--plot', type=output_file, help='write the ROC plot to this image file')
    roc.set_defaults(run=run_fddb)

    ap = sub.add_parser('boxap', help='VOC AP for plain box lists (AFW, PASCAL Face)')
    ap.add_argument('--gt', required=True, help='lines "image_id x1 y1 x2 y2 [ignore]"')
    ap.add_argument('--det', required=True, help='lines "image_id score x1 y1 x2 y2"')
    ap.add_argument('--iou', type=probability, default=0.5)
    ap.add_argument('--plot', type=output_file, help='write the PR curve to this image file')
    ap.set_defaults(run=run_boxap)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == '__main__':
    sys.exit(run_tool(main))
