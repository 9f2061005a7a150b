"""The WIDER FACE test protocols: which scales an image is run at, with which
NMS, and how the detections of several passes are merged (box voting).

Protocols (``TestProtocol``, numbers from the config section of that name):

- ``vga``: one pass, the image resized, ratio kept, to the largest size that
  fits a VGA frame in its own orientation: ``s = min(640 / long_side,
  480 / short_side)`` (``vga_size: [640, 480]``), so a landscape image fits
  640x480 and a portrait one 480x640; small images are enlarged.
- ``original``: one pass at the original size, shrunk only when the longest
  side exceeds ``original_max_side``: ``s = min(1, max_side / long_side)``.
- ``multiscale``: SFD style. ``s_max = sqrt(ms_max_pixels / (h * w))``
  bounds every pass (memory). Passes at ``min(s, s_max)`` for each ``s`` in
  ``ms_scales`` (a capped scale equal to an earlier one is run once) and
  horizontally flipped passes at ``min(s, s_max)`` for ``ms_flip_scales``.
  A pass whose requested scale is below 1 keeps only boxes whose longer side
  (original pixels) is at least ``ms_small_scale_min_face`` (shrunk images
  find big faces); one above 1 keeps only boxes whose longer side is at most
  ``ms_large_scale_max_face`` (enlarged images find small faces). All boxes
  are then merged by ``box_voting`` (``vote_min_count``: 1 keeps single-box
  clusters).
- ``pyramidbox``: the ladder of PyramidBox's PaddlePaddle WIDER FACE
  evaluation. ``m``, the largest scale, is ``sqrt(pb_max_pixels / (h * w))``
  cut to two decimals, minus ``pb_scale_margin``, minus the extra margin of
  ``pb_scale_extra_margins`` (``[from, margin]`` rows: the last row whose
  ``from`` is <= the value applies). Passes: the image at ``min(m, 1)`` and
  flipped at that scale (no size window); the shrunk pass at
  ``pb_shrink_scale`` (times ``m`` when ``m < pb_shrink_full_from``); the
  enlarged pass at ``min(pb_enlarge_scale, m)`` (when ``m <= 1``
  halfway between the shrunk pass and ``m``), and beyond 2 doubling passes
  up to ``m`` and one at ``m``; the pyramid ``pb_pyramid_scales``, the first
  always, the others only up to ``m``. A pass below 1 keeps boxes whose
  longer side is at least ``pb_small_scale_min_face``; a pass above 1 boxes
  whose *shorter* side is at most ``pb_large_scale_max_face``. Each pass runs
  its own NMS (``pb_nms_threshold``, ``pb_keep_top_k``); the merge drops
  clusters of fewer than ``pb_vote_min_count`` boxes.

The score threshold, NMS threshold and keep-top of a pass follow the
protocol: the single-pass protocols (``vga``, ``original``) keep the model's
own (``HAMBoxPostProcess``, the ones the exported model bakes in, so they
give deployment-like numbers); every ``multiscale`` and ``pyramidbox`` pass
is cut at ``ms_score_threshold`` (PyramidBox keeps its passes down to 0.01:
low-scored boxes of one pass still vote for, and extend the precision-recall
curve of, the merged result); ``multiscale`` keeps the model's NMS unless
``ms_nms_threshold`` / ``ms_keep_top_k`` are set. Neither merge thresholds
again.
"""
import math
from dataclasses import dataclass

import numpy as np
import paddle

from ppdet_hambox.core.schema import COUNT, NON_NEGATIVE, POSITIVE, PROBABILITY
from ppdet_hambox.core.workspace import register

__all__ = ['TestProtocol', 'ScalePass', 'PROTOCOLS', 'box_voting', 'iou_matrix', 'flip_boxes',
           'scale_image']

PROTOCOLS = ('vga', 'original', 'multiscale', 'pyramidbox')
SINGLE_PASS = ('vga', 'original')


@dataclass(frozen=True)
class ScalePass:
    """One network pass: the resize factor, whether the image is mirrored,
    the face-size window kept from it (original pixels: the longer side at
    least ``min_face``; the ``max_face_side`` side, ``long`` or ``short``, at
    most ``max_face``), and its post-process settings (None: the model's
    ``HAMBoxPostProcess`` value)."""
    scale: float
    flip: bool = False
    min_face: float = 0.0
    max_face: float = math.inf
    score_threshold: float = None
    max_face_side: str = 'long'
    nms_threshold: float = None
    keep_top_k: int = None


