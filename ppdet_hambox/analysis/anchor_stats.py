"""How many faces can match an anchor, and with how many anchors (paper Fig. 1, §3.1).

A face *matches* an anchor when their IoU (continuous coordinates, no ``+1``)
is at least ``iou_thr``. Every face is counted on its own: an anchor counts
for every face it overlaps enough (no arg-max between faces). Anchor grids
start at ``(0.5 * stride, 0.5 * stride)``; they are unbounded right and
bottom unless ``image_shape`` bounds them to an image.

Only anchors within a small window around a face can reach the threshold
(see :func:`_centre_radius`), so each (face, level, anchor shape) pair looks at
a window of grid cells only; faces with the same window size are enumerated
together with NumPy broadcasting.
"""
import math

import numpy as np

DEFAULT_SIZES = (16, 32, 64, 128, 256, 512)
DEFAULT_STRIDES = (4, 8, 16, 32, 64, 128)
MULTI_SCALES = (1.0, 2 ** (1 / 3), 2 ** (2 / 3))
MULTI_ASPECTS = (0.5, 1.0, 2.0)
DESIGNS = ('single', 'multi')
_CHUNK_CELLS = 4_000_000


def anchor_shapes(design, ratio, sizes=DEFAULT_SIZES):
    """Per level, the anchor ``(w, h)`` pairs tiled at each location: ``float64 [K, 2]``.

    ``single``: one square of side ``ratio * size``. ``multi``: 3 octave scales
    x 3 aspect ratios (h / w in 0.5, 1, 2) of the same area, 9 per location.
    """
    if design == 'single':
        return [np.array([[ratio * s, ratio * s]], dtype=np.float64) for s in sizes]
    if design == 'multi':
        shapes = []
        for size in sizes:
            wh = [(ratio * size * sc / math.sqrt(ar), ratio * size * sc * math.sqrt(ar))
                  for sc in MULTI_SCALES for ar in MULTI_ASPECTS]
            shapes.append(np.array(wh, dtype=np.float64))
        return shapes
    raise ValueError('unknown anchor design {!r}; expected one of {}'.format(design, DESIGNS))


def _centre_radius(anchor_len, face_len, anchor_other, face_other, anchor_area, face_area,
                   iou_thr):
    """Largest centre distance along one axis at which IoU >= iou_thr is still possible.

    IoU >= t needs inter >= t * max(areas); inter = ox * oy with
    oy <= min(anchor_other, face_other), so ox >= t * max(areas) / min(...);
    and ox <= (anchor_len + face_len) / 2 - |d|. Negative: no match at all.
    """
    min_overlap = iou_thr * np.maximum(anchor_area, face_area) / np.minimum(anchor_other,
                                                                            face_other)
    return (anchor_len + face_len) / 2.0 - min_overlap


def _axis_overlap(half_len, offset, width, stride, anchor_len):
    """Overlap lengths ``[n, width]`` of faces with ``width`` consecutive anchors on one axis.

    A face spans ``[-half_len, half_len]`` around its centre; ``offset`` is the
    centre of its first anchor minus the face centre.
    """
    centres = offset[:, None] + np.arange(width) * float(stride)
    overlap = (np.minimum(half_len[:, None], centres + anchor_len / 2.0)
               - np.maximum(-half_len[:, None], centres - anchor_len / 2.0))
    return np.maximum(overlap, 0.0)


def _index_range(centre, radius, stride, num_cells):
    """First grid index and number of cells whose anchor centre is within ``radius``."""
    eps = 1e-9
    first = np.maximum(np.ceil((centre - radius) / stride - 0.5 - eps), 0).astype(np.int64)
    last = np.floor((centre + radius) / stride - 0.5 + eps).astype(np.int64)
    if num_cells is not None:
        last = np.minimum(last, num_cells - 1)
    return first, np.maximum(last - first + 1, 0)


class _Faces:
    """Centres, sizes and areas of the faces, computed once for all anchor shapes."""

    def __init__(self, boxes):
        self.cx = (boxes[:, 0] + boxes[:, 2]) / 2.0
        self.cy = (boxes[:, 1] + boxes[:, 3]) / 2.0
        self.w = boxes[:, 2] - boxes[:, 0]
        self.h = boxes[:, 3] - boxes[:, 1]
        self.area = self.w * self.h


