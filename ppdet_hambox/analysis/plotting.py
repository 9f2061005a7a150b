"""Matplotlib figures of the analysis and metric tools (files only, no display):
the metrics compute, this module draws their curves."""
import os

import matplotlib
import numpy as np

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

from ppdet_hambox.metrics.widerface import SETTINGS  # noqa: E402
from ppdet_hambox.utils.safe_write import save_figure  # noqa: E402

DESIGN_LABELS = {'single': 'single square anchor', 'multi': '3 scales x 3 ratios'}
PAPER_BAND = (0.43, 0.7)
PAPER_RATIO = 0.68


def _save(fig, path):
    fig.tight_layout()
    try:
        save_figure(fig, path, dpi=120)
    finally:
        plt.close(fig)
    return path


def plot_anchor_stats(result, path):
    """Paper Fig. 1: (a) anchors per matched face, (b) fraction of faces matched, vs ratio."""
    fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(11, 4.2))
    for design, rows in result.items():
        if design not in DESIGN_LABELS or not rows:
            continue
        ratios = [r['ratio'] for r in rows]
        style = '-o' if design == 'single' else '--s'
        ax_a.plot(ratios, [r['anchors_per_matched_face'] for r in rows], style, ms=3,
                  label=DESIGN_LABELS[design])
        ax_b.plot(ratios, [100.0 * r['matched'] for r in rows], style, ms=3,
                  label=DESIGN_LABELS[design])
    for ax in (ax_a, ax_b):
        ax.axvspan(*PAPER_BAND, color='0.9', zorder=0, label='[0.43, 0.70]')
        ax.axvline(PAPER_RATIO, color='0.5', lw=0.8, ls=':', label='ratio 0.68')
        ax.set_xlabel('anchor scale ratio')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax_a.set_yscale('log')
    ax_a.set_ylabel('anchors matched per matched face (IoU >= thr)')
    ax_a.set_title('(a) average number of anchors matched to each face')
    ax_b.set_ylabel('faces matching at least one anchor (%)')
    ax_b.set_title('(b) proportion of faces that can match an anchor')
    fig.suptitle(anchor_stats_title(result), fontsize=10)
    return _save(fig, path)


def anchor_stats_title(result):
    """The faces the figure counts: the annotation file it read and the protocol."""
    source = os.path.basename(str(result['annotation'])) if result.get('annotation') else 'WIDER FACE annotations'
    faces = (result.get('face_set') or {}).get('faces')
    return '{}{}, protocol: {}'.format(source, ' ({} faces)'.format(faces) if faces is not None else '',
                                      result.get('protocol', '?'))


def plot_mining(runs, path):
    """Paper Fig. 3: mined anchors per image and their mean decoded IoU vs iteration.

    runs: list of ``(label, {'iter', 'num', 'iou'})`` (HAMBox's compensated
    anchors, or a DMS / NAMS run's second-step anchors). Panel (b) shows
    ``iou`` only where ``num > 0`` (and ``iou`` is not NaN): a window without
    such anchors has no IoU, so it is a gap, not 0.
    """
    fig, (ax_n, ax_q) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, data in runs:
        line, = ax_n.plot(data['iter'], data['num'], lw=1.2, label=label)
        ax_q.plot(data['iter'], mined_only(data['num'], data['iou']), lw=1.2,
                  marker='.', ms=3, color=line.get_color(), label=label)
    ax_n.set_ylabel('compensated (or second-step) anchors per image')
    ax_n.set_title('(a) number of mined anchors')
    ax_q.set_ylabel('mean IoU(decoded box, face) of those anchors')
    ax_q.set_title('(b) quality of mined anchors')
    ax_q.set_ylim(0, 1)
    for ax in (ax_n, ax_q):
        ax.set_xlabel('iteration')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def mined_only(num, iou):
    """``iou`` with NaN (a gap in the plot) where nothing was mined."""
    iou = np.asarray(iou, dtype=np.float64)
    return np.where(np.asarray(num, dtype=np.float64) > 0, iou, np.nan)


def _cdf_line(ax, summary, label, **kwargs):
    if summary['count'] == 0:
        ax.plot([], [], label='{} (none)'.format(label), **kwargs)
        return
    x = np.linspace(0.0, 1.0, len(summary['cdf']) + 1)[1:]
    ax.plot(x, summary['cdf'], label='{} (n={}, mean {:.2f})'.format(label, summary['count'], summary['mean']),
            **kwargs)


