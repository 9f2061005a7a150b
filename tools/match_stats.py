"""Anchor-matching statistics of a trained model (paper Fig. 2 and Fig. 4c).

    python tools/match_stats.py -c CONFIG -o weights=W.pdparams [--dataset val|train]
                                [--max-images N] [--score-thr 0.5] [--json F] [--plot F.png]

Runs the model over the dataset with the config's EvalReader (no training
augmentation, also for --dataset train) and reports: the share of correctly
predicted boxes regressed from anchors matched in the first step (before and
after NMS), the IoU distributions of first-step and compensated anchors, and
the share of high-quality anchors that standard matching leaves unmatched.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppdet_hambox.utils.logger import quiet_paddle  # noqa: E402
quiet_paddle()  # before anything imports paddle; HAMBOX_PADDLE_LOG=1 keeps its logging
from ppdet_hambox.analysis.match_stats import MatchStats  # noqa: E402
from ppdet_hambox.analysis.model_outputs import collect_match_stats  # noqa: E402
from ppdet_hambox.analysis.plotting import plot_match_stats  # noqa: E402
from ppdet_hambox.core.errors import ConfigError, run_tool  # noqa: E402
from ppdet_hambox.core.workspace import build_component, create  # noqa: E402
from ppdet_hambox.utils.cli import (base_parser, build_model, count_or_all, load_cfg, output_file,  # noqa: E402
                                    probability)
from ppdet_hambox.utils.json_io import write_json  # noqa: E402

DATASET_KEYS = {'val': 'EvalDataset', 'train': 'TrainDataset'}
HAMBOX_KEYS = ('K', 'T', 'ignore_iou')


def build_parser():
    parser = base_parser(__doc__.strip().splitlines()[0])
    parser.add_argument('--dataset', choices=sorted(DATASET_KEYS), default='val')
    parser.add_argument('--max-images', type=count_or_all, default=-1, help='only the first N images (-1: all)')
    parser.add_argument('--score-thr', type=probability, default=0.5,
                        help='score a box needs to count as predicted (default 0.5)')
    parser.add_argument('--correct-iou', type=probability, default=0.5,
                        help='IoU above which a predicted box is correct (default 0.5)')
    parser.add_argument('--hq-iou', type=probability, default=0.5,
                        help='IoU(decoded box, face) above which an anchor is high quality')
    parser.add_argument('--json', type=output_file, help='write the statistics as JSON here')
    parser.add_argument('--plot', type=output_file, help='write the figure here (.png)')
    return parser


def hambox_args(cfg):
    """K, T and ignore_iou of the config's HAMBoxAssigner section (defaults otherwise)."""
    section = cfg.get('HAMBoxAssigner') or {}
    return {k: section[k] for k in HAMBOX_KEYS if k in section}


def format_summary(result):
    cpbb = result['correct_boxes']
    hq = result['high_quality_anchors']
    faces = result['faces_matched']
    lines = [
        'dataset {} ({}): {} images, {} faces; CPBB = score >= {score_thr}, IoU > {correct_iou}'.format(
            result['dataset'], result['annotation'], result['images'], result['faces'],
            **result['definitions']),
        'correct boxes from first-step matched anchors: {:.1%} of {} before NMS, {:.1%} of {} after NMS'.format(
            cpbb['before_nms']['fraction_from_matched'], cpbb['before_nms']['total'],
            cpbb['after_nms']['fraction_from_matched'], cpbb['after_nms']['total']),
        'high-quality anchors (decoded IoU > {}) left unmatched by SMS: {:.1%} of {}'.format(
            result['definitions']['hq_iou'], hq['fraction_unmatched'], hq['total']),
        'faces matched to anchors {matched_to_anchor}, with a CPBB from a matched anchor '
        '{with_cpbb_from_matched} ({with_cpbb_from_matched_after_nms} after NMS), with any CPBB '
        '{with_cpbb} ({with_cpbb_after_nms} after NMS)'.format(**faces),
    ]
    for key, label in (('first_step', 'first-step'), ('compensated_dms', 'DMS-compensated')):
        anchor, decoded = result['matched_anchor_iou'][key], result['decoded_iou'][key]
        lines.append('{} anchors: {}, mean IoU(anchor, face) {:.3f}, mean IoU(decoded, face) {:.3f}'.format(
            label, anchor['count'], anchor['mean'], decoded['mean']))
    mined = result['decoded_iou']['compensated_hambox']
    lines.append('HAMBox-compensated anchors: {}, mean IoU(decoded, face) {:.3f}'.format(
        mined['count'], mined['mean']))
    return '\n'.join(lines)


def main(argv=None):
    args = build_parser().parse_args(argv)
    cfg = load_cfg(args)
    key = DATASET_KEYS[args.dataset]
    if not cfg.get(key):
        raise ConfigError('{}: --dataset {} needs a {} section'.format(cfg.get('__source__'), args.dataset, key))
    if not cfg.get('EvalReader'):
        raise ConfigError('{}: match statistics need an EvalReader section'.format(cfg.get('__source__')))
    model = build_model(cfg, allow_partial=args.allow_partial_weights)
    dataset = build_component(cfg[key], cfg, key)
    loader = create('EvalReader', cfg).build_loader(dataset)
    post = model.post_process
    stats = MatchStats(pos_iou=getattr(model.assigner, 'pos_iou', 0.35), correct_iou=args.correct_iou,
                       score_thr=args.score_thr, hq_iou=args.hq_iou)
    collect_match_stats(model, loader, stats, hambox_args(cfg), nms_iou=post.nms_threshold,
                        pre_nms_top_k=post.pre_nms_top_k, keep_top_k=post.keep_top_k,
                        clip_boxes=post.clip_boxes, max_images=args.max_images)
    result = dict(stats.summary(), dataset=args.dataset, annotation=getattr(dataset, 'annotation_file', key),
                  weights=cfg.get('weights'), nms_iou=post.nms_threshold)
    print(format_summary(result))
    if args.json:
        print('wrote', write_json(args.json, result))
    if args.plot:
        print('wrote', plot_match_stats(result, args.plot))
    return result


if __name__ == '__main__':
    sys.exit(run_tool(main))
