"""Samples through transforms, and samples into batches.

``TransformedDataset`` runs the sample transforms with a per-sample random
generator seeded from ``(seed, epoch, index)``; it is indexed by
``(epoch, index)`` pairs (a plain ``index`` means epoch 0), which the reader's
batch sampler produces, so results do not depend on which worker process
computes a sample. An image that cannot be read becomes a ``SkippedSample``
(with a warning naming the file) and ``Collate`` leaves it out of the batch,
counting it in ``num_skipped``.

A batch whose samples were all skipped is ``{'num_skipped': n}`` with ``n``
an int64 array of shape [1] (a Tensor out of the DataLoader), not an int:
Paddle's DataLoader ends the epoch at a batch holding no array.
``int(batch.pop('num_skipped'))`` reads both forms.
"""
import logging

import numpy as np
import paddle

from ppdet_hambox.data.image_io import ImageReadError

__all__ = ['TransformedDataset', 'SkippedSample', 'Collate', 'sample_rng', 'BATCH_KEYS']

logger = logging.getLogger(__name__)

# key -> dtype of the stacked batch array; other sample keys are not batched.
BATCH_KEYS = {
    'image': np.float32,
    'gt_bbox': np.float32,
    'gt_mask': np.float32,
    'gt_ignore': np.float32,
    'im_shape': np.float32,
    'scale_factor': np.float32,
    'ori_shape': np.int64,
    'im_id': np.int64,
}


def sample_rng(seed, epoch, index):
    """The random generator of one sample."""
    return np.random.default_rng([int(seed), int(epoch), int(index)])


class SkippedSample:
    """Stands in for a sample whose image could not be read."""
    __slots__ = ('im_file', 'reason')

    def __init__(self, im_file, reason):
        self.im_file, self.reason = im_file, reason


class TransformedDataset(paddle.io.Dataset):
    """``dataset`` records through ``transforms`` (``op(sample, rng)``)."""

    def __init__(self, dataset, transforms, seed=0):
        super().__init__()
        if int(seed) < 0:
            raise ValueError('seed must be a non-negative integer, got {!r}'.format(seed))
        self.dataset = dataset
        self.transforms = list(transforms)
        self.seed = int(seed)

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        item = self.transform(key)
        if isinstance(item, SkippedSample):
            logger.warning('skipping sample %d: %s', key[1] if isinstance(key, tuple) else key, item.reason)
        return item

    def transform(self, key):
        """The sample of ``key`` through the transforms, or a ``SkippedSample``
        when its image cannot be read (no warning: ``__getitem__`` gives it)."""
        epoch, index = key if isinstance(key, tuple) else (0, key)
        sample = dict(self.dataset[index])
        rng = sample_rng(self.seed, epoch, index)
        try:
            for op in self.transforms:
                sample = op(sample, rng)
        except ImageReadError as err:
            return SkippedSample(sample.get('im_file'), str(err))
        return sample


class Collate:
    """Samples -> batch dict of numpy arrays (``BATCH_KEYS`` present in every
    sample) plus ``num_skipped`` (int). Batch operators run first. A batch
    whose samples were all skipped has only ``num_skipped``, as an array."""

    def __init__(self, batch_transforms=()):
        self.batch_transforms = list(batch_transforms)

    def __call__(self, items):
        samples = [item for item in items if not isinstance(item, SkippedSample)]
        num_skipped = len(items) - len(samples)
        if not samples:
            return {'num_skipped': np.array([num_skipped], dtype=np.int64)}
        for op in self.batch_transforms:
            samples = op(samples)
        batch = {}
        for key, dtype in BATCH_KEYS.items():
            if all(key in sample for sample in samples):
                batch[key] = _stack(samples, key, dtype)
        batch['num_skipped'] = num_skipped
        return batch


def _stack(samples, key, dtype):
    arrays = [np.asarray(sample[key], dtype=dtype) for sample in samples]
    shapes = {array.shape for array in arrays}
    if len(shapes) > 1:
        hint = {'image': 'use a fixed-size Resize or add PadBatch to batch_transforms',
                'gt_bbox': 'add PadGT to batch_transforms'}.get(key, 'make the samples agree')
        raise ValueError('cannot batch {!r}: shapes differ {} ({}; files: {})'.format(
            key, sorted(shapes), hint, ', '.join(str(s.get('im_file')) for s in samples)))
    return np.stack(arrays)
