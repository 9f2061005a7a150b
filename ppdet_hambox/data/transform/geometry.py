"""Crop-and-scale of an image and its faces, shared by the crop operators.

Coordinates are continuous (a pixel ``i`` covers ``[i, i + 1)``). A mapping
is ``Affine(sx, sy, tx, ty)``: ``x' = sx * x + tx``, ``y' = sy * y + ty``.
"""
from collections import namedtuple

import cv2
import numpy as np

from ppdet_hambox.data.transform.base import face_arrays, keep_faces, set_image

__all__ = ['Affine', 'scaled_crop', 'map_boxes', 'faces_in_window', 'apply_crop', 'INTERPOLATIONS']

Affine = namedtuple('Affine', ['sx', 'sy', 'tx', 'ty'])

INTERPOLATIONS = {'linear': cv2.INTER_LINEAR, 'area': cv2.INTER_AREA, 'cubic': cv2.INTER_CUBIC,
                  'nearest': cv2.INTER_NEAREST}


def scaled_crop(image, x0, y0, scale, out_w, out_h, fill):
    """The window of ``image`` whose top-left corner is ``(x0, y0)`` (source
    pixels), scaled by ``scale``, as an ``out_h x out_w`` patch; parts outside
    the image are ``fill``. Returns ``(patch, Affine)``.

    Shrinking resizes with pixel-area averaging first (and then the exact
    scale is the rounded size over the original size); enlarging warps only
    the window, so memory stays bounded for any scale.
    """
    h, w = image.shape[:2]
    fill = tuple(float(v) for v in fill)
    if scale < 1.0:
        rw, rh = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
        small = cv2.resize(image, (rw, rh), interpolation=cv2.INTER_AREA)
        sx, sy = rw / w, rh / h
        ox, oy = int(round(x0 * sx)), int(round(y0 * sy))
        return _paste(small, ox, oy, out_w, out_h, fill), Affine(sx, sy, -ox, -oy)
    tx, ty = -x0 * scale, -y0 * scale
    shift = 0.5 * scale - 0.5  # pixel centres: i' + 0.5 = scale * (i + 0.5) + t
    matrix = np.array([[scale, 0.0, tx + shift], [0.0, scale, ty + shift]], dtype=np.float64)
    patch = cv2.warpAffine(image, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
    return patch, Affine(scale, scale, tx, ty)


def _paste(image, ox, oy, out_w, out_h, fill):
    """The ``out_h x out_w`` window of ``image`` at integer offset (ox, oy)."""
    h, w = image.shape[:2]
    patch = np.empty((out_h, out_w, image.shape[2]), dtype=image.dtype)
    patch[...] = np.asarray(fill[:image.shape[2]], dtype=image.dtype)
    sx0, sy0 = max(ox, 0), max(oy, 0)
    sx1, sy1 = min(ox + out_w, w), min(oy + out_h, h)
    if sx1 > sx0 and sy1 > sy0:
        patch[sy0 - oy:sy1 - oy, sx0 - ox:sx1 - ox] = image[sy0:sy1, sx0:sx1]
    return patch


def map_boxes(boxes, affine):
    """float32 [N, 4] boxes under an ``Affine``."""
    scale = np.array([affine.sx, affine.sy, affine.sx, affine.sy], dtype=np.float32)
    shift = np.array([affine.tx, affine.ty, affine.tx, affine.ty], dtype=np.float32)
    return boxes * scale + shift


def faces_in_window(boxes, out_w, out_h, min_size):
    """(clipped boxes, keep mask) for boxes already in window coordinates:
    a face is kept when its centre lies in the window and its clipped width
    and height are positive and at least ``min_size``."""
    cx = 0.5 * (boxes[:, 0] + boxes[:, 2])
    cy = 0.5 * (boxes[:, 1] + boxes[:, 3])
    keep = (cx >= 0) & (cx < out_w) & (cy >= 0) & (cy < out_h)
    clipped = np.empty_like(boxes)
    clipped[:, 0::2] = np.clip(boxes[:, 0::2], 0, out_w)
    clipped[:, 1::2] = np.clip(boxes[:, 1::2], 0, out_h)
    bw = clipped[:, 2] - clipped[:, 0]
    bh = clipped[:, 3] - clipped[:, 1]
    keep &= (bw > 0) & (bh > 0) & (bw >= min_size) & (bh >= min_size)
    return clipped, keep


def apply_crop(sample, x0, y0, scale, out_w, out_h, fill, min_size):
    """Crop-and-scale the sample's image and faces (see ``scaled_crop`` and
    ``faces_in_window``); ``scale_factor`` is multiplied by the scale."""
    boxes, ignore = face_arrays(sample)
    patch, affine = scaled_crop(sample['image'], x0, y0, scale, out_w, out_h, fill)
    clipped, keep = faces_in_window(map_boxes(boxes, affine), out_w, out_h, min_size)
    set_image(sample, patch)
    factor = np.asarray(sample.get('scale_factor', (1.0, 1.0)), dtype=np.float32)
    sample['scale_factor'] = factor * np.array([affine.sy, affine.sx], dtype=np.float32)
    return keep_faces(sample, clipped, ignore, keep)
