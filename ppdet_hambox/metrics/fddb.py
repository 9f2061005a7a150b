"""FDDB evaluation: discrete and continuous ROC (docs/evaluation_protocol.md).

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
continuous score; this module follows the protocol (docs/evaluation_protocol.md), where such pairs are not matches.
"""
import glob
import json
import os
import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from .widerface import concat_ranges

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


def ellipse_runs(e, y, width):
    """Pixel runs of ellipses on rows: ``e [..., 5]`` broadcast against rows ``y`` and image widths.

    Returns inclusive ``xl, xr`` (``xl > xr``: no pixel), clipped to the image. Pixel (x, y) is
    inside when its point satisfies the ellipse equation; on a row that is the interval between the
    roots of a quadratic in x.
    """
    a, b, t, cx, cy = np.moveaxis(np.asarray(e, dtype=np.float64), -1, 0)
    c, s = np.cos(t), np.sin(t)
    dy = y - cy
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


def rect_runs(r, y, width):
    """Pixel runs of rectangles ``[..., 4]`` left top width height (left <= x < left + width,
    top <= y < top + height) on rows ``y``, like ``ellipse_runs``."""
    left, top, w, h = np.moveaxis(np.asarray(r, dtype=np.float64), -1, 0)
    inside = (y >= np.ceil(top)) & (y < np.ceil(top + h))
    xl = np.clip(np.ceil(left), 0, width).astype(np.int64)
    xr = np.clip(np.ceil(left + w) - 1, -1, width - 1).astype(np.int64)
    return np.where(inside, xl, 1), np.where(inside, xr, 0)


def _spans(regions, is_ellipse, width, height):
    """Half-open integer pixel ranges x0, x1, y0, y1 that can hold a region's pixels, clipped."""
    r = np.asarray(regions, dtype=np.float64)
    if is_ellipse:
        a, b, t, cx, cy = r.T
        hx = np.sqrt((a * np.cos(t)) ** 2 + (b * np.sin(t)) ** 2)
        hy = np.sqrt((a * np.sin(t)) ** 2 + (b * np.cos(t)) ** 2)
        x0, x1, y0, y1 = np.floor(cx - hx), np.floor(cx + hx) + 1, np.floor(cy - hy), np.floor(cy + hy) + 1
    else:
        x0, x1 = np.ceil(r[:, 0]), np.ceil(r[:, 0] + r[:, 2])
        y0, y1 = np.ceil(r[:, 1]), np.ceil(r[:, 1] + r[:, 3])
    x0, x1 = np.clip(x0, 0, width).astype(np.int64), np.clip(x1, 0, width).astype(np.int64)
    y0, y1 = np.clip(y0, 0, height).astype(np.int64), np.clip(y1, 0, height).astype(np.int64)
    return x0, np.maximum(x1, x0), y0, np.maximum(y1, y0)


def region_areas(regions, is_ellipse, width, height):
    """Pixel counts of regions (per-region image ``width``/``height`` arrays)."""
    x0, x1, y0, y1 = _spans(regions, is_ellipse, width, height)
    if not is_ellipse:
        return ((x1 - x0) * (y1 - y0)).astype(np.float64)
    owner = np.repeat(np.arange(len(y0)), y1 - y0)
    xl, xr = ellipse_runs(np.asarray(regions)[owner], concat_ranges(y0, y1), width[owner])
    return np.bincount(owner, weights=np.maximum(xr - xl + 1, 0), minlength=len(y0))


def pair_ratios(faces, face_image, regions, region_image, is_ellipse, widths, heights):
    """|face & region| / |face | region| for every face/region pair of one image whose pixel ranges
    overlap. ``face_image`` must be non-decreasing; ``widths``/``heights`` are per image.
    Returns (face index, region index, ratio) of those pairs, all images at once."""
    faces, regions = np.asarray(faces, np.float64), np.asarray(regions, np.float64)
    offsets = np.searchsorted(face_image, np.arange(len(widths) + 1))
    counts = offsets[region_image + 1] - offsets[region_image]
    pr = np.repeat(np.arange(len(regions)), counts)
    pf = concat_ranges(offsets[region_image], offsets[region_image + 1])
    fw, fh = widths[face_image], heights[face_image]
    rw, rh = widths[region_image], heights[region_image]
    fx0, fx1, fy0, fy1 = _spans(faces, True, fw, fh)
    rx0, rx1, ry0, ry1 = _spans(regions, is_ellipse, rw, rh)
    r0, r1 = np.maximum(fy0[pf], ry0[pr]), np.minimum(fy1[pf], ry1[pr])
    near = np.flatnonzero((r1 > r0) & (np.minimum(fx1[pf], rx1[pr]) > np.maximum(fx0[pf], rx0[pr])))
    pf, pr, r0, r1 = pf[near], pr[near], r0[near], r1[near]
    owner = np.repeat(np.arange(len(pf)), r1 - r0)
    rows = concat_ranges(r0, r1)
    width = rw[pr][owner]
    fl, fr = ellipse_runs(faces[pf[owner]], rows, width)
    dl, dr = (ellipse_runs if is_ellipse else rect_runs)(regions[pr[owner]], rows, width)
    inter = np.bincount(owner, weights=np.maximum(np.minimum(fr, dr) - np.maximum(fl, dl) + 1, 0),
                        minlength=len(pf))
    union = region_areas(faces, True, fw, fh)[pf] + region_areas(regions, is_ellipse, rw, rh)[pr] - inter
    return pf, pr, np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def region_ratios(faces, regions, is_ellipse, width, height):
    """Ratio matrix ``[n_faces, n_regions]`` of one image."""
    out = np.zeros((len(faces), len(regions)))
    if len(faces) and len(regions):
        size = np.array([width]), np.array([height])
        pf, pr, ratio = pair_ratios(faces, np.zeros(len(faces), np.int64), regions,
                                    np.zeros(len(regions), np.int64), is_ellipse, *size)
        out[pf, pr] = ratio
    return out


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


