"""Matplotlib figures of the analysis tools (files only, no display)."""
import os

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

DESIGN_LABELS = {'single': 'single square anchor', 'multi': '3 scales x 3 ratios'}
PAPER_BAND = (0.43, 0.7)
PAPER_RATIO = 0.68


def _save(fig, path):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
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
    protocol = result.get('protocol')
    if protocol:
        fig.suptitle('WIDER FACE train annotations, protocol: {}'.format(protocol), fontsize=10)
    return _save(fig, path)


def plot_mining(runs, path):
    """Paper Fig. 3: compensated anchors per image and their mean decoded IoU vs iteration.

    runs: list of ``(label, {'iter', 'num_com', 'com_iou'})``.
    """
    fig, (ax_n, ax_q) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, data in runs:
        ax_n.plot(data['iter'], data['num_com'], lw=1.2, label=label)
        ax_q.plot(data['iter'], data['com_iou'], lw=1.2, label=label)
    ax_n.set_ylabel('compensated anchors per image')
    ax_n.set_title('(a) number of compensated anchors')
    ax_q.set_ylabel('mean IoU(decoded box, face) of compensated anchors')
    ax_q.set_title('(b) quality of compensated anchors')
    ax_q.set_ylim(0, 1)
    for ax in (ax_n, ax_q):
        ax.set_xlabel('iteration')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)
