"""FDDB evaluation: discrete and continuous ROC (docs/FDDB_EVAL.md).

Matching, per image and per score threshold, as the benchmark's ``evaluate`` does: for every
distinct detection score ``s`` of the image, the detections with score >= s are matched to the
faces by a maximum-weight bipartite matching (``scipy.optimize.linear_sum_assignment``) on the
region ratios |face & det| / |face | det|; matched pairs with ratio <= 0.5 do not count. A
counted pair adds 1 to the discrete and its ratio to the continuous true positives; every other
detection above the threshold is a false positive. The dataset curve at threshold t sums, per
image, the statistics of its detections with score >= t. TPR = true positives / faces (5,171).
The reported numbers are the TPRs of the last curve point with at most 1,000 false positives
(``fp_budget``).

Regions are rasterised on the image's pixel grid: pixel (x, y) is the point (x, y) of the
annotation coordinates (OpenCV's convention, which the benchmark draws with); an ellipse
``major minor angle cx cy`` covers the pixels with ((u / major)^2 + (v / minor)^2) <= 1, u and v
the pixel's offsets from the centre along the major axis (direction ``angle``, radians, image
coordinates) and across it; a rectangle ``left top width height`` covers
left <= x < left + width, top <= y < top + height. Both are clipped to the image, so the image
size is needed: a sizes file (``--sizes``) or the images themselves (``--images``).

Sizes file formats: JSON ``{"2002/08/11/big/img_591": [width, height], ...}`` (or values
``{"width": w, "height": h}``), or text with one ``path width height`` line per image
(whitespace separated, ``#`` comments allowed).

Detection files: blocks of ``image path``, ``count``, then ``count`` lines ``left top width
height score`` (``--ellipses``: ``major minor angle cx cy score``), as written by
``write_detections`` in fold order. ``--pred`` is one such file or a folder of ``*.txt`` files.
An image of the folds without a block has no detections (warning); a block for an image not in
the folds, a malformed line or a NaN is an error naming the file and line.

Rectangles cover less forehead than FDDB's ellipses; the documented conversions (``conversion``
and ``factor``, reported in the result):
- ``stretch``: the height becomes ``factor * height``, the bottom edge kept (it grows upward);
- ``box-to-ellipse``: an upright ellipse inscribed in the stretched rectangle (minor radius
  ``width / 2``, major radius ``factor * height / 2``, bottom edge kept);
- ``none``: rectangles as they are.

Note: the benchmark's C++ code adds the ratio of every matched pair, also those <= 0.5, to the
continuous score; this module follows docs/FDDB_EVAL.md, where such pairs are not matches.
"""
import argparse
import glob
import json
import os
import sys
import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

MATCH_RATIO = 0.5
FP_BUDGET = 1000
CONVERSIONS = ('none', 'stretch', 'box-to-ellipse')


class FDDBWarning(UserWarning):
    """Something odd in the FDDB inputs; the message names the file and line."""


@dataclass
class FDDBImage:
    path: str            # image path without extension, as in the fold files
    fold: int
    ellipses: np.ndarray  # float64 [N, 5] major minor angle cx cy


# ----------------------------------------------------------------------------- reading

def _lines(path):
    with open(path, encoding='utf-8') as f:
        return f.read().splitlines()


def _numbers(path, lineno, line, n, exact):
    fields = line.split()
    if len(fields) < n or (exact and len(fields) > n):
        raise ValueError('{}:{}: expected {} numbers, found {!r}'.format(path, lineno, n, line.strip()))
    try:
        values = [float(v) for v in fields[:n]]
    except ValueError:
        raise ValueError('{}:{}: not a number in {!r}'.format(path, lineno, line.strip())) from None
    if not np.all(np.isfinite(values)):
        raise ValueError('{}:{}: NaN or infinite value in {!r}'.format(path, lineno, line.strip()))
    return values


def _read_blocks(path, values_per_line, exact=True):
    """(image path, [k, values_per_line] array, line of the path) blocks of an FDDB list file;
    ``exact=False`` ignores values past the first ``values_per_line`` (the ellipse lists' final 1)."""
    lines = _lines(path)
    blocks, i = [], 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        name, start = lines[i].strip(), i + 1
        if i + 1 >= len(lines):
            raise ValueError('{}:{}: image {} has no count line'.format(path, i + 1, name))
        try:
            count = int(lines[i + 1].strip())
        except ValueError:
            raise ValueError('{}:{}: count {!r} is not an integer'.format(
                path, i + 2, lines[i + 1].strip())) from None
        if count < 0 or i + 2 + count > len(lines):
            raise ValueError('{}:{}: image {} declares {} regions but the file has {} more lines'.format(
                path, i + 2, name, count, len(lines) - i - 2))
        rows = [_numbers(path, i + 3 + k, lines[i + 2 + k], values_per_line, exact) for k in range(count)]
        blocks.append((name, np.array(rows, dtype=np.float64).reshape(count, values_per_line), start))
        i += 2 + count
    return blocks


