"""Time the vectorised WIDER FACE evaluation against the per-box reference loop.

Builds seeded synthetic predictions for the full val ground truth (every face twice, jittered, plus
random false positives: about 300,000 boxes for 3,226 images), writes them in the official layout to
a temporary folder, then times parsing, ``widerface.evaluate`` in both modes (easy, medium and hard
in one call) and ``tests/reference_widerface.py`` on the same parsed input, and checks they agree.

    python tools/benchmark_eval.py --gt DIR [--boxes 300000] [--seed 0] [--no-reference]

It needs the real WIDER FACE val ground truth: --gt DIR, the folder of wider_face_val.mat and
wider_{easy,medium,hard}_val.mat (the official eval_tools/ground_truth; in this project's shared data
folder, <shared data>/widerface). --gt may be left out when $HAMBOX_SHARED_DATA is set: it then
defaults to $HAMBOX_SHARED_DATA/widerface. The last line is JSON with the seconds and the APs.
"""
import json
import os
import sys
import tempfile
import time
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, 'tests'))

from ppdet_hambox.utils.logger import quiet_paddle  # noqa: E402
quiet_paddle()  # before anything imports paddle; HAMBOX_PADDLE_LOG=1 keeps its logging
from ppdet_hambox.core.errors import UserError, run_tool  # noqa: E402
from ppdet_hambox.metrics import widerface as W  # noqa: E402
from ppdet_hambox.utils.cli import ToolParser, positive_int, random_seed  # noqa: E402


def synthetic_predictions(gt, total_boxes, seed):
    """Per image rows ``x y w h score`` (two jittered copies of each face and false positives), sorted
    by score as a detector writes them."""
    rng = np.random.default_rng(seed)
    faces = gt.boxes.astype(np.float64)
    n_fp = max(total_boxes - 2 * len(faces), 0)
    fp_image = np.sort(rng.integers(0, gt.num_images, n_fp))
    copies = []
    for sigma in (0.05, 0.15):
        size = np.maximum(faces[:, 2:], 1)
        jit = faces + rng.normal(0, sigma, faces.shape) * np.c_[size, size]
        copies.append(np.c_[jit, np.clip(rng.normal(0.85 - 2 * sigma, 0.1, len(faces)), 0, 1)])
    face_image = np.repeat(np.arange(gt.num_images), np.diff(gt.offsets))
    fp = np.c_[rng.uniform(0, 1000, (n_fp, 2)), rng.uniform(4, 120, (n_fp, 2)), rng.uniform(0, 0.8, n_fp)]
    image = np.r_[face_image, face_image, fp_image]
    rows = np.r_[copies[0], copies[1], fp]
    order = np.lexsort((-rows[:, 4], image))
    return image[order], rows[order]


def write_all(out_dir, gt, image, rows):
    bounds = np.searchsorted(image, np.arange(gt.num_images + 1))
    for i in range(gt.num_images):
        W.write_predictions(out_dir, gt.events[gt.image_event[i]], gt.names[i], rows[bounds[i]:bounds[i + 1]])


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def main(argv=None):
    shared = os.environ.get('HAMBOX_SHARED_DATA')
    parser = ToolParser(description=__doc__.split('\n')[0])
    parser.add_argument('--gt', default=os.path.join(shared, 'widerface') if shared else None,
                        help='folder of the WIDER FACE val .mat files (default $HAMBOX_SHARED_DATA/widerface)')
    parser.add_argument('--boxes', type=positive_int, default=300000)
    parser.add_argument('--seed', type=random_seed, default=0)
    parser.add_argument('--no-reference', action='store_true', help='skip the (minutes long) reference loop')
    args = parser.parse_args(argv)
    if not args.gt:
        raise UserError('--gt DIR is needed (the folder of wider_face_val.mat and '
                        'wider_{easy,medium,hard}_val.mat), or set HAMBOX_SHARED_DATA to the shared data '
                        'folder (its widerface/ is used)')
    missing = [f for f in W.GT_FILES.values() if not os.path.isfile(os.path.join(args.gt, f))]
    if missing:
        raise UserError('--gt {}: no {}'.format(args.gt, ', '.join(missing)))

    gt, t_gt = timed(W.load_ground_truth, args.gt)
    image, rows = synthetic_predictions(gt, args.boxes, args.seed)
    seconds = {'load_ground_truth': t_gt}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        _, seconds['write_predictions'] = timed(write_all, tmp, gt, image, rows)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', W.WiderEvalWarning)  # a few degenerate jittered boxes
            preds, seconds['load_predictions'] = timed(W.load_predictions, tmp, gt)
            for mode in W.MODES:
                results['vectorised ' + mode], seconds['vectorised ' + mode] = timed(
                    W.evaluate, preds, gt, mode)
            if not args.no_reference:
                from reference_widerface import evaluate_reference
                for mode in W.MODES:
                    results['reference ' + mode], seconds['reference ' + mode] = timed(
                        evaluate_reference, preds, gt, mode)

    print('{} images, {} faces, {} predicted boxes (seed {})'.format(
        gt.num_images, len(gt.boxes), len(preds.scores), args.seed))
    print('{:<24}{:>10}{:>9}{:>9}{:>9}'.format('step', 'seconds', *W.SETTINGS))
    for step, sec in seconds.items():
        ap = ['{:>9.4f}'.format(results[step][s]) for s in W.SETTINGS] if step in results else []
        print('{:<24}{:>10.2f}{}'.format(step, sec, ''.join(ap)))
    diff = None
    if not args.no_reference:
        diff = max(abs(results['vectorised ' + m][s] - results['reference ' + m][s])
                   for m in W.MODES for s in W.SETTINGS)
        print('max |vectorised - reference| AP: {:.3g}'.format(diff))
    print(json.dumps({'boxes': int(len(preds.scores)), 'seconds': seconds, 'max_ap_difference': diff,
                      'ap': {m: {s: r[s] for s in W.SETTINGS} for m, r in results.items()}}))
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
