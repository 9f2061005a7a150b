"""Batch operators: ``op(samples) -> samples``, run before the samples are
stacked into a batch."""
import numpy as np

from ppdet_hambox.core.schema import NON_NEGATIVE, Range
from ppdet_hambox.core.workspace import register
from ppdet_hambox.data.transform.base import face_arrays

__all__ = ['PadGT', 'PadBatch']


@register
class PadGT:
    """Pad faces to ``G = max faces in the batch`` (at least 1): ``gt_bbox``
    float32 ``[G, 4]`` (zeros after the real faces) and ``gt_mask`` float32
    ``[G]`` (1 real, 0 padding). With ``return_ignore`` also ``gt_ignore``
    float32 ``[G]`` (1 for faces that are not training targets)."""

    def __init__(self, return_ignore=False):
        self.return_ignore = return_ignore

    def __call__(self, samples):
        faces = [face_arrays(sample) for sample in samples]
        num = max([1] + [len(boxes) for boxes, _ in faces])
        for sample, (boxes, ignore) in zip(samples, faces):
            n = len(boxes)
            padded = np.zeros((num, 4), dtype=np.float32)
            padded[:n] = boxes
            mask = np.zeros(num, dtype=np.float32)
            mask[:n] = 1.0
            sample['gt_bbox'], sample['gt_mask'] = padded, mask
            if self.return_ignore:
                flags = np.zeros(num, dtype=np.float32)
                flags[:n] = ignore
                sample['gt_ignore'] = flags
            else:
                sample.pop('gt_ignore', None)
        return samples


@register
class PadBatch:
    """Pad CHW images (after ``Permute``) at the bottom and right to the
    largest height and width in the batch, rounded up to a multiple of
    ``pad_to_stride`` when > 0. ``im_shape`` keeps the unpadded size."""
    __ranges__ = {'pad_to_stride': NON_NEGATIVE, 'fill_value': Range(0.0, 255.0)}

    def __init__(self, pad_to_stride=0, fill_value=0.0):
        self.pad_to_stride = pad_to_stride
        self.fill_value = fill_value

    def __call__(self, samples):
        shapes = [sample['image'].shape for sample in samples]
        if any(len(shape) != 3 for shape in shapes):
            raise ValueError('PadBatch expects CHW images; put it after Permute')
        height = max(shape[1] for shape in shapes)
        width = max(shape[2] for shape in shapes)
        if self.pad_to_stride > 0:
            stride = self.pad_to_stride
            height, width = -(-height // stride) * stride, -(-width // stride) * stride
        for sample, (channels, h, w) in zip(samples, shapes):
            if (h, w) != (height, width):
                padded = np.full((channels, height, width), self.fill_value, dtype=sample['image'].dtype)
                padded[:, :h, :w] = sample['image']
                sample['image'] = padded
        return samples
