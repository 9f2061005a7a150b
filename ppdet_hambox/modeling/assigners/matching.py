"""Batched, vectorised building blocks shared by the anchor assigners.

Shapes: ``B`` images, ``G`` (padded) faces, ``A`` anchors. Face-anchor IoU
matrices are ``[B, G, A]`` with padded faces set to ``-1`` so that they can
never win a maximum or pass a threshold.
"""
import paddle

from ppdet_hambox.modeling.box_coder import bbox_iou

__all__ = ['face_anchor_iou', 'standard_match', 'count_per_face', 'serial_compensate',
           'combine_labels', 'assigned_quality']

PADDED_IOU = -1.0


def face_anchor_iou(boxes, gt_bbox, valid):
    """IoU ``[B, G, A]`` of faces ``gt_bbox [B, G, 4]`` with ``boxes`` (``[A, 4]``
    shared anchors or ``[B, A, 4]`` decoded boxes); padded faces get -1."""
    if boxes.ndim == 2:
        boxes = boxes.unsqueeze(0)
    iou = bbox_iou(gt_bbox, boxes)
    return paddle.where(valid.unsqueeze(-1), iou, paddle.full([], PADDED_IOU, iou.dtype))


def standard_match(iou, pos_iou):
    """SMS: every anchor takes its highest-IoU face (ties: the lower face
    index, which is what ``argmax`` returns) and is positive when that IoU is
    at least ``pos_iou``. Returns ``best_iou [B, A]``, ``best_face [B, A]``,
    ``positive [B, A]``."""
    best_iou = iou.max(axis=1)
    best_face = iou.argmax(axis=1)
    return best_iou, best_face, best_iou >= pos_iou


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


def serial_compensate(score, candidate, quota):
    """Give faces extra anchors exactly as a sequential greedy pass would.

    The sequential rule (HAMBox Algorithm 1, DMS and NAMS second steps):
    visit the faces in annotation order; face ``i`` walks its candidate
    anchors (``candidate[b, i, a]``) by ``score`` descending, ties by the
    lower anchor index, skips anchors an earlier face already took, and
    takes anchors until it holds ``quota[b, i]`` of them.

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
    candidate (the common case) and is bounded by the number of faces in a
    cluster of heavily overlapping faces, never by the image's face count as
    such; each round is a few O(P) ops over the ``P`` (face, candidate
    anchor) pairs.

    Returns ``owner [B, A]`` (the face that took the anchor, -1 for none)
    and the number of rounds run.
    """
    batch, num_faces, num_anchors = candidate.shape
    owner = paddle.full([batch * num_anchors], -1, dtype='int64')
    pairs = paddle.nonzero(candidate)  # row-major: face-major, anchor ascending
    if pairs.shape[0] == 0:
        return owner.reshape([batch, num_anchors]), 0
    face = pairs[:, 0] * num_faces + pairs[:, 1]
    anchor = pairs[:, 0] * num_anchors + pairs[:, 2]
    pair_score = paddle.gather_nd(score, pairs)
    # order the pairs by (face, score descending, anchor): two stable sorts
    order = paddle.argsort(-pair_score, stable=True)
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
    anchor_first = paddle.cumsum(anchor_count) - anchor_count
    anchor_start = paddle.gather(anchor_first, anchor_sorted)

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


def combine_labels(positive, best_face, owner, compensated_label):
    """Labels and face indices from step-one positives and compensation."""
    compensated = owner >= 0
    labels = paddle.where(positive, paddle.ones_like(owner),
                          paddle.where(compensated, paddle.full_like(owner, compensated_label),
                                       paddle.zeros_like(owner)))
    gt_index = paddle.where(positive, best_face, owner)
    return labels, gt_index


def assigned_quality(iou, gt_index):
    """IoU with the assigned face where there is one, else the best IoU over
    faces, 0 where an image has no face."""
    best = paddle.clip(iou.max(axis=1), min=0)
    own = paddle.take_along_axis(iou, paddle.clip(gt_index, min=0).unsqueeze(1), axis=1).squeeze(1)
    return paddle.where(gt_index >= 0, own, best)