def plot_match_stats(result, path):
    """Paper Fig. 2 (a-d) and Fig. 4 (c) from a ``MatchStats.summary()``."""
    pos_iou = result['definitions']['pos_iou']
    fig, axes = plt.subplots(2, 3, figsize=(16, 9.5))
    ax = axes[0, 0]
    for stage, style in (('before_nms', '-'), ('after_nms', '--')):
        bucket = result['correct_boxes'][stage]
        _cdf_line(ax, bucket['anchor_iou'], '{}: {:.1%} from matched anchors'.format(
            stage.replace('_', ' '), bucket['fraction_from_matched']), ls=style)
    ax.axvline(pos_iou, color='0.5', lw=0.8, ls=':')
    ax.set_title('(Fig. 2a) anchors of correctly predicted boxes', fontsize=10)
    ax.set_xlabel('IoU between the anchor and the face its box hits')
    ax.set_ylabel('cumulative fraction')

    ax = axes[0, 1]
    for key, label in (('compensated_dms', 'standard (DMS) compensated'),
                       ('compensated_hambox', 'HAMBox compensated'), ('first_step', 'first-step matched')):
        _cdf_line(ax, result['decoded_iou'][key], label)
    ax.set_title('(Fig. 2b) regression quality of assigned anchors', fontsize=10)
    ax.set_xlabel('IoU between the regressed box and its face')
    ax.set_ylabel('cumulative fraction')

    ax = axes[0, 2]
    hq = result['high_quality_anchors']
    ax.bar(['matched', 'unmatched'], [hq['total'] - hq['unmatched'], hq['unmatched']],
           color=['tab:blue', 'tab:red'])
    ax.set_title('(Fig. 2c) high-quality anchors: {:.1%} unmatched'.format(hq['fraction_unmatched']),
                 fontsize=10)
    ax.set_ylabel('anchors with IoU(decoded box, face) > {}'.format(result['definitions']['hq_iou']))

    ax = axes[1, 0]
    faces = result['faces_matched']
    names = [('matched_to_anchor', 'matched\nto anchors'),
             ('with_cpbb_from_matched', 'CPBB from\nmatched'),
             ('with_cpbb_from_matched_after_nms', 'CPBB from\nmatched,\nafter NMS'),
             ('with_cpbb', 'any\nCPBB'), ('with_cpbb_after_nms', 'any CPBB,\nafter NMS')]
    ax.bar([n for _, n in names], [faces[k] for k, _ in names],
           color=['tab:red', 'tab:blue', 'tab:green', '0.6', '0.4'])
    ax.axhline(result['faces'], color='k', lw=0.8, ls=':', label='all faces ({})'.format(result['faces']))
    ax.legend(fontsize=8)
    ax.tick_params(axis='x', labelsize=7)
    ax.set_title('(Fig. 2d) faces', fontsize=10)

    ax = axes[1, 1]
    _cdf_line(ax, result['matched_anchor_iou']['first_step'], 'first step (SMS)')
    _cdf_line(ax, result['matched_anchor_iou']['compensated_dms'], 'second step (DMS compensation)')
    ax.set_title('(Fig. 4c) IoU(anchor, face) of matched anchors', fontsize=10)
    ax.set_xlabel('IoU between the anchor and its face')
    ax.set_ylabel('cumulative fraction')
    for ax in (axes[0, 0], axes[0, 1], axes[1, 1]):
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc='upper left')
    axes[1, 2].axis('off')
    axes[1, 2].text(0.0, 0.95, _caption(result), va='top', fontsize=8, family='monospace')
    return _save(fig, path)


def _caption(result):
    d = result['definitions']
    return '\n'.join([
        'dataset: {} ({})'.format(result.get('dataset', '?'),
                                  os.path.basename(str(result.get('annotation', '?')))),
        'images: {}, faces: {}'.format(result['images'], result['faces']),
        'matched anchor: SMS IoU >= {}'.format(d['pos_iou']),
        'CPBB: score >= {}, IoU(box, face) > {}'.format(d['score_thr'], d['correct_iou']),
        'high quality: IoU(decoded box, face) > {}'.format(d['hq_iou']),
        'weights: {}'.format(os.path.basename(str(result.get('weights', '?')))),
    ])


def plot_widerface_pr(results, path):
    """WIDER FACE precision-recall curves of the three settings (paper Fig. 6),
    AP in the legend; ``results`` ``{mode: metrics.widerface.evaluate(...)}``."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    styles = {'official': '-', 'python-port': '--'}
    for ax, setting in zip(axes, SETTINGS):
        for mode, res in results.items():
            curve = res['curves'][setting]
            ok = np.isfinite(curve['precision'])
            ax.plot(curve['recall'][ok], curve['precision'][ok], styles[mode],
                    label='{} AP = {:.4f}'.format(mode, res[setting]))
        ax.set(title='WIDER FACE val: {}'.format(setting), xlabel='Recall', ylabel='Precision',
               xlim=(0, 1), ylim=(0, 1.01))
        ax.grid(alpha=0.3)
        ax.legend(loc='lower left')
    return _save(fig, path)


def plot_fddb_roc(result, path):
    """FDDB discrete and continuous ROC (``metrics.fddb.evaluate``'s result)."""
    fig, ax = plt.subplots(figsize=(7, 5))
    ax.plot(result['fp'], result['tpr_discrete'],
            label='discrete ({:.4f} at {} FP)'.format(result['discrete'], result['fp_budget']))
    ax.plot(result['fp'], result['tpr_continuous'], '--',
            label='continuous ({:.4f} at {} FP)'.format(result['continuous'], result['fp_budget']))
    ax.set(xlabel='False positives', ylabel='True positive rate', xlim=(0, max(result['fp_budget'], 1)), ylim=(0, 1),
           title='FDDB ROC ({} faces; boxes: {}{})'.format(
               result['num_faces'], result['conversion'],
               '' if result['factor'] is None else ' x{:g}'.format(result['factor'])))
    ax.grid(alpha=0.3)
    ax.legend(loc='lower right')
    return _save(fig, path)


def plot_box_ap_pr(result, path, title='Face detection'):
    """Precision-recall curve of a box AP (``metrics.box_ap.evaluate``'s result)."""
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.plot(result['recall'], result['precision'], label='AP = {:.4f}'.format(result['ap']))
    ax.set(xlabel='Recall', ylabel='Precision', xlim=(0, 1), ylim=(0, 1.01), title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc='lower left')
    return _save(fig, path)
