"""An evaluation split across the processes of a ``paddle.distributed.launch``
job: each rank predicts every ``world_size``-th image (from its rank on),
rank 0 gathers the detections (``all_gather_object``: any backend, gloo on
CPU), writes the prediction folder and scores it, and every rank gets the
result. A single process is a shard of one.

The launcher marks a multi-process job by ``PADDLE_TRAINERS_NUM`` > 1; the
collective environment is initialised here when the caller (``tools/eval.py``)
has not done so (the trainer has).
"""
import os

import paddle.distributed as dist

__all__ = ['Shard']


class Shard:
    """This process's part of an evaluation (``rank`` of ``world_size``)."""

    def __init__(self, rank=0, world_size=1):
        self.rank, self.world_size = rank, world_size

    @classmethod
    def current(cls):
        if int(os.environ.get('PADDLE_TRAINERS_NUM', '1')) <= 1:
            return cls()
        if not dist.is_initialized():
            dist.init_parallel_env()
        return cls(dist.get_rank(), dist.get_world_size())

    @property
    def is_main(self):
        return self.rank == 0

    def take(self, items):
        """``(index, item)`` of this rank's share of ``items``."""
        return [(index, items[index]) for index in range(self.rank, len(items), self.world_size)]

    def gather(self, part):
        """Every rank's ``part`` (any picklable object), in rank order, on every rank."""
        if self.world_size == 1:
            return [part]
        parts = []
        dist.all_gather_object(parts, part)
        return parts

    def from_main(self, value):
        """Rank 0's ``value`` on every rank."""
        return self.gather(value if self.is_main else None)[0]