def read_folds(folds_dir):
    """All images of ``FDDB-fold-NN-ellipseList.txt``, folds 01..10 in order."""
    paths = sorted(glob.glob(os.path.join(os.fspath(folds_dir), 'FDDB-fold-[0-9][0-9]-ellipseList.txt')))
    if not paths:
        raise FileNotFoundError('no FDDB-fold-NN-ellipseList.txt in {}'.format(folds_dir))
    images = []
    for path in paths:
        fold = int(os.path.basename(path)[10:12])
        blocks = _read_blocks(path, 5, exact=False)
        images += [FDDBImage(name, fold, rows) for name, rows, _ in blocks]
        list_path = path.replace('-ellipseList.txt', '.txt')
        if os.path.isfile(list_path):
            listed = [ln.strip() for ln in _lines(list_path) if ln.strip()]
            if listed != [name for name, _, _ in blocks]:
                raise ValueError('{}: the image order differs from {}'.format(list_path, path))
    return images


def load_image_sizes(path=None, images_dir=None, names=()):
    """{image path: (width, height)} from a sizes file, or from ``images_dir/<path>.jpg``."""
    if path is not None:
        if not os.path.isfile(path):
            raise FileNotFoundError('image sizes file not found: {}'.format(path))
        text = open(path, encoding='utf-8').read()
        if text.lstrip().startswith('{'):
            try:
                raw = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError('{}: invalid JSON ({})'.format(path, exc)) from exc
            sizes = {}
            for key, value in raw.items():
                if isinstance(value, dict) and {'width', 'height'} <= set(value):
                    value = [value['width'], value['height']]
                if not (isinstance(value, (list, tuple)) and len(value) == 2):
                    raise ValueError('{}: key {!r}: expected [width, height], got {!r}'.format(path, key, value))
                sizes[key] = (int(value[0]), int(value[1]))
            return sizes
        sizes = {}
        for lineno, line in enumerate(text.splitlines(), start=1):
            line = line.split('#', 1)[0].strip()
            if not line:
                continue
            fields = line.split()
            if len(fields) != 3:
                raise ValueError('{}:{}: expected "path width height", got {!r}'.format(path, lineno, line))
            try:
                sizes[fields[0]] = (int(fields[1]), int(fields[2]))
            except ValueError:
                raise ValueError('{}:{}: width and height must be integers: {!r}'.format(
                    path, lineno, line)) from None
        return sizes
    if images_dir is None:
        raise ValueError('give the image sizes: a sizes file or the images folder')
    from PIL import Image
    sizes = {}
    for name in names:
        file = os.path.join(images_dir, name + '.jpg')
        if not os.path.isfile(file):
            raise FileNotFoundError('image not found: {}'.format(file))
        with Image.open(file) as im:
            sizes[name] = im.size
    return sizes


def read_detections(pred, images, ellipses=False):
    """{image path: float64 [k, 6]} from one detection file or a folder of ``*.txt`` files."""
    pred = os.fspath(pred)
    files = sorted(glob.glob(os.path.join(pred, '*.txt'))) if os.path.isdir(pred) else [pred]
    if not files or not all(os.path.isfile(f) for f in files):
        raise FileNotFoundError('detections not found: {}'.format(pred))
    known = {im.path for im in images}
    dets = {}
    for path in files:
        for name, rows, line in _read_blocks(path, 6 if ellipses else 5):
            if name not in known:
                raise ValueError('{}:{}: image {} is not in the FDDB folds'.format(path, line, name))
            if name in dets:
                warnings.warn('{}:{}: second block for {}; its detections are added'.format(path, line, name),
                              FDDBWarning, stacklevel=2)
                rows = np.concatenate([dets[name], rows])
            if not ellipses:
                bad = np.flatnonzero((rows[:, 2] <= 0) | (rows[:, 3] <= 0))
                for b in bad[:10]:
                    warnings.warn('{}:{}: width or height <= 0; kept as a false positive'.format(
                        path, line + 2 + int(b)), FDDBWarning, stacklevel=2)
            dets[name] = rows
    missing = [im.path for im in images if im.path not in dets]
    if missing:
        warnings.warn('{}: no detections block for {} image(s), e.g. {}: counted as no detections'.format(
            pred, len(missing), ', '.join(missing[:3])), FDDBWarning, stacklevel=2)
    return dets


