"""Slow, literal references of the matching strategies (docs/method.md).

Plain Python loops over faces and anchors, written from the text and not
from the fast code, one image at a time. Thresholds are compared in float32
(like the fast code does) and the IoU is computed with the same arithmetic
as ``bbox_iou``, so both see the same numbers and ties.
"""
import numpy as np

F32 = np.float32


def iou_matrix(faces, boxes):
    """IoU [G, A] in float32, same operations in the same order as bbox_iou."""
    faces = np.asarray(faces, F32).reshape(-1, 4)[:, None, :]
    boxes = np.asarray(boxes, F32).reshape(-1, 4)[None, :, :]
    iw = np.maximum(np.minimum(faces[..., 2], boxes[..., 2]) - np.maximum(faces[..., 0], boxes[..., 0]), F32(0))
    ih = np.maximum(np.minimum(faces[..., 3], boxes[..., 3]) - np.maximum(faces[..., 1], boxes[..., 1]), F32(0))
    inter = iw * ih
    area_f = np.maximum(faces[..., 2] - faces[..., 0], F32(0)) * np.maximum(faces[..., 3] - faces[..., 1], F32(0))
    area_b = np.maximum(boxes[..., 2] - boxes[..., 0], F32(0)) * np.maximum(boxes[..., 3] - boxes[..., 1], F32(0))
    union = area_f + area_b - inter
    return inter / np.maximum(union, F32(1e-10))


def sms_reference(anchors, faces, pos_iou=0.35):
    """Each anchor takes the face of highest IoU (ties: lower face index);
    positive when that IoU >= pos_iou, else background."""
    iou = iou_matrix(faces, anchors)
    num_faces, num_anchors = iou.shape
    labels = [0] * num_anchors
    gt_index = [-1] * num_anchors
    for a in range(num_anchors):
        best, best_face = None, -1
        for g in range(num_faces):
            if best is None or iou[g, a] > best:
                best, best_face = iou[g, a], g
        if best is not None and best >= F32(pos_iou):
            labels[a] = 1
            gt_index[a] = best_face
    return labels, gt_index


def _positives_per_face(labels, gt_index, num_faces):
    counts = [0] * num_faces
    for label, face in zip(labels, gt_index):
        if label == 1:
            counts[face] += 1
    return counts


def _quality(labels, gt_index, iou):
    out = []
    for a in range(len(labels)):
        if labels[a] in (1, 2):
            out.append(float(iou[gt_index[a], a]))
        elif iou.shape[0] == 0:
            out.append(0.0)
        else:
            out.append(max(0.0, max(float(iou[g, a]) for g in range(iou.shape[0]))))
    return out


def _result(labels, gt_index, quality):
    return dict(labels=np.array(labels, dtype='int64'), gt_index=np.array(gt_index, dtype='int64'),
                quality=np.array(quality, dtype='float32'))


def _quality_iou(anchors, faces, pred_boxes):
    return iou_matrix(faces, anchors if pred_boxes is None else pred_boxes)


def sms_ref(anchors, faces, pos_iou=0.35, pred_boxes=None):
    labels, gt_index = sms_reference(anchors, faces, pos_iou)
    return _result(labels, gt_index, _quality(labels, gt_index, _quality_iou(anchors, faces, pred_boxes)))


def _take_in_order(face, wanted, iou_row, labels, gt_index, threshold, new_label):
    """Walk all anchors by IoU with this face, highest first (ties: lower
    anchor index), skip anchors already positive or compensated, take those
    with IoU > threshold until ``wanted`` are taken."""
    ranked = sorted(range(len(iou_row)), key=lambda a: (-float(iou_row[a]), a))
    taken = 0
    for a in ranked:
        if taken == wanted:
            break
        if labels[a] != 0:
            continue
        if not iou_row[a] > F32(threshold):
            break
        labels[a] = new_label
        gt_index[a] = face
        taken += 1


def dms_ref(anchors, faces, pos_iou=0.35, pred_boxes=None):
    """SMS, then each face without a positive (in annotation order) takes its
    highest-IoU anchor that is not yet positive, if it overlaps at all."""
    labels, gt_index = sms_reference(anchors, faces, pos_iou)
    iou = iou_matrix(faces, anchors)
    counts = _positives_per_face(labels, gt_index, len(iou))
    for face in range(len(iou)):
        if counts[face] == 0:
            _take_in_order(face, 1, iou[face], labels, gt_index, 0.0, 1)
    return _result(labels, gt_index, _quality(labels, gt_index, _quality_iou(anchors, faces, pred_boxes)))


def nams_ref(anchors, faces, pos_iou=0.35, cand_iou=0.1, pred_boxes=None):
    """SMS, then N = mean positives per face (rounded half up); faces with
    fewer than N get anchors with IoU > cand_iou, highest first, up to N."""
    labels, gt_index = sms_reference(anchors, faces, pos_iou)
    iou = iou_matrix(faces, anchors)
    counts = _positives_per_face(labels, gt_index, len(iou))
    if counts:
        total = sum(counts)
        target = (2 * total + len(counts)) // (2 * len(counts))
        for face in range(len(iou)):
            if counts[face] < target:
                _take_in_order(face, target - counts[face], iou[face], labels, gt_index, cand_iou, 1)
    return _result(labels, gt_index, _quality(labels, gt_index, _quality_iou(anchors, faces, pred_boxes)))


def hambox_ref(anchors, pred_boxes, faces, pos_iou=0.35, K=3, T=0.8, ignore_iou=0.5):
    """Algorithm 1 as docs/method.md words it."""
    # 1. first step = SMS; D[i] = positives of face i
    labels, gt_index = sms_reference(anchors, faces, pos_iou)
    online_iou = iou_matrix(faces, pred_boxes)
    num_faces = online_iou.shape[0]
    D = _positives_per_face(labels, gt_index, num_faces)
    # 2. outer faces in annotation order
    for i in range(num_faces):
        if D[i] >= K:
            continue
        compensated_number = K - D[i]
        ranked = sorted(range(len(labels)), key=lambda a: (-float(online_iou[i, a]), a))
        for a in ranked:
            if labels[a] == 1 or labels[a] == 2:
                continue
            if not online_iou[i, a] > F32(T):
                break
            labels[a] = 2
            gt_index[a] = i
            compensated_number -= 1
            if compensated_number == 0:
                break
    # 3. ignore: still background, decoded box IoU >= ignore_iou with some face
    for a in range(len(labels)):
        if labels[a] == 0 and any(online_iou[g, a] >= F32(ignore_iou) for g in range(num_faces)):
            labels[a] = -1
    return _result(labels, gt_index, _quality(labels, gt_index, online_iou))
