"""Readers: a dataset, its transforms and a batch size -> ``paddle.io.DataLoader``.

Usage::

    reader = create('TrainReader')
    loader = reader.build_loader(dataset)          # epoch 0
    for epoch in range(epochs):
        loader.batch_sampler.set_epoch(epoch)
        for batch in loader:
            skipped += int(batch.pop('num_skipped'))
            if not batch:                          # every image unreadable
                continue
            ...

A batch is a dict of ``paddle.Tensor`` (see docs/architecture.md, plus
``ori_shape`` int64 [B, 2]) and ``num_skipped``, the number of samples left
out of it because their image could not be read (an int, so B may be less
than the batch size). When all were skipped the batch holds only
``num_skipped``, then an int64 Tensor of shape [1] (Paddle's DataLoader ends
the epoch at a batch without a Tensor). ``im_id`` is the dataset index of
each image, so ``dataset[im_id]`` gives its file, event and name.

No orphans: on Linux every DataLoader worker asks the kernel
(``prctl(PR_SET_PDEATHSIG)``) to be killed when the process that started it
dies, however it dies (``kill -9``, the OOM killer, a preemption), so no
worker outlives its trainer. The kernel ties this to the thread that created
the worker: iterate a loader from the thread that will outlive it (the main
thread, as the trainer does). Elsewhere (macOS, Windows) there is no such
call: Paddle's workers then only notice a dead parent when they next poll
for work, and a worker blocked on a full pipe may stay behind.
"""
import functools
import os
import signal

import cv2
import numpy as np
from paddle.io import DataLoader, DistributedBatchSampler

from ppdet_hambox.core.schema import COUNT, NON_NEGATIVE, SEED
from ppdet_hambox.core.workspace import build_component_list, register
from ppdet_hambox.data.pipeline import Collate, TransformedDataset
from ppdet_hambox.utils.process import die_with_parent

__all__ = ['EpochBatchSampler', 'TrainReader', 'EvalReader', 'TestReader', 'init_worker']


def _shuffle_seed(seed, epoch):
    return int(np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1)[0])


class EpochBatchSampler(DistributedBatchSampler):
    """A ``DistributedBatchSampler`` whose batches are lists of
    ``(epoch, index)`` pairs, so each sample's random generator depends on the
    epoch even inside worker processes. The shuffled order is a function of
    ``(seed, epoch)``: repeatable, different per epoch. Each iteration uses
    the epoch last set, then advances it by one."""

    def __init__(self, dataset, batch_size, num_replicas=None, rank=None, shuffle=False,
                 drop_last=False, seed=0):
        super().__init__(dataset, batch_size, num_replicas=num_replicas, rank=rank,
                         shuffle=shuffle, drop_last=drop_last)
        self.seed = int(seed)
        self.data_epoch = 0

    def set_epoch(self, epoch):
        self.data_epoch = int(epoch)

    def __iter__(self):
        epoch = self.data_epoch
        self.data_epoch += 1
        super().set_epoch(_shuffle_seed(self.seed, epoch))
        for batch in super().__iter__():
            yield [(epoch, index) for index in batch]


def init_worker(worker_id, parent_pid=None):
    """Set-up of a DataLoader worker; ``parent_pid``: the loader's process, whose
    death ends this worker (see ``die_with_parent``). Without it (a benchmark
    running the worker's work in its own process) only the OpenCV set-up is done."""
    if parent_pid is not None:
        die_with_parent(parent_pid)
        # Ctrl-C in a terminal reaches the whole process group: the loader's
        # process stops its workers, so a worker ignores it instead of printing a traceback.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Parallelism comes from the workers; OpenCV threads would oversubscribe.
    cv2.setNumThreads(0)


class _Reader:
    """Builds the loader; subclasses only change the defaults."""
    __shared__ = ['seed']
    __component_lists__ = ['sample_transforms', 'batch_transforms']
    __ranges__ = {'batch_size': COUNT, 'num_workers': NON_NEGATIVE, 'seed': SEED}

    def __init__(self, sample_transforms=None, batch_transforms=None, batch_size=1, shuffle=False,
                 drop_last=False, num_workers=0, use_shared_memory=True, seed=0):
        if int(batch_size) < 1:
            raise ValueError('{}.batch_size must be >= 1, got {!r}'.format(type(self).__name__, batch_size))
        name = type(self).__name__
        self.sample_transforms = _build_ops(sample_transforms, name + '.sample_transforms')
        self.batch_transforms = _build_ops(batch_transforms, name + '.batch_transforms')
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.num_workers = int(num_workers)
        self.use_shared_memory = use_shared_memory
        # seed null (runtime.yml): not seeded, a fresh seed for this reader
        self.seed = int(np.random.SeedSequence().generate_state(1)[0]) if seed is None else int(seed)

    def build_loader(self, dataset, epoch=0, nranks=None, rank=None):
        """A ``paddle.io.DataLoader`` over ``dataset`` for this process (``nranks``
        and ``rank`` default to the distributed environment)."""
        samples = TransformedDataset(dataset, self.sample_transforms, self.seed)
        sampler = EpochBatchSampler(samples, self.batch_size, num_replicas=nranks, rank=rank,
                                    shuffle=self.shuffle, drop_last=self.drop_last, seed=self.seed)
        sampler.set_epoch(epoch)
        return DataLoader(samples, batch_sampler=sampler, collate_fn=Collate(self.batch_transforms),
                          num_workers=self.num_workers, use_shared_memory=self.use_shared_memory,
                          worker_init_fn=(functools.partial(init_worker, parent_pid=os.getpid())
                                          if self.num_workers > 0 else None),
                          return_list=True)

    __call__ = build_loader


def _build_ops(items, path):
    """Config items ``{Name: {kwargs}}`` are built; objects already built are kept."""
    ops = []
    for index, item in enumerate(items or []):
        if callable(item):
            ops.append(item)
        else:
            ops.extend(build_component_list([item], path='{}[{}]'.format(path, index)))
    return ops


@register
class TrainReader(_Reader):
    def __init__(self, sample_transforms=None, batch_transforms=None, batch_size=1, shuffle=True,
                 drop_last=True, num_workers=2, use_shared_memory=True, seed=0):
        super().__init__(sample_transforms, batch_transforms, batch_size, shuffle, drop_last,
                         num_workers, use_shared_memory, seed)


@register
class EvalReader(_Reader):
    def __init__(self, sample_transforms=None, batch_transforms=None, batch_size=1, shuffle=False,
                 drop_last=False, num_workers=2, use_shared_memory=True, seed=0):
        super().__init__(sample_transforms, batch_transforms, batch_size, shuffle, drop_last,
                         num_workers, use_shared_memory, seed)


@register
class TestReader(_Reader):
    def __init__(self, sample_transforms=None, batch_transforms=None, batch_size=1, shuffle=False,
                 drop_last=False, num_workers=0, use_shared_memory=True, seed=0):
        super().__init__(sample_transforms, batch_transforms, batch_size, shuffle, drop_last,
                         num_workers, use_shared_memory, seed)

