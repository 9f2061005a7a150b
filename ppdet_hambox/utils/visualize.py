"""Drawing detections on images (OpenCV) and their JSON form."""
import cv2
import numpy as np

__all__ = ['draw_detections', 'detections_to_records']

BOX_COLOR = (0, 255, 0)      # BGR
TEXT_COLOR = (0, 0, 0)


def draw_detections(image, dets, threshold=0.5, color=BOX_COLOR, thickness=None):
    """A copy of the BGR ``image`` with every detection of ``dets`` ``[N, 5]``
    (x1 y1 x2 y2 score) scoring at least ``threshold`` boxed and labelled
    with its score. Line width and font grow with the image size."""
    out = np.ascontiguousarray(image).copy()
    dets = np.asarray(dets, dtype=np.float32).reshape(-1, 5)
    dets = dets[dets[:, 4] >= threshold]
    thickness = thickness or max(1, int(round(max(out.shape[:2]) / 500)))
    font_scale = 0.35 * thickness
    corners = np.round(dets[:, :4]).astype(int).tolist()
    for (x1, y1, x2, y2), score in zip(corners, dets[:, 4].tolist()):
        p1, p2 = (x1, y1), (x2, y2)
        cv2.rectangle(out, p1, p2, color, thickness)
        label = '{:.2f}'.format(score)
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        top = max(p1[1] - th - base, 0)
        cv2.rectangle(out, (p1[0], top), (p1[0] + tw, top + th + base), color, -1)
        cv2.putText(out, label, (p1[0], top + th), cv2.FONT_HERSHEY_SIMPLEX, font_scale, TEXT_COLOR, 1,
                    cv2.LINE_AA)
    return out


def detections_to_records(dets, threshold=0.0, im_file=None):
    """``[{'bbox': [x, y, w, h], 'score': s}]`` (pixels, ``im_file`` added when
    given) for detections scoring at least ``threshold``."""
    dets = np.asarray(dets, dtype=np.float64).reshape(-1, 5)
    dets = dets[dets[:, 4] >= threshold]
    records = []
    for x1, y1, x2, y2, score in dets.tolist():
        record = {'bbox': [x1, y1, x2 - x1, y2 - y1], 'score': score}
        if im_file is not None:
            record['im_file'] = im_file
        records.append(record)
    return records