@register
class TestProtocol:
    """Numbers of the test protocols (see the module docstring)."""
    __ranges__ = {
        'original_max_side': COUNT, 'ms_max_pixels': COUNT, 'ms_small_scale_min_face': NON_NEGATIVE,
        'ms_large_scale_max_face': NON_NEGATIVE, 'vote_iou': PROBABILITY, 'vote_min_count': COUNT,
        'vote_top_k': COUNT, 'ms_score_threshold': PROBABILITY, 'pb_max_pixels': COUNT,
        'pb_scale_margin': NON_NEGATIVE, 'pb_shrink_scale': POSITIVE, 'pb_shrink_full_from': PROBABILITY,
        'pb_enlarge_scale': POSITIVE, 'pb_small_scale_min_face': NON_NEGATIVE,
        'pb_large_scale_max_face': NON_NEGATIVE, 'pb_nms_threshold': PROBABILITY, 'pb_keep_top_k': COUNT,
        'pb_vote_min_count': COUNT
    }

    def __init__(self,
                 vga_size=[640, 480],
                 original_max_side=1600,
                 ms_max_pixels=2800000,
                 ms_scales=[0.5, 1.0, 1.5, 2.0],
                 ms_flip_scales=[1.0],
                 ms_small_scale_min_face=30.0,
                 ms_large_scale_max_face=100.0,
                 vote_iou=0.3,
                 vote_min_count=1,
                 vote_top_k=750,
                 ms_score_threshold=0.01,
                 ms_nms_threshold=None,
                 ms_keep_top_k=None,
                 pb_max_pixels=2777088,
                 pb_scale_margin=0.3,
                 pb_scale_extra_margins=[[1.5, 0.1], [2.0, 0.2], [3.0, 0.3], [4.0, 0.4], [5.0, 0.5]],
                 pb_shrink_scale=0.5,
                 pb_shrink_full_from=0.75,
                 pb_enlarge_scale=2.0,
                 pb_pyramid_scales=[0.25, 0.75, 1.25, 1.5, 1.75],
                 pb_small_scale_min_face=30.0,
                 pb_large_scale_max_face=100.0,
                 pb_nms_threshold=0.3,
                 pb_keep_top_k=750,
                 pb_vote_min_count=2):
        if len(vga_size) != 2 or min(vga_size) <= 0:
            raise ValueError('TestProtocol.vga_size must be [long, short] > 0, got {!r}'.format(vga_size))
        if not ms_scales or min(ms_scales) <= 0:
            raise ValueError('TestProtocol.ms_scales must be positive scales, got {!r}'.format(ms_scales))
        if not 0.0 <= ms_score_threshold < 1.0:
            raise ValueError('TestProtocol.ms_score_threshold must be in [0, 1), got {!r}'.format(
                ms_score_threshold))
        self.vga_long, self.vga_short = max(vga_size), min(vga_size)
        self.original_max_side = original_max_side
        self.ms_max_pixels = ms_max_pixels
        self.ms_scales = list(ms_scales)
        self.ms_flip_scales = list(ms_flip_scales)
        self.ms_small_scale_min_face = ms_small_scale_min_face
        self.ms_large_scale_max_face = ms_large_scale_max_face
        self.vote_iou = vote_iou
        self.vote_min_count = vote_min_count
        self.vote_top_k = vote_top_k
        self.ms_score_threshold = float(ms_score_threshold)
        self.ms_nms_threshold = ms_nms_threshold
        self.ms_keep_top_k = ms_keep_top_k
        self.pb_max_pixels = pb_max_pixels
        self.pb_scale_margin = pb_scale_margin
        self.pb_scale_extra_margins = sorted(tuple(row) for row in pb_scale_extra_margins)
        self.pb_shrink_scale = pb_shrink_scale
        self.pb_shrink_full_from = pb_shrink_full_from
        self.pb_enlarge_scale = pb_enlarge_scale
        self.pb_pyramid_scales = list(pb_pyramid_scales)
        self.pb_small_scale_min_face = pb_small_scale_min_face
        self.pb_large_scale_max_face = pb_large_scale_max_face
        self.pb_nms_threshold = pb_nms_threshold
        self.pb_keep_top_k = pb_keep_top_k
        self.pb_vote_min_count = pb_vote_min_count

    def passes(self, protocol, height, width):
        """The ``ScalePass`` list for an image of ``height`` x ``width`` pixels."""
        if protocol == 'vga':
            long_side, short_side = max(height, width), min(height, width)
            return [ScalePass(min(self.vga_long / long_side, self.vga_short / short_side))]
        if protocol == 'original':
            return [ScalePass(min(1.0, self.original_max_side / max(height, width)))]
        if protocol == 'multiscale':
            return self._multiscale_passes(height, width)
        if protocol == 'pyramidbox':
            return self._pyramidbox_passes(height, width)
        raise ValueError('unknown test protocol {!r}; choose one of {}'.format(protocol, ', '.join(PROTOCOLS)))

    def _multiscale_passes(self, height, width):
        s_max = math.sqrt(self.ms_max_pixels / float(height * width))
        passes, seen = [], set()
        requests = [(s, False) for s in self.ms_scales] + [(s, True) for s in self.ms_flip_scales]
        # Nearest to 1 first: when capping makes two scales equal, the pass
        # kept is the one with the widest face-size window.
        for requested, flip in sorted(requests, key=lambda r: abs(math.log(r[0]))):
            scale = min(requested, s_max)
            key = (round(scale, 6), flip)
            if key in seen:
                continue
            seen.add(key)
            min_face = self.ms_small_scale_min_face if requested < 1 else 0.0
            max_face = self.ms_large_scale_max_face if requested > 1 else math.inf
            passes.append(ScalePass(scale, flip, min_face, max_face, self.ms_score_threshold,
                                    nms_threshold=self.ms_nms_threshold, keep_top_k=self.ms_keep_top_k))
        return passes

    def pyramidbox_max_scale(self, height, width):
        """PyramidBox's largest scale ``m`` for an image (see the module docstring)."""
        value = math.floor(math.sqrt(self.pb_max_pixels / float(height * width)) * 100) / 100
        value -= self.pb_scale_margin
        extra = [margin for start, margin in self.pb_scale_extra_margins if value >= start]
        return value - (extra[-1] if extra else 0.0)

    def _pyramidbox_passes(self, height, width):
        m = self.pyramidbox_max_scale(height, width)
        shrink = self.pb_shrink_scale * (1.0 if m >= self.pb_shrink_full_from else m)
        if m > 1:
            enlarge = [min(self.pb_enlarge_scale, m)]
            while m > self.pb_enlarge_scale and enlarge[-1] * 2 < m:
                enlarge.append(enlarge[-1] * 2)
            enlarge += [m] if m > self.pb_enlarge_scale else []
        else:
            enlarge = [(shrink + m) / 2]
        pyramid = self.pb_pyramid_scales[:1] + [s for s in self.pb_pyramid_scales[1:] if s <= m]
        # The enlarged passes share one window: small faces when m > 1 (they
        # enlarge), big faces otherwise (the "enlarged" pass then shrinks too).
        # PyramidBox's order (it decides which of equal-scored boxes heads a vote cluster).
        windows = [(shrink, shrink)] + [(s, m) for s in enlarge] + [(s, s) for s in pyramid]
        passes = [self._pb_pass(min(m, 1.0), False, None), self._pb_pass(min(m, 1.0), True, None)]
        passes += [self._pb_pass(scale, False, window) for scale, window in windows]
        return [p for p in passes if p.scale > 0]   # m <= 0 only for images of tens of megapixels

    def _pb_pass(self, scale, flip, window):
        """A ``pyramidbox`` pass; ``window`` > 1: small faces only, < 1: big faces only, None: all."""
        min_face = self.pb_small_scale_min_face if window is not None and window <= 1 else 0.0
        max_face = self.pb_large_scale_max_face if window is not None and window > 1 else math.inf
        return ScalePass(scale, flip, min_face, max_face, self.ms_score_threshold, max_face_side='short',
                         nms_threshold=self.pb_nms_threshold, keep_top_k=self.pb_keep_top_k)

    def merge(self, protocol, detections):
        """Merge the per-pass detections (``[N, 5]`` x1 y1 x2 y2 score, original
        pixels): a single pass is kept as it is, several are box-voted."""
        if len(detections) == 1 and protocol in SINGLE_PASS:
            return detections[0]
        merged = np.concatenate(detections, axis=0) if detections else np.zeros((0, 5), np.float32)
        min_count = self.pb_vote_min_count if protocol == 'pyramidbox' else self.vote_min_count
        return box_voting(merged, self.vote_iou, min_count, self.vote_top_k)