def write_detections(out_path, images, detections):
    """Write ``detections`` ({image path: [k, 5] left top width height score}) in fold order.

    Images without an entry get count 0. ``out_path`` is one file for all folds.
    """
    blocks = []
    for im in images:
        rows = np.asarray(detections.get(im.path, np.zeros((0, 5))), dtype=np.float64).reshape(-1, 5)
        if not np.all(np.isfinite(rows)):
            raise ValueError('{}: NaN or infinite detection values'.format(im.path))
        body = ('%.6f %.6f %.6f %.6f %.9g\n' * len(rows)) % tuple(rows.ravel().tolist())
        blocks.append('{}\n{}\n{}'.format(im.path, len(rows), body))
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, 'w') as f:
        f.write(''.join(blocks))
    return out_path


# ----------------------------------------------------------------------------- regions

def convert_boxes(boxes, conversion='none', factor=1.0):
    """Rectangles ``[k, 4]`` left top width height -> (regions, is_ellipse) after the conversion."""
    if conversion not in CONVERSIONS:
        raise ValueError('unknown conversion {!r}; choose one of {}'.format(conversion, CONVERSIONS))
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if conversion == 'none':
        return b, False
    height = b[:, 3] * factor
    top = b[:, 1] + b[:, 3] - height
    if conversion == 'stretch':
        return np.c_[b[:, 0], top, b[:, 2], height], False
    return np.c_[height / 2, b[:, 2] / 2, np.full(len(b), np.pi / 2),
                 b[:, 0] + b[:, 2] / 2, top + height / 2], True


def ellipse_rows(e, width, rows):
    """Pixel runs of ellipses ``[k, 5]`` on the image rows ``rows``: inclusive ``xl, xr`` int
    ``[k, len(rows)]`` (``xl > xr``: no pixel). Pixel (x, y) is inside when its point satisfies the
    ellipse equation; on a row that is the interval between the roots of a quadratic in x."""
    e = np.asarray(e, dtype=np.float64).reshape(-1, 5)
    a, b, t, cx, cy = (e[:, i:i + 1] for i in range(5))
    c, s = np.cos(t), np.sin(t)
    dy = rows[None, :] - cy
    with np.errstate(divide='ignore', invalid='ignore'):
        qa = c ** 2 / a ** 2 + s ** 2 / b ** 2
        qb = 2 * dy * c * s * (1 / a ** 2 - 1 / b ** 2)
        qc = dy ** 2 * (s ** 2 / a ** 2 + c ** 2 / b ** 2) - 1
        root = np.sqrt(qb ** 2 - 4 * qa * qc)
        lo = np.ceil(cx + (-qb - root) / (2 * qa))
        hi = np.floor(cx + (-qb + root) / (2 * qa))
    ok = np.isfinite(lo) & np.isfinite(hi)
    xl = np.where(ok, np.clip(lo, 0, width), 1).astype(np.int64)
    xr = np.where(ok, np.clip(hi, -1, width - 1), 0).astype(np.int64)
    return xl, xr


def rect_rows(r, width, rows):
    """Pixel runs of rectangles ``[k, 4]`` left top width height (left <= x < left + width,
    top <= y < top + height) on the image rows ``rows``, like ``ellipse_rows``."""
    r = np.asarray(r, dtype=np.float64).reshape(-1, 4)
    inside = (rows[None, :] >= np.ceil(r[:, 1:2])) & (rows[None, :] < np.ceil(r[:, 1:2] + r[:, 3:4]))
    xl = np.clip(np.ceil(r[:, 0:1]), 0, width).astype(np.int64)
    xr = np.clip(np.ceil(r[:, 0:1] + r[:, 2:3]) - 1, -1, width - 1).astype(np.int64)
    return np.where(inside, xl, 1), np.where(inside, xr, 0)


def _run_length(xl, xr):
    return np.maximum(xr - xl + 1, 0).sum(-1)


