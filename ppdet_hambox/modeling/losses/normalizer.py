"""Loss normalisers that are the same for one process and for N processes."""
import paddle

__all__ = ['mean_over_processes']


def mean_over_processes(count):
    """``count`` averaged over data-parallel processes (no gradient). Each
    process divides its loss sum by this, and averaging the gradients then
    gives sum / global count: N processes train like one process with the
    global batch."""
    dist = paddle.distributed
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return count
    total = count.detach().clone()
    dist.all_reduce(total)
    return total / dist.get_world_size()