def _tp_steps(pf, pr, ratio, region_image, scores):
    """(score, change of discrete TP, change of continuous TP) at each level of each image where the
    matching changes; one Hungarian run per such level, only for images with overlapping pairs."""
    steps = []
    keep = ratio > 0
    pf, pr, ratio = pf[keep], pr[keep], ratio[keep]
    bounds = np.flatnonzero(np.diff(region_image[pr], prepend=-1, append=-2))
    for a, b in zip(bounds[:-1], bounds[1:]):
        faces, fi = np.unique(pf[a:b], return_inverse=True)
        dets, di = np.unique(pr[a:b], return_inverse=True)
        matrix = np.zeros((len(faces), len(dets)))
        matrix[fi, di] = ratio[a:b]
        levels = image_levels(matrix, scores[dets])
        levels[1:, 1:3] -= levels[:-1, 1:3].copy()
        steps.append(levels[:, :3])
    return np.concatenate(steps) if steps else np.zeros((0, 3))


def evaluate(images, detections, sizes, ellipses=False, conversion='none', factor=1.0, fp_budget=FP_BUDGET):
    """Discrete and continuous ROC over all images.

    ``detections``: {image path: [k, 5] left top width height score} (``ellipses``: [k, 6]).
    Returns dict(thresholds, fp, tpr_discrete, tpr_continuous, num_faces, fp_budget, discrete,
    continuous (the TPRs of the last point with at most ``fp_budget`` false positives), max_fp,
    conversion, factor).
    """
    if ellipses and conversion != 'none':
        raise ValueError('a box conversion applies to rectangle detections only')
    ncol = 6 if ellipses else 5
    dets = [np.asarray(detections.get(im.path, np.zeros((0, ncol))), dtype=np.float64).reshape(-1, ncol)
            for im in images]
    n_det = np.array([len(d) for d in dets])
    widths, heights = np.zeros(len(images), np.int64), np.zeros(len(images), np.int64)
    for i in np.flatnonzero(n_det):
        if images[i].path not in sizes:
            raise KeyError('no image size for {} (needed to rasterise its regions)'.format(images[i].path))
        widths[i], heights[i] = sizes[images[i].path]
    faces = np.concatenate([im.ellipses for im in images]).reshape(-1, 5)
    face_image = np.repeat(np.arange(len(images)), [len(im.ellipses) for im in images])
    det = np.concatenate(dets) if dets else np.zeros((0, ncol))
    det_image = np.repeat(np.arange(len(images)), n_det)
    scores = det[:, -1]
    if ellipses:
        regions, is_ellipse = det[:, :5], True
    else:
        regions, is_ellipse = convert_boxes(det[:, :4], conversion, factor)
    with_size = n_det[face_image] > 0  # faces of images without detections are never paired
    pf, pr, ratio = pair_ratios(faces[with_size], face_image[with_size], regions, det_image, is_ellipse,
                                widths, heights)
    steps = _tp_steps(pf, pr, ratio, det_image, scores)
    thresholds = np.unique(scores)[::-1]
    admitted = np.searchsorted(np.sort(-scores), -thresholds, side='right')
    at = np.searchsorted(-thresholds, -steps[:, 0])
    tp_d = np.cumsum(np.bincount(at, weights=steps[:, 1], minlength=len(thresholds)))
    tp_c = np.cumsum(np.bincount(at, weights=steps[:, 2], minlength=len(thresholds)))
    num_faces = len(faces)
    tpr_d, tpr_c = tp_d / max(num_faces, 1), tp_c / max(num_faces, 1)
    fp = (admitted - tp_d).astype(np.float64)
    within = np.flatnonzero(fp <= fp_budget)
    last = within[-1] if within.size else None
    return {'thresholds': thresholds, 'fp': fp, 'tpr_discrete': tpr_d, 'tpr_continuous': tpr_c,
            'num_faces': num_faces, 'max_fp': float(fp[-1]) if len(fp) else 0.0, 'fp_budget': fp_budget,
            'discrete': float(tpr_d[last]) if last is not None else 0.0,
            'continuous': float(tpr_c[last]) if last is not None else 0.0,
            'conversion': 'ellipse detections' if ellipses else conversion,
            'factor': factor if conversion != 'none' else None}