def _count_level(faces, anchor_w, anchor_h, stride, iou_thr, grid_cells):
    """Anchors of one shape on one level with IoU >= iou_thr, per face: ``int64 [N]``."""
    counts = np.zeros(len(faces.area), dtype=np.int64)
    anchor_area = anchor_w * anchor_h
    possible = (np.minimum(faces.area, anchor_area)
                >= iou_thr * np.maximum(faces.area, anchor_area))
    idx = np.flatnonzero(possible)
    rx = _centre_radius(anchor_w, faces.w[idx], anchor_h, faces.h[idx], anchor_area,
                        faces.area[idx], iou_thr)
    ry = _centre_radius(anchor_h, faces.h[idx], anchor_w, faces.w[idx], anchor_area,
                        faces.area[idx], iou_thr)
    keep = (rx >= 0) & (ry >= 0)
    idx, rx, ry = idx[keep], rx[keep], ry[keep]
    if len(idx) == 0:
        return counts
    cells_y, cells_x = grid_cells if grid_cells is not None else (None, None)
    cx, cy = faces.cx[idx], faces.cy[idx]
    x0, nx = _index_range(cx, rx, stride, cells_x)
    y0, ny = _index_range(cy, ry, stride, cells_y)
    off_x = (x0 + 0.5) * stride - cx
    off_y = (y0 + 0.5) * stride - cy
    half_w, half_h = faces.w[idx] / 2.0, faces.h[idx] / 2.0
    # inter / (Aa + Af - inter) >= t  <=>  inter >= t (Aa + Af) / (1 + t)
    min_inter = iou_thr * (anchor_area + faces.area[idx]) / (1.0 + iou_thr)
    # Faces with the same window size are done together: no padding, no masks.
    key = nx * (int(ny.max()) + 1) + ny
    order = np.argsort(key, kind='stable')
    bounds = np.flatnonzero(np.diff(key[order])) + 1
    for group in np.split(order, bounds):
        width, height = int(nx[group[0]]), int(ny[group[0]])
        if width == 0 or height == 0:
            continue
        chunk = max(1, _CHUNK_CELLS // (width * height))
        for start in range(0, len(group), chunk):
            g = group[start:start + chunk]
            ox = _axis_overlap(half_w[g], off_x[g], width, stride, anchor_w)
            oy = _axis_overlap(half_h[g], off_y[g], height, stride, anchor_h)
            inter = oy[:, :, None] * ox[:, None, :]
            counts[idx[g]] = np.count_nonzero(inter >= min_inter[g][:, None, None], axis=(1, 2))
    return counts


def match_counts(boxes, anchor_wh, strides=DEFAULT_STRIDES, iou_thr=0.35, image_shape=None):
    """Number of anchors with IoU >= ``iou_thr`` for each face.

    boxes: ``[N, 4]`` x1y1x2y2 with positive width and height.
    anchor_wh: per level, ``[K, 2]`` anchor widths and heights (:func:`anchor_shapes`).
    image_shape: ``(h, w)``, or one ``(h, w)`` per face ``[N, 2]``, to keep only
    the grid cells of an image of that size (``ceil(side / stride)`` cells per
    side); None for an unbounded grid.
    Returns ``int64 [N]``.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(anchor_wh) != len(strides):
        raise ValueError('{} anchor levels but {} strides'.format(len(anchor_wh), len(strides)))
    if len(boxes) and not ((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])).all():
        raise ValueError('match_counts needs boxes of positive width and height')
    if image_shape is not None and np.ndim(image_shape) == 2:
        shapes = np.asarray(image_shape, dtype=np.int64)
        if shapes.shape != (len(boxes), 2):
            raise ValueError('image_shape per face must be [{}, 2], got {}'.format(
                len(boxes), shapes.shape))
        counts = np.zeros(len(boxes), dtype=np.int64)
        unique, group = np.unique(shapes, axis=0, return_inverse=True)
        for g, shape in enumerate(unique):
            members = np.flatnonzero(group.reshape(-1) == g)
            counts[members] = match_counts(boxes[members], anchor_wh, strides, iou_thr, tuple(shape))
        return counts
    faces = _Faces(boxes)
    counts = np.zeros(len(boxes), dtype=np.int64)
    for shapes, stride in zip(anchor_wh, strides):
        grid = None
        if image_shape is not None:
            grid = (math.ceil(image_shape[0] / stride), math.ceil(image_shape[1] / stride))
        for anchor_w, anchor_h in np.asarray(shapes, dtype=np.float64).reshape(-1, 2):
            counts += _count_level(faces, anchor_w, anchor_h, stride, iou_thr, grid)
    return counts


def summarize(counts):
    """Fraction of faces with at least one anchor, anchors per matched face, per face."""
    counts = np.asarray(counts)
    matched = counts > 0
    return {
        'matched': float(matched.mean()) if len(counts) else 0.0,
        'anchors_per_matched_face': float(counts[matched].mean()) if matched.any() else 0.0,
        'anchors_per_face': float(counts.mean()) if len(counts) else 0.0,
    }


def sweep(boxes, ratios, designs=DESIGNS, sizes=DEFAULT_SIZES, strides=DEFAULT_STRIDES,
          iou_thr=0.35, image_shape=None):
    """Statistics per design and anchor-scale ratio: ``{design: [{'ratio', 'matched', ...}]}``."""
    result = {}
    for design in designs:
        rows = []
        for ratio in ratios:
            counts = match_counts(boxes, anchor_shapes(design, ratio, sizes), strides, iou_thr,
                                  image_shape)
            rows.append(dict(ratio=float(ratio), num_faces=int(len(counts)), **summarize(counts)))
        result[design] = rows
    return result
