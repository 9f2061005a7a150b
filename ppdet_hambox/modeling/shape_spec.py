"""What one feature map of a backbone or neck looks like to the next part."""
from typing import NamedTuple

__all__ = ['ShapeSpec']


class ShapeSpec(NamedTuple):
    """Channels and stride (input pixels per cell) of one output level."""
    channels: int
    stride: int
