"""Test helpers: images whose faces are drawn as filled rectangles of
distinct colours, written in the WIDER FACE layout."""
import os

import cv2
import numpy as np

BACKGROUND = (128, 128, 128)
COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255), (0, 255, 255),
           (255, 128, 0), (0, 128, 255)]


def draw_faces(height, width, boxes, colours=COLOURS):
    """uint8 BGR image with box i (x1 y1 x2 y2, integers) filled with colours[i]."""
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[...] = BACKGROUND
    for (x1, y1, x2, y2), colour in zip(np.asarray(boxes, dtype=int), colours):
        image[y1:y2, x1:x2] = colour
    return image


def colour_extent(image, colour, tolerance=60):
    """(x1, y1, x2, y2) of the pixels within ``tolerance`` of ``colour``, or None."""
    mask = np.abs(image.astype(np.int16) - np.array(colour, dtype=np.int16)).max(axis=2) < tolerance
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float32)


def write_wider_set(root, images, event='0--Parade'):
    """Write ``[(image array or None for a missing file, boxes xyxy, invalid flags)]``
    as ``root/images/<event>/img_<i>.png`` and ``root/gt.txt``; returns the
    relative paths."""
    folder = os.path.join(root, 'images', event)
    os.makedirs(folder, exist_ok=True)
    lines, paths = [], []
    for i, (image, boxes, invalid) in enumerate(images):
        rel = '{}/img_{}.png'.format(event, i)
        paths.append(rel)
        if image is not None:
            cv2.imwrite(os.path.join(root, 'images', rel), image)
        lines += [rel, str(len(boxes))]
        for (x1, y1, x2, y2), flag in zip(np.asarray(boxes, dtype=int).reshape(-1, 4), invalid):
            lines.append('{} {} {} {} 0 0 0 {} 0 0 '.format(x1, y1, x2 - x1, y2 - y1, int(flag)))
        if len(boxes) == 0:
            lines.append('0 0 0 0 0 0 0 0 0 0 ')
    with open(os.path.join(root, 'gt.txt'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return paths


def random_face_image(rng, height, width, num_faces):
    """A drawn image with up to ``num_faces`` non-overlapping faces of random sizes."""
    boxes = []
    for _ in range(200):
        if len(boxes) == num_faces:
            break
        size = int(rng.integers(6, max(7, min(height, width) // 2)))
        x1, y1 = int(rng.integers(0, width - size)), int(rng.integers(0, height - size))
        box = (x1, y1, x1 + size, y1 + int(size * rng.uniform(0.8, 1.25)))
        if box[3] <= height and all(box[2] + 2 < b[0] or b[2] + 2 < box[0] or box[3] + 2 < b[1]
                                    or b[3] + 2 < box[1] for b in boxes):
            boxes.append(box)
    boxes = np.array(boxes, dtype=np.float32).reshape(-1, 4)
    return draw_faces(height, width, boxes), boxes
