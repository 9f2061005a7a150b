"""Batched, vectorised building blocks shared by the anchor assigners.

Shapes: ``B`` images, ``A`` anchors, ``G`` (padded) faces. Padded faces are
turned into empty boxes first: an empty box has IoU exactly 0 with
everything, so it can never pass a positive threshold (all are > 0) and the
big IoU matrix needs no masking pass.

Bounded memory, one rule for every device: the ``[B, A, G]`` IoU matrices
are never built whole. ``scan_iou`` walks the anchors in tiles of ``a``
anchors, ``a`` the largest count whose ``[B, a, G]`` float32 temporaries fit
in ``tile_bytes`` (at least one anchor), and keeps only what the assigners
need (per-anchor best IoU and face, and the few (anchor, face) pairs above a
threshold). Every tile computes exactly what the whole matrix would hold for
its anchors, so the result does not depend on the tiling. The default,
``DEFAULT_TILE_BYTES`` (1 MiB, the tile size measured fastest on CPU, where
small buffers are reused by the allocator instead of page-faulted in), keeps
the whole scan's temporaries in a few MiB; a GPU may run faster with a larger
budget (``tile_bytes`` of each assigner).
"""
import paddle

from ppdet_hambox.modeling.box_coder import aligned_iou

__all__ = ['empty_padding', 'anchor_tiles', 'scan_iou', 'count_per_face', 'serial_compensate',
           'combine_labels', 'assigned_quality', 'check_tile_bytes', 'DEFAULT_TILE_BYTES']

DEFAULT_TILE_BYTES = 1 << 20
FLOAT_BYTES = 4


