"""Process environment: distributed initialisation, seeding, and the check
that every process of a distributed run runs the same thing.

A run started by ``python -m paddle.distributed.launch`` has
``PADDLE_TRAINERS_NUM`` > 1 in its environment (the processes of all
nodes); anything else is a single process. Ranks here are global ranks
(over all nodes), never the rank inside a node. Nothing here names a device:
Paddle picks the one it was built for.
"""
import functools
import hashlib
import json
import os
import random
import socket
from dataclasses import dataclass

import numpy as np
import paddle
import paddle.distributed as dist

from ppdet_hambox.core.errors import ConfigError


@dataclass
class DistInfo:
    """Where this process stands in the job (``rank``: global, over all nodes)."""
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


# ------------------------------------------------------- same run everywhere
CODE_KEY = '(code: ppdet_hambox sources)'
PADDLE_KEY = '(paddle version)'
MAX_NAMED_KEYS = 12


def _digest(text):
    return hashlib.sha1(text.encode('utf-8')).hexdigest()[:16]


def _flatten(value, prefix, out):
    if isinstance(value, dict):
        for key in sorted(value, key=str):
            if not str(key).startswith('__'):
                _flatten(value[key], '{}.{}'.format(prefix, key) if prefix else str(key), out)
    else:
        out[prefix] = _digest(json.dumps(value, sort_keys=True, default=repr))
    return out


@functools.lru_cache(maxsize=1)
def code_digest():
    """Digest of every ``.py`` file of the package (path and contents)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    digest = hashlib.sha1()
    for folder, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(f for f in files if f.endswith('.py')):
            path = os.path.join(folder, name)
            digest.update(os.path.relpath(path, root).encode('utf-8'))
            with open(path, 'rb') as f:
                digest.update(f.read())
    return digest.hexdigest()[:16]


def file_digest(path):
    """Digest of a file's bytes (a resumed checkpoint), or ``'none'``."""
    if not path:
        return 'none'
    digest = hashlib.sha1()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def run_fingerprint(cfg, **flags):
    """``{name: digest}`` of what every rank must share: each key of the
    resolved config (dotted, e.g. ``TrainReader.batch_size``), the package's
    source code, Paddle's version and ``flags`` (command-line switches that
    are not config keys)."""
    fields = _flatten(cfg, '', {})
    fields[CODE_KEY] = code_digest()
    fields[PADDLE_KEY] = _digest(paddle.__version__)
    for name, value in flags.items():
        fields[name] = _digest(repr(value))
    return fields


def check_same_run(fields, info, what='config, overrides, flags and code'):
    """Raise ``ConfigError`` on every rank when some rank's ``fields`` differ
    from global rank 0's, naming the differing keys and the ranks (hosts).
    Collective: every rank calls it at the same point; a no-op for one
    process."""
    if not info.distributed:
        return
    gathered = []
    dist.all_gather_object(gathered, (socket.gethostname(), fields))
    host0, fields0 = gathered[0]
    problems = []
    for rank, (host, theirs) in enumerate(gathered[1:], start=1):
        differing = sorted(k for k in set(fields0) | set(theirs) if fields0.get(k) != theirs.get(k))
        if differing:
            named = ', '.join(differing[:MAX_NAMED_KEYS])
            if len(differing) > MAX_NAMED_KEYS:
                named += ' and {} more'.format(len(differing) - MAX_NAMED_KEYS)
            problems.append('global rank {} ({}) differs from global rank 0 ({}) in {}'.format(
                rank, host, host0, named))
    if problems:
        raise ConfigError('the processes of this distributed run were started with different {}: {}; '
                          'start every node with the same ones'.format(what, '; '.join(problems)))