def region_ratios(faces, regions, is_ellipse, width, height):
    """Ratios |face & det| / |face | det| on the pixel grid: ``[n_faces, n_dets]``.

    Intersections are counted on the rows the faces span; the detections' areas on all rows.
    """
    if len(faces) == 0 or len(regions) == 0:
        return np.zeros((len(faces), len(regions)))
    reach = np.abs(faces[:, 0]) + 1
    rows = np.arange(max(int(np.floor((faces[:, 4] - reach).min())), 0),
                     min(int(np.ceil((faces[:, 4] + reach).max())), height - 1) + 1, dtype=np.float64)
    all_rows = np.arange(height, dtype=np.float64)
    to_rows = ellipse_rows if is_ellipse else rect_rows
    fl, fr = ellipse_rows(faces, width, rows)
    dl, dr = to_rows(regions, width, rows)
    inter = np.maximum(np.minimum(fr[:, None], dr[None]) - np.maximum(fl[:, None], dl[None]) + 1, 0).sum(2)
    if is_ellipse:
        d_area = _run_length(*ellipse_rows(regions, width, all_rows))
    else:
        r = _rect_ranges(regions, width, height)
        d_area = (r[1] - r[0]) * (r[3] - r[2])
    union = _run_length(fl, fr)[:, None] + d_area[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def _rect_ranges(r, width, height):
    """Half-open pixel ranges x0, x1, y0, y1 of rectangles, clipped to the image."""
    x0 = np.clip(np.ceil(r[:, 0]), 0, width)
    x1 = np.clip(np.ceil(r[:, 0] + r[:, 2]), 0, width)
    y0 = np.clip(np.ceil(r[:, 1]), 0, height)
    y1 = np.clip(np.ceil(r[:, 1] + r[:, 3]), 0, height)
    return x0, np.maximum(x1, x0), y0, np.maximum(y1, y0)


# ----------------------------------------------------------------------------- ROC

def image_levels(ratios, scores):
    """Per distinct score of one image (descending): (score, discrete TP, continuous TP, FP).

    The matching is recomputed only at levels where a detection overlapping some face enters;
    detections and faces without any overlap are left out of the assignment, as the benchmark
    does.
    """
    levels = np.unique(scores)[::-1]
    admitted = np.searchsorted(np.sort(-scores), -levels, side='right')
    useful = ratios.any(axis=0) if ratios.size else np.zeros(len(scores), dtype=bool)
    changes = np.unique(np.searchsorted(-levels, -scores[useful]))
    tp = np.zeros((len(levels), 2))
    for k in changes:
        sub = ratios[:, useful & (scores >= levels[k])]
        sub = sub[sub.any(axis=1)]
        rows, cols = linear_sum_assignment(sub, maximize=True)
        matched = sub[rows, cols]
        matched = matched[matched > MATCH_RATIO]
        tp[k] = len(matched), matched.sum()
    last = np.zeros(len(levels), dtype=np.int64) - 1
    last[changes] = changes
    last = np.maximum.accumulate(last)
    tp = np.where(last[:, None] >= 0, tp[np.maximum(last, 0)], 0.0)
    return np.column_stack([levels, tp, admitted - tp[:, 0]])


def evaluate(images, detections, sizes, ellipses=False, conversion='none', factor=1.0, fp_budget=FP_BUDGET):
    """Discrete and continuous ROC over all images.

    ``detections``: {image path: [k, 5] left top width height score} (``ellipses``: [k, 6]).
    Returns dict(thresholds, fp, tpr_discrete, tpr_continuous, num_faces, fp_budget, discrete,
    continuous (the TPRs of the last point with at most ``fp_budget`` false positives), max_fp,
    conversion, factor).
    """
    if ellipses and conversion != 'none':
        raise ValueError('a box conversion applies to rectangle detections only')
    num_faces = sum(len(im.ellipses) for im in images)
    deltas = []
    for im in images:
        det = np.asarray(detections.get(im.path, np.zeros((0, 6 if ellipses else 5))), dtype=np.float64)
        if len(det) == 0:
            continue
        if im.path not in sizes:
            raise KeyError('no image size for {} (needed to rasterise its regions)'.format(im.path))
        width, height = sizes[im.path]
        if ellipses:
            regions, is_ellipse = det[:, :5], True
        else:
            regions, is_ellipse = convert_boxes(det[:, :4], conversion, factor)
        ratios = region_ratios(im.ellipses, regions, is_ellipse, width, height)
        levels = image_levels(ratios, det[:, -1])
        levels[1:, 1:] -= levels[:-1, 1:].copy()
        deltas.append(levels)
    if deltas:
        deltas = np.concatenate(deltas)
        order = np.argsort(-deltas[:, 0], kind='stable')
        deltas = deltas[order]
        thresholds, first = np.unique(-deltas[:, 0], return_index=True)
        totals = np.cumsum(np.add.reduceat(deltas[:, 1:], first, axis=0), axis=0)
        thresholds = -thresholds
    else:
        thresholds, totals = np.zeros(0), np.zeros((0, 3))
    tpr_d = totals[:, 0] / max(num_faces, 1)
    tpr_c = totals[:, 1] / max(num_faces, 1)
    fp = totals[:, 2]
    within = np.flatnonzero(fp <= fp_budget)
    at = within[-1] if within.size else None
    return {'thresholds': thresholds, 'fp': fp, 'tpr_discrete': tpr_d, 'tpr_continuous': tpr_c,
            'num_faces': num_faces, 'max_fp': float(fp[-1]) if len(fp) else 0.0,
            'fp_budget': fp_budget, 'discrete': float(tpr_d[at]) if at is not None else 0.0,
            'continuous': float(tpr_c[at]) if at is not None else 0.0,
            'conversion': 'ellipse detections' if ellipses else conversion,
            'factor': factor if conversion != 'none' else None}


def plot_roc(result, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 5))
    ax.plot(result['fp'], result['tpr_discrete'],
            label='discrete ({:.4f} at {} FP)'.format(result['discrete'], result['fp_budget']))
    ax.plot(result['fp'], result['tpr_continuous'], '--',
            label='continuous ({:.4f} at {} FP)'.format(result['continuous'], result['fp_budget']))
    ax.set(xlabel='False positives', ylabel='True positive rate', xlim=(0, max(result['fp_budget'], 1)), ylim=(0, 1),
           title='FDDB ROC ({} faces; boxes: {})'.format(result['num_faces'], result['conversion']))
    ax.grid(alpha=0.3)
    ax.legend(loc='lower right')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description='FDDB discrete and continuous ROC.')
    parser.add_argument('--pred', required=True, help='detection file, or folder of *.txt detection files')
    parser.add_argument('--folds', required=True, help='folder of FDDB-fold-NN-ellipseList.txt')
    size = parser.add_mutually_exclusive_group(required=True)
    size.add_argument('--sizes', help='image sizes: JSON {path: [w, h]} or "path w h" lines')
    size.add_argument('--images', help='folder of the FDDB images (<path>.jpg), to read their sizes')
    parser.add_argument('--ellipses', action='store_true', help='detections are ellipses, not rectangles')
    conv = parser.add_mutually_exclusive_group()
    conv.add_argument('--box-to-ellipse', type=float, metavar='F', help='score boxes as upright ellipses, '
                      'height stretched by F upward')
    conv.add_argument('--stretch', type=float, metavar='F', help='stretch box heights by F upward')
    parser.add_argument('--fp-budget', type=int, default=FP_BUDGET, help='report the TPR at this many FP')
    parser.add_argument('--plot', help='write the ROC plot to this image file')
    args = parser.parse_args(argv)
    conversion, factor = 'none', 1.0
    if args.box_to_ellipse is not None:
        conversion, factor = 'box-to-ellipse', args.box_to_ellipse
    elif args.stretch is not None:
        conversion, factor = 'stretch', args.stretch
    try:
        images = read_folds(args.folds)
        sizes = load_image_sizes(args.sizes, args.images, [im.path for im in images])
        dets = read_detections(args.pred, images, args.ellipses)
        result = evaluate(images, dets, sizes, args.ellipses, conversion, factor, args.fp_budget)
    except (OSError, ValueError, KeyError) as exc:
        print('error: {}'.format(exc), file=sys.stderr)
        return 2
    if args.plot:
        plot_roc(result, args.plot)
    print('{} images, {} faces, boxes: {}{}'.format(
        len(images), result['num_faces'], result['conversion'],
        '' if result['factor'] is None else ' x{:g}'.format(result['factor'])))
    print('TPR at {} FP: discrete {:.4f}, continuous {:.4f} (curve reaches {:g} FP)'.format(
        result['fp_budget'], result['discrete'], result['continuous'], result['max_fp']))
    print(json.dumps({k: result[k] for k in ('discrete', 'continuous', 'fp_budget', 'num_faces', 'max_fp',
                                             'conversion', 'factor')}))
    return 0


if __name__ == '__main__':
    sys.exit(main())
