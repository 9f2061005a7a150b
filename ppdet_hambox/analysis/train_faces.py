"""Faces as the detector sees them in training: the ``train`` protocol of the anchor statistics.

The config's ``TrainReader.sample_transforms`` run on every training image
for several epochs, with the reader's per-sample random generators (seed,
epoch, index), but without decoding any image: ``Decode`` is replaced by
:class:`BlankDecode`, which hands the geometric operators a blank image of
the right size, and operators that only change pixels (``PIXEL_ONLY_OPS``)
are left out. The faces kept are those the loss trains on (``gt_ignore``
false), in network-input coordinates.

Image sizes: WIDER FACE annotations do not record them. With ``image_dir``
they are read from the image file headers. Without it they are estimated as
``(max(assumed_h, bottom-most box edge), max(assumed_w, right-most box
edge))``; WIDER FACE images are 1024 px wide and mostly 3:2, hence the
default ``(683, 1024)``.
"""
import os

import numpy as np
from tqdm import tqdm

from ppdet_hambox.core.workspace import create
from ppdet_hambox.data import ImageReadError, image_size
from ppdet_hambox.data.pipeline import TransformedDataset
from ppdet_hambox.data.source.widerface import WIDERFaceDataset, read_wider_annotation
from ppdet_hambox.data.transform.base import face_arrays
from ppdet_hambox.data.transform.decode import Decode, attach_image

__all__ = ['PIXEL_ONLY_OPS', 'BlankDecode', 'estimate_image_sizes', 'header_image_sizes',
           'train_faces']

PIXEL_ONLY_OPS = ('RandomDistort', 'Normalize', 'Permute')
DEFAULT_ASSUMED_SIZE = (683, 1024)


class BlankDecode:
    """``Decode`` with a blank image of the recorded size instead of the file:
    the same keys (``image``, ``im_shape``, ``ori_shape``, ``scale_factor``) and
    the same clipping of faces to the image."""

    def __init__(self, sizes):
        self.sizes = np.asarray(sizes, dtype=np.int64).reshape(-1, 2)

    def __call__(self, sample, rng=None):
        h, w = (int(v) for v in self.sizes[sample['im_id']])
        return attach_image(sample, np.zeros((h, w, 3), dtype=np.uint8))


def estimate_image_sizes(annotation, assumed=DEFAULT_ASSUMED_SIZE):
    """``int64 [num_images, 2]`` (h, w): at least ``assumed``, and enough to hold every box."""
    sizes = np.tile(np.asarray(assumed, dtype=np.float64), (annotation.num_images, 1))
    image = annotation.image_index()
    np.maximum.at(sizes[:, 0], image, annotation.boxes[:, 3])
    np.maximum.at(sizes[:, 1], image, annotation.boxes[:, 2])
    return np.ceil(sizes).astype(np.int64)


def header_image_sizes(annotation, image_dir):
    """``int64 [num_images, 2]`` (h, w) as ``Decode`` sees them, from the
    image headers (no pixel decoding)."""
    sizes = np.zeros((annotation.num_images, 2), dtype=np.int64)
    for i, rel in enumerate(annotation.files):
        path = os.path.join(image_dir, rel)
        try:
            width, height = image_size(path)
        except ImageReadError as err:
            raise FileNotFoundError('cannot read the size of {}: {}'.format(path, err)) from None
        sizes[i] = (height, width)
    return sizes


def _geometric_ops(ops, sizes):
    out, has_decode = [], False
    for op in ops:
        if isinstance(op, Decode):
            out.append(BlankDecode(sizes))
            has_decode = True
        elif type(op).__name__ not in PIXEL_ONLY_OPS:
            out.append(op)
    if not has_decode:
        raise ValueError('TrainReader.sample_transforms has no Decode: cannot tell where images '
                         'enter the pipeline')
    return out


def train_faces(cfg, anno_path, epochs=3, seed=None, image_dir=None,
                assumed_size=DEFAULT_ASSUMED_SIZE, max_images=-1, progress=False):
    """``(boxes float64 [N, 4], image_shapes int64 [N, 2], info)`` over ``epochs`` passes.

    cfg: a loaded config with ``TrainReader`` (and optionally ``TrainDataset``
    for ``keep_invalid``); ``anno_path`` replaces its annotation file.
    """
    annotation = read_wider_annotation(anno_path)
    if image_dir:
        sizes, size_source = header_image_sizes(annotation, image_dir), 'image headers in ' + image_dir
    else:
        sizes = estimate_image_sizes(annotation, assumed_size)
        size_source = 'estimated: max({}x{} (h x w), annotation extent)'.format(*assumed_size)
    reader = create('TrainReader', cfg)
    ops = _geometric_ops(reader.sample_transforms, sizes)
    keep_invalid = bool((cfg.get('TrainDataset') or {}).get('keep_invalid', False))
    dataset = WIDERFaceDataset(dataset_dir='', image_dir='', anno_path=str(anno_path),
                               keep_invalid=keep_invalid, sample_num=max_images)
    seed = reader.seed if seed is None else int(seed)
    samples = TransformedDataset(dataset, ops, seed)
    boxes, shapes = [], []
    keys = [(epoch, index) for epoch in range(int(epochs)) for index in range(len(samples))]
    for key in tqdm(keys, desc='training transforms', disable=not progress, mininterval=5):
        sample = samples[key]
        faces, ignore = face_arrays(sample)
        faces = faces[~ignore]
        boxes.append(faces)
        shapes.append(np.repeat(sample['im_shape'][None].astype(np.int64), len(faces), axis=0))
    boxes = np.concatenate(boxes).astype(np.float64) if boxes else np.zeros((0, 4))
    shapes = np.concatenate(shapes) if shapes else np.zeros((0, 2), dtype=np.int64)
    positive = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    info = {
        'annotation': str(anno_path),
        'images': len(samples),
        'epochs': int(epochs),
        'seed': seed,
        'samples': len(samples) * int(epochs),
        'faces': int(positive.sum()),
        'image_sizes': size_source,
        'pipeline': [type(op).__name__ for op in ops],
        'left_out_pixel_ops': [type(op).__name__ for op in reader.sample_transforms
                               if type(op).__name__ in PIXEL_ONLY_OPS],
        'input_shapes': sorted({tuple(int(v) for v in s) for s in np.unique(shapes, axis=0)}),
        'image_grid': 'bounded to the network input (ceil(side / stride) cells)',
    }
    return boxes[positive], shapes[positive], info
