"""Process environment: distributed initialisation and seeding.

A run started by ``python -m paddle.distributed.launch`` has
``PADDLE_TRAINERS_NUM`` > 1 in its environment; anything else is a single
process. Nothing here names a device: Paddle picks the one it was built for.
"""
import os
import random
from dataclasses import dataclass

import numpy as np
import paddle
import paddle.distributed as dist


@dataclass
class DistInfo:
    """Where this process stands in the job."""
    rank: int = 0
    world_size: int = 1
    fleet: bool = False

    @property
    def distributed(self):
        return self.world_size > 1

    @property
    def is_main(self):
        return self.rank == 0


def launched_world_size():
    """Number of processes ``paddle.distributed.launch`` started (1 if none)."""
    return int(os.environ.get('PADDLE_TRAINERS_NUM', '1'))


def init_distributed(use_fleet=False):
    """Initialise the collective environment when launched with several
    processes (``fleet.init(is_collective=True)`` with ``use_fleet``, else
    ``init_parallel_env``); a no-op for a single process."""
    if launched_world_size() <= 1:
        return DistInfo(fleet=False)
    if use_fleet:
        from paddle.distributed import fleet
        fleet.init(is_collective=True)
    elif not dist.is_initialized():
        dist.init_parallel_env()
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), fleet=use_fleet)


def set_random_seed(seed):
    """Seed Paddle, NumPy and Python's ``random`` with the same value on every
    rank (identical initial weights); data randomness is seeded by the reader
    per sample, so ranks still see different augmentations."""
    paddle.seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def all_ranks_any(flag, info):
    """True on every rank when ``flag`` is true on at least one rank."""
    if not info.distributed:
        return bool(flag)
    value = paddle.to_tensor([1.0 if flag else 0.0], dtype='float32')
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return value.item() > 0


def all_ranks_mean(values, info):
    """Average a dict of Python floats over ranks (for logging only)."""
    if not info.distributed or not values:
        return dict(values)
    keys = sorted(values)
    tensor = paddle.to_tensor([float(values[k]) for k in keys], dtype='float32')
    dist.all_reduce(tensor)
    tensor = tensor / info.world_size
    return dict(zip(keys, tensor.numpy().tolist()))


def all_ranks_sum(value, info):
    """Sum a Python number over ranks."""
    if not info.distributed:
        return value
    tensor = paddle.to_tensor([float(value)], dtype='float32')
    dist.all_reduce(tensor)
    return tensor.item()