def scale_image(image, scale, interpolation=None):
    """Resize an ``[H, W, C]`` image by ``scale`` (sizes rounded, at least 1
    pixel); returns the image and the exact ``(scale_y, scale_x)`` applied."""
    import cv2
    height, width = image.shape[:2]
    new_h, new_w = max(1, int(round(height * scale))), max(1, int(round(width * scale)))
    if (new_h, new_w) != (height, width):
        image = cv2.resize(image, (new_w, new_h),
                           interpolation=cv2.INTER_LINEAR if interpolation is None else interpolation)
    return image, np.array([new_h / height, new_w / width], dtype=np.float32)


def flip_boxes(boxes, width):
    """Mirror x1 y1 x2 y2 boxes (continuous coordinates) in an image ``width`` wide."""
    out = boxes.copy()
    out[:, 0] = width - boxes[:, 2]
    out[:, 2] = width - boxes[:, 0]
    return out


def filter_face_size(dets, min_face, max_face, max_face_side='long'):
    """Keep detections whose longer side is at least ``min_face`` and whose
    ``max_face_side`` (``long`` or ``short``) side is at most ``max_face``."""
    width, height = dets[:, 2] - dets[:, 0], dets[:, 3] - dets[:, 1]
    long_side = np.maximum(width, height)
    capped = long_side if max_face_side == 'long' else np.minimum(width, height)
    return dets[(long_side >= min_face) & (capped <= max_face)]