def check_tile_bytes(owner, value):
    """``value`` as a positive int, else a clear error naming ``owner.tile_bytes``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError('{}.tile_bytes must be a positive integer (bytes), got {!r}'.format(owner, value))
    return value


def empty_padding(gt_bbox, valid):
    """``gt_bbox`` with padded faces replaced by the empty box (0, 0, 0, 0)."""
    return gt_bbox * valid.unsqueeze(-1).astype(gt_bbox.dtype)


def anchor_tiles(batch, num_anchors, num_faces, tile_bytes=DEFAULT_TILE_BYTES):
    """``[(start, end)]`` anchor ranges covering ``num_anchors``, each the
    most anchors whose ``[batch, end - start, num_faces]`` float32 matrix
    fits in ``tile_bytes`` (at least one anchor per tile)."""
    step = max(1, int(tile_bytes) // max(1, batch * num_faces * FLOAT_BYTES))
    return [(start, min(start + step, num_anchors)) for start in range(0, num_anchors, step)]


def scan_iou(boxes, gt_bbox, threshold=None, with_face=False, tile_bytes=DEFAULT_TILE_BYTES):
    """One pass over the IoU of ``boxes`` (``[A, 4]`` shared or ``[B, A, 4]``)
    with the faces ``gt_bbox [B, G, 4]``, in anchor tiles (see ``anchor_tiles``).

    Returns a dict with ``best [B, A]`` (max IoU over faces, 0 without
    faces); ``face [B, A]`` (its face, ties: the lower index) if
    ``with_face``; and if ``threshold`` is given, ``pairs [P, 3]`` int64
    ``(image, anchor, face)`` with IoU > threshold, anchors ascending inside
    each (image, face), and their ``scores [P]``.
    """
    if boxes.ndim == 2:
        boxes = boxes.unsqueeze(0)
    batch, num_faces = gt_bbox.shape[0], gt_bbox.shape[1]
    num_anchors = boxes.shape[1]
    faces = gt_bbox.unsqueeze(1)  # [B, 1, G, 4]
    best, face, pairs, scores = [], [], [], []
    for start, end in anchor_tiles(batch, num_anchors, num_faces, tile_bytes):
        iou = aligned_iou(boxes[:, start:end].unsqueeze(2), faces)  # [B, a, G]
        best.append(iou.max(axis=-1))
        if with_face:
            face.append(iou.argmax(axis=-1))
        if threshold is not None:
            found = paddle.nonzero(iou > threshold)
            if found.shape[0] > 0:
                scores.append(paddle.gather_nd(iou, found))
                pairs.append(found + paddle.to_tensor([0, start, 0], dtype='int64'))
    out = dict(best=paddle.concat(best, axis=1))
    if with_face:
        out['face'] = paddle.concat(face, axis=1)
    if threshold is not None:
        out['pairs'] = paddle.concat(pairs) if pairs else paddle.zeros([0, 3], dtype='int64')
        out['scores'] = paddle.concat(scores) if scores else paddle.zeros([0], dtype=boxes.dtype)
    return out


def count_per_face(face, selected, num_faces):
    """How many anchors each face holds: ``[B, G]`` int64 from the anchor ->
    face map ``face [B, A]`` restricted to ``selected [B, A]``."""
    batch = face.shape[0]
    offset = paddle.arange(batch, dtype='int64').unsqueeze(-1) * num_faces
    keys = paddle.masked_select(face + offset, selected)
    counts = paddle.bincount(keys, minlength=batch * num_faces)
    return counts.reshape([batch, num_faces]).astype('int64')


def _segment_rank(flags, segment_start):
    """1-based running count of ``flags`` inside consecutive segments;
    ``segment_start[p]`` is the position where the segment of ``p`` begins."""
    flags = flags.astype('int64')
    running = paddle.cumsum(flags)
    before = running - flags
    return running - paddle.gather(before, segment_start)


def serial_compensate(pairs, scores, quota, blocked):
    """Give faces extra anchors exactly as a sequential greedy pass would.

    The sequential rule (HAMBox Algorithm 1, DMS and NAMS second steps):
    visit the faces in annotation order; face ``i`` walks its candidate
    anchors (the ``pairs`` of face ``i``, all above the strategy's
    threshold) by score descending, ties by the lower anchor index, skips
    ``blocked`` anchors (step-one positives) and anchors an earlier face
    already took, and takes anchors until it holds ``quota[b, i]`` of them.

    Vectorised form. Let ``x_i`` be the set face ``i`` takes. The rule is
    ``x_i = f_i(x_1 .. x_{i-1})``: face ``i`` takes its first ``quota_i``
    candidates not taken by an earlier face. We iterate
    ``x^{t+1}_i = f_i(x^t_{<i})`` for all faces at once, starting from
    ``x^0 = {}``. Face 1 depends on nothing, so it is final after one round;
    by induction face ``i`` is final as soon as every face it competes with
    (shares a candidate with, directly or through a chain of earlier faces)
    is final. So the iteration reaches the sequential answer after at most
    ``L`` rounds, ``L`` the longest chain of earlier-to-later faces that
    compete for anchors, and stays there: the sequential answer is the only
    fixed point (faces 1, 2, ... are pinned one after the other). We stop at
    the first round that changes nothing, so the result is exact, and the
    loop runs ``L + 1`` rounds. ``L`` is 1 when no two faces share a
    candidate and is bounded by the size of a cluster of heavily
    overlapping faces, not by the image's face count; each round is a few
    O(P) ops over the ``P`` (face, candidate anchor) pairs.

    Args: ``pairs [P, 3]`` (image, anchor, face) and ``scores [P]`` from
    ``scan_iou``, ``quota [B, G]`` int64, ``blocked [B, A]`` bool.
    Returns ``owner [B, A]`` (the face that took the anchor, -1 for none)
    and the number of rounds run.
    """
    batch, num_faces = quota.shape
    num_anchors = blocked.shape[1]
    owner = paddle.full([batch * num_anchors], -1, dtype='int64')
    face = pairs[:, 0] * num_faces + pairs[:, 2]
    anchor = pairs[:, 0] * num_anchors + pairs[:, 1]
    if pairs.shape[0] > 0:
        wanted = (paddle.gather(quota.flatten(), face) > 0) & ~paddle.gather(blocked.flatten(), anchor)
        face, anchor = paddle.masked_select(face, wanted), paddle.masked_select(anchor, wanted)
        scores = paddle.masked_select(scores, wanted)
    if face.shape[0] == 0:
        return owner.reshape([batch, num_anchors]), 0
    # order the pairs by (face, score descending, anchor): two stable sorts
    # (the pairs start in anchor order inside each face)
    order = paddle.argsort(-scores, stable=True)
    order = paddle.gather(order, paddle.argsort(paddle.gather(face, order), stable=True))
    face = paddle.gather(face, order)
    anchor = paddle.gather(anchor, order)
    pair_quota = paddle.gather(quota.flatten(), face)
    face_count = paddle.bincount(face, minlength=batch * num_faces)
    face_start = paddle.gather(paddle.cumsum(face_count) - face_count, face)
    # the same pairs ordered by (anchor, face): who came first for an anchor
    by_anchor = paddle.argsort(anchor, stable=True)
    back = paddle.argsort(by_anchor)
    anchor_sorted = paddle.gather(anchor, by_anchor)
    anchor_count = paddle.bincount(anchor_sorted, minlength=batch * num_anchors)
    anchor_start = paddle.gather(paddle.cumsum(anchor_count) - anchor_count, anchor_sorted)

    take = paddle.zeros_like(face, dtype='bool')
    rounds = 0
    max_rounds = int(face_count.astype('bool').astype('int64').sum().item()) + 1
    while rounds < max_rounds:
        rounds += 1
        took = paddle.gather(take, by_anchor)
        earlier_took = _segment_rank(took, anchor_start) - took.astype('int64')
        available = paddle.gather(earlier_took, back) == 0
        rank = _segment_rank(available, face_start)
        new_take = available & (rank <= pair_quota)
        if bool(paddle.equal_all(new_take, take)):
            break
        take = new_take
    winners = paddle.masked_select(anchor, take)
    if winners.shape[0] > 0:
        owner = paddle.scatter(owner, winners, paddle.masked_select(face, take) % num_faces)
    return owner.reshape([batch, num_anchors]), rounds


def combine_labels(positive, best_face, owner, second_label):
    """Labels and face indices from step-one positives and the anchors the
    second step gave to faces (``owner >= 0``), which get ``second_label``."""
    taken = owner >= 0
    labels = paddle.where(positive, paddle.ones_like(owner),
                          paddle.where(taken, paddle.full_like(owner, second_label), paddle.zeros_like(owner)))
    gt_index = paddle.where(positive, best_face, owner)
    return labels, gt_index


def assigned_quality(boxes, gt_bbox, gt_index, best):
    """IoU of each box (``[A, 4]`` or ``[B, A, 4]``) with its assigned face,
    else ``best`` (the best IoU over faces, 0 without faces). Computed pair by
    pair with the same arithmetic as the matrix, so it equals its entry."""
    batch, num_anchors = gt_index.shape
    index = paddle.clip(gt_index, min=0).unsqueeze(-1).expand([batch, num_anchors, 4])
    own = aligned_iou(boxes, paddle.take_along_axis(gt_bbox, index, axis=1))
    return paddle.where(gt_index >= 0, own, best)