def iou_matrix(a, b):
    """IoU of boxes ``a [N, 4]`` with ``b [M, 4]`` (x1 y1 x2 y2, no ``+1``) -> ``[N, M]``."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:4], b[None, :, 2:4])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def box_voting(dets, iou_threshold=0.3, min_count=1, top_k=750, score_threshold=0.0):
    """Merge overlapping detections by score-weighted voting (SFD/PyramidBox).

    ``dets`` ``[N, 5]`` (x1 y1 x2 y2 score). Clusters are those of greedy NMS:
    in score order, each box not yet taken heads a cluster of the remaining
    boxes with IoU > ``iou_threshold`` with it; that is, a box belongs to the
    first NMS-kept box (by score) it overlaps by more than the threshold. A
    cluster becomes one box: the score-weighted mean of its members' corners,
    with the highest member score. Clusters of fewer than ``min_count`` boxes
    are dropped; at most ``top_k`` boxes are returned, by score.
    """
    dets = np.asarray(dets, dtype=np.float32).reshape(-1, 5)
    dets = dets[dets[:, 4] >= score_threshold]
    if len(dets) == 0:
        return np.zeros((0, 5), np.float32)
    dets = dets[np.argsort(-dets[:, 4], kind='stable')]
    heads = paddle.vision.ops.nms(paddle.to_tensor(dets[:, :4]), iou_threshold).numpy()
    heads = np.sort(heads)
    member = iou_matrix(dets[heads, :4], dets[:, :4]) > iou_threshold
    member[:, heads] = np.eye(len(heads), dtype=bool)
    # A box the NMS kernel suppressed but our IoU does not attach (float
    # rounding at the threshold) forms its own cluster rather than vanish.
    orphan = ~member.any(axis=0)
    cluster = np.where(orphan, len(heads) + np.cumsum(orphan) - 1, member.argmax(axis=0))
    num_clusters = len(heads) + int(orphan.sum())
    weights = np.maximum(dets[:, 4].astype(np.float64), 1e-12)
    weight_sum = np.bincount(cluster, weights=weights, minlength=num_clusters)
    corners = np.stack([np.bincount(cluster, weights=weights * dets[:, k], minlength=num_clusters)
                        for k in range(4)], axis=1) / weight_sum[:, None]
    best = np.full(num_clusters, -np.inf)
    np.maximum.at(best, cluster, dets[:, 4])
    count = np.bincount(cluster, minlength=num_clusters)
    merged = np.concatenate([corners, best[:, None]], axis=1).astype(np.float32)
    merged = merged[count >= min_count]
    merged = merged[np.argsort(-merged[:, 4], kind='stable')]
    return merged[:top_k]
